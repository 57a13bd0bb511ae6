"""What a training epoch draws, in numpy alone: batch indices and augmentation settings.

Shared by the tf.data pipelines (`keras_siamese.data.pipeline`) and the numpy
batches of the other Keras backends (`keras_siamese.data.numpy_batches`). Every
draw is a function of `(seed, epoch)`, so an epoch can be regenerated on its own
when a run resumes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_siamese.errors import ConfigError

CROP_PADDING = 4


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Per-sample augmentation settings."""

    flip: bool = True
    crop: bool = False


class TripletIndex:
    """Where each class's images are in a labelled array, for drawing triplets.

    Args:
        labels: int array `[N]`; every class present needs at least two images.

    Raises:
        ConfigError: with fewer than two classes, or a class of one image.
    """

    def __init__(self, labels: np.ndarray):
        labels = np.asarray(labels)
        classes, counts = np.unique(labels, return_counts=True)
        if len(classes) < 2:
            raise ConfigError("Triplets need at least two classes in the training data.")
        small = classes[counts < 2]
        if len(small):
            raise ConfigError(
                f"Class {int(small[0])} has fewer than two train images: no positive pair "
                "can be drawn from it."
            )
        self.order = np.argsort(labels, kind="stable")  # the images grouped by class
        self.classes = classes
        self.counts = counts
        self.offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])

    def sample(self, num_triplets: int, rng: np.random.Generator) -> np.ndarray:
        """int64 `[num_triplets, 3]` indices (anchor, positive, negative) drawn with `rng`.

        The anchor's class is uniform over the classes; the positive is another
        image of it; the negative an image of another class, both uniform.
        """
        num_classes = len(self.classes)
        anchor_class = rng.integers(0, num_classes, num_triplets)
        count = self.counts[anchor_class]
        anchor = rng.integers(0, count)
        positive = (anchor + 1 + rng.integers(0, count - 1)) % count
        negative_class = (anchor_class + 1 + rng.integers(0, num_classes - 1, num_triplets)) % (
            num_classes
        )
        negative = rng.integers(0, self.counts[negative_class])
        positions = np.stack(
            [
                self.offsets[anchor_class] + anchor,
                self.offsets[anchor_class] + positive,
                self.offsets[negative_class] + negative,
            ],
            axis=1,
        )
        return self.order[positions].astype(np.int64)


class PKSampler:
    """Batches of P classes x K images, every image used about once per epoch.

    Each epoch, every class's images are shuffled and cut into groups of K
    (the last group topped up with other images of the class). Each batch
    takes one group from each of P distinct classes, drawn with probability
    proportional to the groups a class has left, so classes run out together;
    when fewer than P classes have groups left, a new pass begins. Everything
    is a function of `(seed, epoch)`.

    Args:
        labels: int array `[N]`.
        classes_per_batch: P, at least 2 and at most the number of classes.
        images_per_class: K, at least 2, and no class may have fewer images.
        seed: base seed.

    Raises:
        ConfigError: when P or K cannot be satisfied by `labels`.
    """

    def __init__(
        self, labels: np.ndarray, classes_per_batch: int, images_per_class: int, seed: int = 0
    ):
        labels = np.asarray(labels)
        classes, counts = np.unique(labels, return_counts=True)
        if classes_per_batch < 2 or images_per_class < 2:
            raise ConfigError(
                f"--classes_per_batch={classes_per_batch} and --images_per_class="
                f"{images_per_class} must both be at least 2: a batch needs positives and "
                "negatives."
            )
        if classes_per_batch > len(classes):
            raise ConfigError(
                f"--classes_per_batch={classes_per_batch} exceeds the {len(classes)} classes "
                "available for training."
            )
        if counts.min() < images_per_class:
            raise ConfigError(
                f"--images_per_class={images_per_class} exceeds the {counts.min()} train images "
                f"of class {int(classes[np.argmin(counts)])}."
            )
        self.classes = classes
        self.members = [np.flatnonzero(labels == c) for c in classes]
        self.p, self.k, self.seed = classes_per_batch, images_per_class, seed

    @property
    def batch_size(self) -> int:
        return self.p * self.k

    def _groups(self, rng: np.random.Generator) -> list[list[np.ndarray]]:
        groups = []
        for members in self.members:
            order = rng.permutation(members)
            short = -len(order) % self.k
            if short:
                extra = rng.choice(order[: len(order) - (self.k - short)], short, replace=False)
                order = np.concatenate([order, extra])
            groups.append(list(order.reshape(-1, self.k)))
        return groups

    def epoch_indices(self, epoch: int, steps: int) -> np.ndarray:
        """Image indices of one epoch, int64 `[steps, P * K]`, grouped by class."""
        rng = np.random.default_rng([self.seed, 0x9C, int(epoch)])
        groups = self._groups(rng)
        batches = np.empty((steps, self.batch_size), np.int64)
        for step in range(steps):
            left = np.array([len(g) for g in groups], np.float64)
            if np.count_nonzero(left) < self.p:
                groups = self._groups(rng)
                left = np.array([len(g) for g in groups], np.float64)
            chosen = rng.choice(len(groups), self.p, replace=False, p=left / left.sum())
            batches[step] = np.concatenate([groups[c].pop() for c in chosen])
        return batches


def validation_images_per_class(images_per_class: int, labels: np.ndarray) -> int:
    """K for validation P x K batches: `images_per_class`, or fewer where a validation
    class holds fewer images (every class must fill its K). Under 2: no such batches."""
    if len(labels) == 0:
        return 0
    return min(images_per_class, int(np.unique(labels, return_counts=True)[1].min()))


def fixed_pk_indices(
    labels: np.ndarray, classes_per_batch: int, images_per_class: int, seed: int
) -> np.ndarray:
    """The same P x K batches every time, covering the images about once (validation):
    image indices, int64 `[steps, P * K]`."""
    sampler = PKSampler(labels, classes_per_batch, images_per_class, seed)
    steps = max(len(labels) // sampler.batch_size, 1)
    return sampler.epoch_indices(0, steps)


def shuffled_indices(num_images: int, batch_size: int, steps: int, seed: int, epoch: int):
    """Epoch `epoch`'s image indices `[steps, batch_size]`: seeded shuffles of all images.

    One epoch of `num_images // batch_size` steps visits each image at most once;
    longer epochs continue with a new shuffle.
    """
    rng = np.random.default_rng([seed, 0xC1A55, epoch])
    needed = steps * batch_size
    shuffles = [rng.permutation(num_images) for _ in range(-(-needed // num_images))]
    return np.concatenate(shuffles)[:needed].reshape(steps, batch_size).astype(np.int64)
