"""Evaluation from one embedding matrix: every test image is embedded once.

Metrics here are cheap functions of embeddings and labels:

* `triplet_accuracy`: seeded random triplets; correct when d(a, p) < d(a, n).
* `oneshot_accuracy`: N-way one-shot classification: the support is the first
  image of each class, every other image is a query, and the predicted class
  is that of the nearest support.

Each accuracy comes with the half-width of its 95% confidence interval
(normal approximation).
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np

from keras_siamese import losses

EVAL_TRIPLETS = 10_000


@dataclasses.dataclass(frozen=True)
class Accuracy:
    """An accuracy over `count` independent trials, with its 95% CI half-width."""

    value: float
    ci95: float
    count: int

    @classmethod
    def from_hits(cls, hits: np.ndarray) -> Accuracy:
        hits = np.asarray(hits, dtype=bool)
        count = int(hits.size)
        if count == 0:
            raise ValueError("an accuracy needs at least one trial")
        p = float(hits.mean())
        return cls(value=p, ci95=1.96 * math.sqrt(p * (1.0 - p) / count), count=count)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def embed(
    tower: keras.Model, images: np.ndarray, batch_size: int = 500, verbose: int = 1
) -> np.ndarray:
    """Embeds uint8 images in batches; returns a float32 `[N, D]` array."""
    if len(images) == 0:
        return np.zeros((0, tower.output_shape[-1]), np.float32)
    return np.asarray(tower.predict(images, batch_size=batch_size, verbose=verbose), np.float32)


def sample_triplets(labels: np.ndarray, num_triplets: int, seed: int) -> np.ndarray:
    """Seeded `[num_triplets, 3]` indices: anchor/positive share a class, negative differs.

    Classes with a single image can be negatives but never anchors.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    order = np.argsort(labels, kind="stable")
    classes, counts = np.unique(labels, return_counts=True)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    anchor_classes = np.flatnonzero(counts >= 2)
    if len(anchor_classes) == 0 or len(classes) < 2:
        raise ValueError("triplets need two classes and a class with two images")
    c = rng.choice(anchor_classes, size=num_triplets)
    a = rng.integers(0, counts[c])
    p = (a + 1 + rng.integers(0, counts[c] - 1)) % counts[c]
    k = rng.integers(0, len(classes) - 1, size=num_triplets)
    nc = k + (k >= c)  # a uniformly drawn class other than c
    n = rng.integers(0, counts[nc])
    return order[np.stack([offsets[c] + a, offsets[c] + p, offsets[nc] + n], axis=1)]


def triplet_accuracy(
    embeddings: np.ndarray,
    labels: np.ndarray,
    distance: str,
    num_triplets: int = EVAL_TRIPLETS,
    seed: int = 0,
) -> Accuracy:
    """Fraction of seeded random triplets with d(anchor, positive) < d(anchor, negative)."""
    t = sample_triplets(labels, num_triplets, seed)
    e = embeddings
    d_ap = keras.ops.convert_to_numpy(losses.paired_distance(e[t[:, 0]], e[t[:, 1]], distance))
    d_an = keras.ops.convert_to_numpy(losses.paired_distance(e[t[:, 0]], e[t[:, 2]], distance))
    return Accuracy.from_hits(d_ap < d_an)


def first_image_supports(labels: np.ndarray) -> np.ndarray:
    """Index of the first image of each class, in sorted class order."""
    labels = np.asarray(labels)
    return np.array([np.flatnonzero(labels == c)[0] for c in np.unique(labels)])


def oneshot_accuracy(embeddings: np.ndarray, labels: np.ndarray, distance: str) -> Accuracy:
    """N-way one-shot accuracy with the first image of each class as its support.

    Every other image is a query, classified as the class of its nearest
    support; N is the number of classes in `labels`.
    """
    labels = np.asarray(labels)
    supports = first_image_supports(labels)
    queries = np.setdiff1d(np.arange(len(labels)), supports)
    d = keras.ops.convert_to_numpy(
        losses.pairwise_distance(embeddings[queries], embeddings[supports], distance)
    )
    predicted = labels[supports][np.argmin(d, axis=1)]
    return Accuracy.from_hits(predicted == labels[queries])
