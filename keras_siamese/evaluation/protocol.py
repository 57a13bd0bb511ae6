"""The evaluation protocol, defined once: every metric from one embedding matrix.

Every image is embedded once (`embed_partition`); `evaluate` then computes,
from those embeddings alone:

Seen classes (test images):
  * triplet accuracy on seeded random triplets, correct when d(a, p) < d(a, n);
  * pair accuracy on balanced same/different pairs, at a threshold calibrated
    on validation pairs (never on test) and at the reference's fixed threshold;
    ROC AUC and equal-error rate.

Unseen classes (test images), absent when a split has none:
  * few-shot pair accuracy on balanced pairs, and the reference's version
    (first image of each class against every other image, fixed threshold)
    beside the score of always answering "different";
  * N-way one-shot classification over all unseen classes, with the first
    image of each class as support, and averaged over seeded random supports;
  * episodic W-way K-shot classification (nearest class mean);
  * retrieval: recall@1 and MAP@R, leaving each query out of the gallery.

A pair counts as "same" when its distance is at most the threshold. Distances
are those of `keras_siamese.model.losses` (cosine: `1 - cos`; euclidean: squared
L2). Every accuracy carries the half-width of its 95% confidence interval.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras
import numpy as np

from keras_siamese.evaluation.results import (
    Accuracy,
    Episodes,
    FewShotPairs,
    Metrics,
    OneShot,
    ReferenceFewShot,
    Retrieval,
    SeenMetrics,
    SeenPairs,
    ThresholdAccuracy,
    UnseenMetrics,
)
from keras_siamese.model import distances

EVAL_TRIPLETS = 10_000
EVAL_PAIRS = 10_000
RANDOM_SUPPORT_DRAWS = 100
EPISODES = 1000
QUERIES_PER_CLASS = 15

# Independent random streams for each sampled quantity of one seed.
_TRIPLETS, _TIES, _VAL_PAIRS, _SEEN_PAIRS, _UNSEEN_PAIRS, _SUPPORTS, _EPISODES = range(7)


def _rng(seed: int, stream: int, *extra: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, *extra])


# Rows of gathered embeddings per distance computation: memory stays bounded for wide
# embeddings (a pooling grid's), where gathering every pair at once would not.
_CHUNK_ROWS = 2048


def _paired_distances(e: np.ndarray, left: np.ndarray, right: np.ndarray, distance: str):
    """`paired_distance(e[left], e[right])`, computed a chunk of rows at a time."""
    parts = [
        _numpy(
            distances.paired_distance(
                e[left[i : i + _CHUNK_ROWS]], e[right[i : i + _CHUNK_ROWS]], distance
            )
        )
        for i in range(0, len(left), _CHUNK_ROWS)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _numpy(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


# ----------------------------------------------------------------- embedding


@dataclasses.dataclass(frozen=True)
class Embeddings:
    """Embeddings and labels of the three image sets that the protocol uses."""

    seen: np.ndarray
    seen_labels: np.ndarray
    unseen: np.ndarray
    unseen_labels: np.ndarray
    val: np.ndarray
    val_labels: np.ndarray


def embed(
    tower: keras.Model,
    images: np.ndarray,
    batch_size: int = 500,
    verbose: int = 1,
    label: str = "images",
) -> np.ndarray:
    """Embeds uint8 images in batches; returns a float32 `[N, D]` array.

    With `verbose`, a line `Embedding N <label>` names what the progress bar counts.
    """
    if len(images) == 0:
        return np.zeros((0, tower.output_shape[-1]), np.float32)
    if verbose:
        print(f"Embedding {len(images):,} {label}", flush=True)
    return np.asarray(tower.predict(images, batch_size=batch_size, verbose=verbose), np.float32)


def embed_partition(
    tower: keras.Model, part, batch_size: int = 500, verbose: int = 1
) -> Embeddings:
    """Embeds the test images (seen and unseen classes) and the validation images of `part`.

    Args:
        tower: the embedding model (uint8 images in).
        part: a `keras_siamese.data.splits.Partition`.
        batch_size: images per forward pass.
        verbose: Keras progress display (0 silent, 1 bar, 2 one line).
    """
    images = [part.test_seen_images, part.test_unseen_images, part.val_images]
    sizes = [len(x) for x in images]
    every = embed(
        tower,
        np.concatenate(images),
        batch_size=batch_size,
        verbose=verbose,
        label="test and validation images",
    )
    seen, unseen, val = np.split(every, np.cumsum(sizes)[:-1])
    return Embeddings(
        seen=seen,
        seen_labels=np.asarray(part.test_seen_labels),
        unseen=unseen,
        unseen_labels=np.asarray(part.test_unseen_labels),
        val=val,
        val_labels=np.asarray(part.val_labels),
    )


# ------------------------------------------------------------------ triplets


def _class_layout(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Classes, their sizes, the indices sorted by class, and where each class starts there.

    `order[offsets[c] + i]` is the index of the i-th image of the c-th class.
    """
    classes, counts = np.unique(labels, return_counts=True)
    order = np.argsort(labels, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return classes, counts, order, offsets


def sample_triplets(
    labels: np.ndarray, num_triplets: int, seed: int, stream: int = _TRIPLETS
) -> np.ndarray:
    """Seeded `[num_triplets, 3]` indices: anchor/positive share a class, negative differs.

    Classes with a single image can be negatives but never anchors. `stream`
    keeps the draws of different uses of one seed independent.
    """
    labels = np.asarray(labels)
    rng = _rng(seed, stream)
    classes, counts, order, offsets = _class_layout(labels)
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
    """Fraction of seeded random triplets with d(anchor, positive) < d(anchor, negative).

    A tie is decided by a seeded coin, so a model that cannot tell images apart
    scores chance (0.5), not zero.
    """
    t = sample_triplets(labels, num_triplets, seed)
    e = np.asarray(embeddings)
    d_ap = _paired_distances(e, t[:, 0], t[:, 1], distance)
    d_an = _paired_distances(e, t[:, 0], t[:, 2], distance)
    coin = _rng(seed, _TIES).random(num_triplets) < 0.5
    return Accuracy.from_hits((d_ap < d_an) | ((d_ap == d_an) & coin))


# --------------------------------------------------------------------- pairs


@dataclasses.dataclass(frozen=True)
class PairScores:
    """Distances of image pairs and whether each pair shows one class."""

    distances: np.ndarray
    same: np.ndarray


def sample_pairs(
    labels: np.ndarray, num_pairs: int, seed: int, stream: int = _SEEN_PAIRS
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded balanced pairs: `[num_pairs, 2]` indices and a bool "same class" per pair.

    The first half are same-class pairs of two different images, the second
    half different-class pairs.
    """
    t = sample_triplets(labels, (num_pairs + 1) // 2, seed, stream)
    positives = t[:, [0, 1]]
    negatives = t[: num_pairs // 2, [0, 2]]
    same = np.concatenate([np.ones(len(positives), bool), np.zeros(len(negatives), bool)])
    return np.concatenate([positives, negatives]), same


def pair_scores(
    embeddings: np.ndarray,
    labels: np.ndarray,
    distance: str,
    num_pairs: int = EVAL_PAIRS,
    seed: int = 0,
    stream: int = _SEEN_PAIRS,
) -> PairScores:
    """Distances of `num_pairs` seeded balanced pairs drawn from `labels`."""
    pairs, same = sample_pairs(labels, num_pairs, seed, stream)
    e = np.asarray(embeddings)
    d = _paired_distances(e, pairs[:, 0], pairs[:, 1], distance)
    return PairScores(distances=d.astype(np.float64), same=same)


def pair_accuracy(scores: PairScores, threshold: float) -> Accuracy:
    """Accuracy of answering "same" exactly when the distance is at most `threshold`."""
    return Accuracy.from_hits((scores.distances <= threshold) == scores.same)


def calibrate_threshold(scores: PairScores) -> float:
    """The distance threshold that maximises pair accuracy on `scores`.

    Every split between two distinct sorted distances is a candidate; the
    threshold is placed midway between them. Ties go to the smallest threshold.
    """
    order = np.argsort(scores.distances, kind="stable")
    d = scores.distances[order]
    same = scores.same[order]
    if len(d) == 0:
        raise ValueError("calibration needs at least one pair")
    # correct[k]: pairs 0..k-1 answered "same", the rest "different".
    same_below = np.concatenate([[0], np.cumsum(same)])
    diff_above = np.concatenate([np.cumsum((~same)[::-1])[::-1], [0]])
    correct = same_below + diff_above
    # A split inside a run of equal distances cannot be realised by a threshold.
    allowed = np.ones(len(d) + 1, bool)
    allowed[1:-1] = d[1:] > d[:-1]
    k = int(np.argmax(np.where(allowed, correct, -1)))
    if k == 0:
        return float(np.nextafter(d[0], -np.inf))
    if k == len(d):
        return float(d[-1])
    return float((d[k - 1] + d[k]) / 2.0)


def roc_curve(scores: PairScores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates of answering "same" at each distinct threshold.

    Returns:
        (fpr, tpr, thresholds), from the strictest threshold (nothing "same")
        to the loosest (everything "same").
    """
    d = np.unique(scores.distances)
    positives = max(int(scores.same.sum()), 1)
    negatives = max(int((~scores.same).sum()), 1)
    order = np.argsort(scores.distances, kind="stable")
    sorted_d = scores.distances[order]
    tp = np.cumsum(scores.same[order])
    fp = np.cumsum(~scores.same[order])
    last = np.searchsorted(sorted_d, d, side="right") - 1  # last pair within each threshold
    tpr = np.concatenate([[0.0], tp[last] / positives])
    fpr = np.concatenate([[0.0], fp[last] / negatives])
    thresholds = np.concatenate([[-np.inf], d])
    return fpr, tpr, thresholds


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.concatenate([[True], sorted_x[1:] != sorted_x[:-1]])
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.concatenate([first[1:], [len(x)]]) - 1
    ranks = np.empty(len(x))
    ranks[order] = (first[group] + last[group]) / 2.0 + 1.0
    return ranks


def roc_auc(scores: PairScores) -> float:
    """Probability that a same-class pair is closer than a different-class pair (ties: half)."""
    n_pos = int(scores.same.sum())
    n_neg = len(scores.same) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs pairs of both kinds")
    # Mann-Whitney U on "closeness" = -distance.
    ranks = _average_ranks(-scores.distances)
    u = ranks[scores.same].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def equal_error_rate(scores: PairScores) -> float:
    """The error rate where false accepts and false rejects are equally frequent.

    Interpolated linearly between the two ROC points that bracket the crossing.
    """
    fpr, tpr, _ = roc_curve(scores)
    fnr = 1.0 - tpr
    gap = fnr - fpr  # decreasing from 1 to -1 along the curve
    i = int(np.flatnonzero(gap <= 0)[0])
    if i == 0 or gap[i] == gap[i - 1]:
        return float((fnr[i] + fpr[i]) / 2.0)
    w = gap[i - 1] / (gap[i - 1] - gap[i])
    return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))


def reference_fewshot_pairs(
    embeddings: np.ndarray, labels: np.ndarray, distance: str
) -> PairScores:
    """The reference's few-shot pairs: each class's first image against every non-support image.

    About 1/K of these pairs are positives for K classes, so answering
    "different" to all of them scores about 1 - 1/K.
    """
    labels = np.asarray(labels)
    supports = first_image_supports(labels)
    queries = np.setdiff1d(np.arange(len(labels)), supports)
    d = _numpy(distances.pairwise_distance(embeddings[queries], embeddings[supports], distance))
    same = labels[queries][:, None] == labels[supports][None, :]
    return PairScores(distances=d.reshape(-1).astype(np.float64), same=same.reshape(-1))


# ------------------------------------------------------ one-shot classification


def first_image_supports(labels: np.ndarray) -> np.ndarray:
    """Index of the first image of each class, in sorted class order."""
    return np.unique(np.asarray(labels), return_index=True)[1]


def nearest_support_accuracy(
    embeddings: np.ndarray, labels: np.ndarray, supports: np.ndarray, distance: str
) -> Accuracy:
    """Classifies every non-support image as the class of its nearest support."""
    labels = np.asarray(labels)
    queries = np.setdiff1d(np.arange(len(labels)), supports)
    d = _numpy(distances.pairwise_distance(embeddings[queries], embeddings[supports], distance))
    predicted = labels[supports][np.argmin(d, axis=1)]
    return Accuracy.from_hits(predicted == labels[queries])


def oneshot_accuracy(embeddings: np.ndarray, labels: np.ndarray, distance: str) -> Accuracy:
    """N-way one-shot accuracy with the first image of each class as its support.

    Every other image is a query; N is the number of classes in `labels`.
    """
    return nearest_support_accuracy(embeddings, labels, first_image_supports(labels), distance)


def random_supports(labels: np.ndarray, draws: int, seed: int) -> np.ndarray:
    """`[draws, N]` support indices: one seeded random image of each class per draw."""
    labels = np.asarray(labels)
    classes, counts, order, offsets = _class_layout(labels)
    picks = (_rng(seed, _SUPPORTS).random((draws, len(classes))) * counts).astype(np.int64)
    return order[offsets + picks]


def random_support_accuracy(
    embeddings: np.ndarray,
    labels: np.ndarray,
    distance: str,
    draws: int = RANDOM_SUPPORT_DRAWS,
    seed: int = 0,
) -> Accuracy:
    """N-way one-shot accuracy averaged over `draws` seeded random choices of supports."""
    per_draw = [
        nearest_support_accuracy(embeddings, labels, supports, distance).value
        for supports in random_supports(labels, draws, seed)
    ]
    return Accuracy.from_means(np.array(per_draw))


def sample_episodes(
    labels: np.ndarray, ways: int, shots: int, queries: int, episodes: int, seed: int
) -> np.ndarray:
    """Seeded episodes: `[episodes, ways, shots + queries]` image indices.

    Each episode draws `ways` distinct classes and, from each, `shots +
    queries` distinct images (supports first).

    Raises:
        ValueError: when there are fewer than `ways` classes, or a class has
            fewer than `shots + queries` images.
    """
    labels = np.asarray(labels)
    classes, counts, order, offsets = _class_layout(labels)
    per_class = shots + queries
    if len(classes) < ways:
        raise ValueError(f"{ways}-way episodes need {ways} classes, found {len(classes)}")
    if counts.min() < per_class:
        raise ValueError(
            f"{shots}-shot episodes with {queries} queries need {per_class} images per class; "
            f"class {classes[np.argmin(counts)]} has {counts.min()}"
        )
    rng = _rng(seed, _EPISODES, ways, shots, queries)
    chosen = np.argsort(rng.random((episodes, len(classes))), axis=1)[:, :ways]
    # Random keys per image, with padding slots sorted last, give a distinct sample.
    keys = rng.random((episodes, ways, counts.max()))
    keys[np.arange(counts.max()) >= counts[chosen][..., None]] = np.inf
    picks = np.argsort(keys, axis=2)[..., :per_class]
    return order[offsets[chosen][..., None] + picks]


def episodic_accuracy(
    embeddings: np.ndarray,
    labels: np.ndarray,
    distance: str,
    ways: int,
    shots: int,
    queries: int = QUERIES_PER_CLASS,
    episodes: int = EPISODES,
    seed: int = 0,
) -> Accuracy:
    """Mean accuracy of seeded W-way K-shot episodes, each query given its nearest class mean.

    For cosine distance the class mean is taken over unit-length embeddings.
    """
    idx = sample_episodes(labels, ways, shots, queries, episodes, seed)
    e = np.asarray(embeddings, np.float32)
    means_of = _numpy(distances.class_mean_space(e, distance))
    truth = np.repeat(np.arange(ways), queries)
    per_episode = []
    # A chunk of episodes at a time: all of them at once gather E * W * Q embeddings.
    step = max(1, _CHUNK_ROWS // (ways * queries))
    for start in range(0, episodes, step):
        chunk = idx[start : start + step]
        prototypes = means_of[chunk[:, :, :shots]].mean(axis=2)  # [E, W, D]
        query_emb = e[chunk[:, :, shots:]].reshape(len(chunk), ways * queries, -1)
        d = _numpy(distances.pairwise_distance(query_emb, prototypes, distance))  # [E, W*Q, W]
        per_episode.append((np.argmin(d, axis=2) == truth).mean(axis=1))
    return Accuracy.from_means(np.concatenate(per_episode))


# ----------------------------------------------------------------- retrieval


def retrieval_scores(
    embeddings: np.ndarray, labels: np.ndarray, distance: str, chunk: int = 1024
) -> dict[str, Accuracy]:
    """Recall@1 and MAP@R, each image a query against all the others.

    MAP@R (Musgrave et al., 2020): with R the number of other images of the
    query's class, the mean over the first R results of precision@i at each
    relevant result, divided by R. Queries alone in their class are skipped.
    """
    labels = np.asarray(labels)
    e = np.asarray(embeddings, np.float32)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    r = counts[inverse] - 1
    r_max = int(r.max()) if len(r) else 0
    if r_max == 0:
        raise ValueError("retrieval needs a class with two images")
    hits1, average_precision = [], []
    ranks = np.arange(1, r_max + 1)
    for start in range(0, len(e), chunk):
        rows = np.arange(start, min(start + chunk, len(e)))
        d = _numpy(distances.pairwise_distance(e[rows], e, distance)).astype(np.float64)
        d[np.arange(len(rows)), rows] = np.inf  # a query is not its own result
        top = np.argpartition(d, r_max - 1, axis=1)[:, :r_max]
        top = np.take_along_axis(top, np.argsort(np.take_along_axis(d, top, 1), 1), 1)
        relevant = labels[top] == labels[rows][:, None]
        within_r = ranks[None, :] <= r[rows][:, None]
        precision = np.cumsum(relevant, axis=1) / ranks
        ap = (precision * relevant * within_r).sum(axis=1) / np.maximum(r[rows], 1)
        keep = r[rows] > 0
        hits1.append(relevant[keep, 0])
        average_precision.append(ap[keep])
    return Retrieval(
        recall_at_1=Accuracy.from_hits(np.concatenate(hits1)),
        map_at_r=Accuracy.from_means(np.concatenate(average_precision)),
    )


# ------------------------------------------------------------------ protocol


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """The metrics of one model and the seen-class pair scores behind them."""

    metrics: Metrics
    seen_pairs: PairScores
    calibrated_threshold: float | None


def evaluate(
    emb: Embeddings,
    distance: str,
    seed: int = 0,
    ways: int = 5,
    shots: Sequence[int] = (1, 5),
) -> Evaluation:
    """Computes the whole protocol from one set of embeddings.

    Args:
        emb: embeddings of the seen and unseen classes' test images and of the
            validation images.
        distance: `cosine` or `euclidean`.
        seed: seed of every sampled triplet, pair, support and episode.
        ways: classes per episode.
        shots: support images per class, one episodic result per entry.

    Returns:
        An Evaluation. Metrics of a kind the data cannot support (no unseen
        classes, no validation images, fewer unseen classes than `ways`) are
        absent (None), never zero; `notes` in the metrics says why.
    """
    distances.distance_of(distance)
    fixed = distances.FIXED_THRESHOLDS[distance]
    notes: list[str] = []
    seen_pairs = pair_scores(emb.seen, emb.seen_labels, distance, seed=seed)
    threshold = calibrated = None
    val_classes, val_counts = np.unique(emb.val_labels, return_counts=True)
    if len(val_classes) >= 2 and val_counts.max() >= 2:
        val_pairs = pair_scores(emb.val, emb.val_labels, distance, seed=seed, stream=_VAL_PAIRS)
        threshold = calibrate_threshold(val_pairs)
        calibrated = ThresholdAccuracy(threshold, pair_accuracy(seen_pairs, threshold))
    else:
        notes.append("no validation pairs (too few validation images): no calibrated threshold")
    seen = SeenMetrics(
        classes=len(np.unique(emb.seen_labels)),
        triplet_accuracy=triplet_accuracy(emb.seen, emb.seen_labels, distance, seed=seed),
        pair=SeenPairs(
            fixed=ThresholdAccuracy(fixed, pair_accuracy(seen_pairs, fixed)),
            roc_auc=roc_auc(seen_pairs),
            equal_error_rate=equal_error_rate(seen_pairs),
            calibrated=calibrated,
        ),
    )
    unseen = None
    if len(emb.unseen_labels):
        unseen = _unseen_metrics(emb, distance, seed, threshold, ways, shots, notes)
    else:
        notes.append("no unseen classes: unseen-class metrics are absent")
    metrics = Metrics(
        distance=distance, evaluation_seed=seed, seen=seen, unseen=unseen, notes=notes
    )
    return Evaluation(metrics=metrics, seen_pairs=seen_pairs, calibrated_threshold=threshold)


def _unseen_metrics(
    emb: Embeddings,
    distance: str,
    seed: int,
    threshold: float | None,
    ways: int,
    shots: Sequence[int],
    notes: list[str],
) -> UnseenMetrics:
    e, labels = emb.unseen, emb.unseen_labels
    fixed = distances.FIXED_THRESHOLDS[distance]
    num_classes = len(np.unique(labels))
    balanced = pair_scores(e, labels, distance, seed=seed, stream=_UNSEEN_PAIRS)
    reference = reference_fewshot_pairs(e, labels, distance)
    fewshot = FewShotPairs(
        balanced_fixed=pair_accuracy(balanced, fixed),
        reference=ReferenceFewShot(
            threshold=fixed,
            accuracy=pair_accuracy(reference, fixed),
            always_different=float(1.0 - reference.same.mean()),
            positive_fraction=float(reference.same.mean()),
        ),
        balanced_calibrated=None if threshold is None else pair_accuracy(balanced, threshold),
    )
    episodes = []
    for k in shots:
        try:
            acc = episodic_accuracy(e, labels, distance, ways, k, seed=seed)
        except ValueError as err:
            notes.append(f"no {ways}-way {k}-shot episodes: {err}")
            continue
        episodes.append(Episodes(ways, k, QUERIES_PER_CLASS, EPISODES, acc))
    return UnseenMetrics(
        classes=num_classes,
        fewshot_pairs=fewshot,
        oneshot=OneShot(
            ways=num_classes,
            chance=1.0 / num_classes,
            first_support=oneshot_accuracy(e, labels, distance),
            random_supports=random_support_accuracy(e, labels, distance, seed=seed),
        ),
        episodes=episodes,
        retrieval=retrieval_scores(e, labels, distance),
    )


def summary_lines(metrics: Metrics) -> list[str]:
    """Human-readable lines for the headline metrics of `evaluate`."""
    pair = metrics.seen.pair
    lines = [f"Triplet accuracy (seen classes): {metrics.seen.triplet_accuracy}"]
    if pair.calibrated:
        lines.append(
            f"Pair accuracy (seen classes, calibrated threshold "
            f"{pair.calibrated.threshold:.4f}): {pair.calibrated.accuracy}"
        )
    lines.append(
        f"Pair accuracy (seen classes, fixed threshold {pair.fixed.threshold}): "
        f"{pair.fixed.accuracy}; ROC AUC {pair.roc_auc:.4f}, EER {pair.equal_error_rate:.4f}"
    )
    unseen = metrics.unseen
    if unseen:
        ref = unseen.fewshot_pairs.reference
        lines.append(
            f"Reference few-shot pair accuracy (unseen classes): {ref.accuracy} "
            f"(always answering 'different': {ref.always_different:.4f})"
        )
        one = unseen.oneshot
        lines.append(
            f"{one.ways}-way one-shot accuracy (unseen classes): first-image supports "
            f"{one.first_support}, random supports {one.random_supports} "
            f"(chance {one.chance:.4f})"
        )
        for ep in unseen.episodes:
            lines.append(f"{ep.ways}-way {ep.shots}-shot episodes (unseen classes): {ep.accuracy}")
        lines.append(
            f"Retrieval (unseen classes): recall@1 {unseen.retrieval.recall_at_1}, "
            f"MAP@R {unseen.retrieval.map_at_r}"
        )
    for row in metrics.with_options or []:
        lines.append(f"With {row.name} (extra row): {_headline(row.metrics)}")
    lines.extend(f"Note: {n}" for n in metrics.notes)
    return lines


def _headline(metrics: Metrics) -> str:
    """The headline accuracies of `metrics` in one line."""
    parts = [f"triplet accuracy {metrics.seen.triplet_accuracy}"]
    if metrics.unseen:
        one = metrics.unseen.oneshot
        parts.append(f"{one.ways}-way one-shot (random supports) {one.random_supports}")
        parts += [f"{ep.ways}-way {ep.shots}-shot {ep.accuracy}" for ep in metrics.unseen.episodes]
        parts.append(f"recall@1 {metrics.unseen.retrieval.recall_at_1}")
    return "; ".join(parts)
