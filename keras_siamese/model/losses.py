"""The losses, in keras.ops (any Keras 3 backend): triplets, P x K mining, pairs and
classifiers.

Every loss measures through a `keras_siamese.model.distances.Distance`; the
batch losses can compare the square roots of the distances instead
(`mining_distance`).
"""

from __future__ import annotations

import functools

import keras
from keras import ops

from keras_siamese.choices import BATCH_MINING, SEMIHARD_RULES, check_margin
from keras_siamese.model import mining
from keras_siamese.model.distances import distance_of, loss_precision

__all__ = [
    "BatchTripletLoss",
    "ClassAccuracy",
    "ClassificationLoss",
    "ContrastiveLoss",
    "batch_all_triplet_loss",
    "batch_hard_triplet_loss",
    "batch_semihard_triplet_loss",
    "class_accuracy",
    "class_targets",
    "classification_loss",
    "contrastive_loss",
    "mining_distance",
    "triplet_loss",
]


def triplet_loss(anchor, positive, negative, distance: str, margin: float):
    """Per-sample triplet loss `relu(d(a, p) - d(a, n) + margin)`, shape `[N]`.

    For cosine distance this equals the reference's
    `relu(cos(a, n) - cos(a, p) + margin)`.
    """
    measure = distance_of(distance)
    d_ap = measure.paired(anchor, positive)
    d_an = measure.paired(anchor, negative)
    return ops.relu(d_ap - d_an + margin)


# ---------------------------------------------------------------------------
# Losses over a batch of P classes x K images: every in-batch triplet counts.


def mining_distance(embeddings, distance: str, root: bool = False):
    """The batch losses' distances between every two rows of `embeddings`.

    With `root`, their square roots: the plain (not squared) euclidean
    distance that Hermans et al. (2017) found less prone to collapse; under
    cosine distance `sqrt(1 - cos)`, the chord between the unit vectors over
    sqrt(2). Either way the order of the distances, so which triplets are
    mined, is the same; the margin is in the units returned.
    """
    return distance_of(distance, root).pairwise(embeddings, embeddings)


def batch_all_triplet_loss(labels, embeddings, distance: str, margin: float, root: bool = False):
    """Mean loss of the in-batch triplets that violate the margin, and their fraction.

    Every (anchor, positive, negative) of the batch with a positive of the
    anchor's class (not the anchor itself) and a negative of another class is
    a triplet. Returns `(loss, fraction)`: the mean over triplets with a
    positive loss, and the share of all valid triplets that have one.
    `root`: compare the square roots of the distances (`mining_distance`).
    """
    mined = mining.all_triplets(mining_distance(embeddings, distance, root), labels)
    return mining.mean_over_violating(mining.hinge(mined, margin), mined.valid)


def batch_hard_triplet_loss(
    labels,
    embeddings,
    distance: str,
    margin: float,
    soft_margin: bool = False,
    selective: bool = False,
    root: bool = False,
):
    """Mean over anchors of `relu(hardest positive - hardest negative + margin)`.

    With `soft_margin`, `softplus(hardest positive - hardest negative)` instead
    (Hermans et al. 2017): no margin, and a gradient that fades rather than stops.
    With `selective` (cosine distance only), an anchor whose hardest negative is
    nearer than its hardest positive contributes that negative's cosine
    similarity alone (the selectively contrastive loss of Xuan et al. 2020):
    such a triplet only pushes the negative away, where the hinge would also
    pull the far positive in.
    `root`: compare the square roots of the distances (`mining_distance`).
    Anchors without a positive or without a negative in the batch are left out.
    """
    if selective and distance != "cosine":
        raise ValueError(f"the selective loss is for cosine distance, not {distance!r}")
    if selective and root:
        raise ValueError("the selective loss compares cosines, not roots of distances")
    mined = mining.hardest_triplets(mining_distance(embeddings, distance, root), labels)
    if soft_margin:
        values = mining.soft_hinge(mined)
    elif selective:
        values = mining.selective_hinge(mined, margin)
    else:
        values = mining.hinge(mined, margin)
    return mining.mean_over_valid(values, mined.valid)


def batch_semihard_triplet_loss(
    labels,
    embeddings,
    distance: str,
    margin: float,
    root: bool = False,
    rule: str = "window",
):
    """The semi-hard triplet loss, averaged over (anchor, positive) pairs.

    Each pair's loss is `relu(d(a, p) - d(a, n) + margin)` for one negative n,
    chosen by `rule` (`mining.semihard_triplets`: FaceNet's window, or
    TensorFlow's rule). The two agree whenever the window holds a negative;
    otherwise "window" takes a violating triplet where "tensorflow" may take
    one beyond the margin (a loss of 0), so "window"'s loss is never the smaller.
    `root`: compare the square roots of the distances (`mining_distance`).
    Pairs whose anchor has no negative in the batch are left out.
    """
    d = mining_distance(embeddings, distance, root)
    mined = mining.semihard_triplets(d, labels, margin, rule)
    return mining.mean_over_valid(mining.hinge(mined, margin), mined.valid)


def contrastive_loss(same, distances, margin: float):
    """Per-pair `d` for same-class pairs, `relu(margin - d)` for different ones."""
    same = ops.cast(ops.reshape(same, [-1]), distances.dtype)
    distances = ops.reshape(distances, [-1])
    return same * distances + (1.0 - same) * ops.relu(margin - distances)


_BATCH_LOSSES = {
    "batch_all": lambda *args, **kwargs: batch_all_triplet_loss(*args, **kwargs)[0],
    "batch_semihard": batch_semihard_triplet_loss,
    "batch_hard": batch_hard_triplet_loss,
}


@keras.saving.register_keras_serializable(package="keras_siamese")
class BatchTripletLoss(keras.losses.Loss):
    """A batch-mining triplet loss: `y_true` are class labels, `y_pred` embeddings.

    Args:
        mining: `batch_all`, `batch_hard` or `batch_semihard`.
        distance: `cosine` or `euclidean` (squared).
        margin: triplet margin, > 0.
        soft_margin: `batch_hard` only: softplus in place of the hinge at `margin`.
        selective: `batch_hard` with cosine distance only: the selectively
            contrastive form of `batch_hard_triplet_loss`.
        warmup_steps: `batch_hard` only: training steps that use the batch-all loss
            first; they are counted by the step counter given to `count_steps_with`.
        root: compare the square roots of the distances (`mining_distance`); not
            with `selective`.
        semihard_rule: `batch_semihard` only: `window` (FaceNet's) or `tensorflow`
            (TensorFlow's `triplet_semihard_loss`); see `batch_semihard_triplet_loss`.
    """

    def __init__(
        self,
        mining: str,
        distance: str,
        margin: float,
        soft_margin: bool = False,
        selective: bool = False,
        warmup_steps: int = 0,
        root: bool = False,
        semihard_rule: str = "window",
        name: str | None = None,
    ):
        if mining not in BATCH_MINING:
            raise ValueError(f"mining must be one of {', '.join(BATCH_MINING)}, not {mining!r}")
        if soft_margin and mining != "batch_hard":
            raise ValueError(f"a soft margin is for batch_hard mining, not {mining!r}")
        if selective and (mining != "batch_hard" or distance != "cosine"):
            raise ValueError(
                f"the selective loss is for batch_hard mining under cosine distance, not "
                f"{mining!r} under {distance!r}"
            )
        if selective and root:
            raise ValueError("the selective loss compares cosines, not roots of distances")
        if warmup_steps < 0 or warmup_steps and mining != "batch_hard":
            raise ValueError(
                f"a warm-up of {warmup_steps} steps must be 0, or positive for batch_hard mining"
            )
        if semihard_rule not in SEMIHARD_RULES:
            raise ValueError(
                f"semihard_rule must be one of {', '.join(SEMIHARD_RULES)}, not {semihard_rule!r}"
            )
        if semihard_rule != "window" and mining != "batch_semihard":
            raise ValueError(f"a semi-hard rule is for batch_semihard mining, not {mining!r}")
        distance_of(distance)
        check_margin(margin)
        super().__init__(name=name or mining, reduction="sum_over_batch_size")
        self.mining, self.distance, self.margin = mining, distance, float(margin)
        self.soft_margin, self.selective = bool(soft_margin), bool(selective)
        self.warmup_steps, self.root = int(warmup_steps), bool(root)
        self.semihard_rule = semihard_rule
        self._steps = None
        options = {
            "batch_hard": dict(soft_margin=self.soft_margin, selective=self.selective),
            "batch_semihard": dict(rule=semihard_rule),
        }
        self._loss_fn = functools.partial(
            _BATCH_LOSSES[mining], root=self.root, **options.get(mining, {})
        )

    def count_steps_with(self, steps) -> None:
        """Follows `steps` (e.g. `optimizer.iterations`) to end the warm-up.

        The optimizer's counter is restored with it when a run resumes, so the
        warm-up ends at the same step as in an uninterrupted run.
        """
        self._steps = steps

    def call(self, y_true, y_pred):
        embeddings = loss_precision(y_pred)
        loss = self._loss_fn(y_true, embeddings, self.distance, self.margin)
        if not self.warmup_steps:
            return loss
        if self._steps is None:
            raise ValueError("a warm-up needs a step counter: call count_steps_with first")
        warm = batch_all_triplet_loss(
            y_true, embeddings, self.distance, self.margin, root=self.root
        )[0]
        return ops.where(ops.less(self._steps, self.warmup_steps), warm, loss)

    def get_config(self) -> dict:
        return {
            "mining": self.mining,
            "distance": self.distance,
            "margin": self.margin,
            "soft_margin": self.soft_margin,
            "selective": self.selective,
            "warmup_steps": self.warmup_steps,
            "root": self.root,
            "semihard_rule": self.semihard_rule,
            "name": self.name,
        }


def violating_fraction(y_true, y_pred, distance: str, margin: float, root: bool = False):
    """Share of the batch's valid triplets that violate the margin (a metric).

    `root`: the margin is on the square roots of the distances, as the loss's.
    """
    embeddings = loss_precision(y_pred)
    return batch_all_triplet_loss(y_true, embeddings, distance, margin, root=root)[1]


def class_targets(labels, num_classes: int):
    """Float targets `[B, C]`: one-hot rows of int `labels` (`[B]` or `[B, 1]`), or
    `labels` themselves when they already are `[B, C]` targets (mixed batches)."""
    if num_classes > 1 and len(labels.shape) == 2 and labels.shape[-1] == num_classes:
        return ops.cast(labels, "float32")
    return ops.one_hot(ops.cast(ops.reshape(labels, [-1]), "int32"), num_classes)


def classification_loss(
    labels, scores, scale: float = 1.0, margin: float = 0.0, label_smoothing: float = 0.0
):
    """Per-sample cross-entropy of class `scores` [B, C] for `labels`.

    `labels` are int class indices `[B]`, or float targets `[B, C]` (mixed
    batches), read as `class_targets` reads them; a row without a class
    (label -1, or a target row of zeros) has a loss of 0. The logits are
    `scale * (scores - margin * targets)`: a linear classifier's scores with
    scale 1 and margin 0 (softmax), or cosines with a scale and an additive
    margin on the true class (normalised softmax, CosFace; a mixed target
    takes the margin in proportion). `label_smoothing` spreads that share of
    each target evenly over all C classes.
    """
    num_classes = scores.shape[-1]
    onehot = class_targets(labels, num_classes)
    scores = loss_precision(scores)
    onehot = ops.cast(onehot, scores.dtype)
    logits = scale * (scores - margin * onehot)
    targets = onehot * (1.0 - label_smoothing) + label_smoothing / num_classes
    per_sample = -ops.sum(targets * ops.log_softmax(logits, axis=-1), axis=-1)
    return ops.where(_labelled(onehot), per_sample, 0.0)


def _labelled(targets):
    """Rows that carry a class: not the -1 labels (rows of zeros) of unlabelled images."""
    return ops.sum(targets, axis=-1) > 0.0


def class_accuracy(labels, scores):
    """Per-sample 1 where the top score is the (largest) target's class, else 0.

    Unlabelled rows (label -1) count as 0: `ClassAccuracy` leaves them out.
    """
    targets = class_targets(labels, scores.shape[-1])
    same = ops.equal(ops.argmax(targets, axis=-1), ops.argmax(scores, axis=-1))
    return ops.cast(ops.logical_and(same, _labelled(targets)), "float32")


@keras.saving.register_keras_serializable(package="keras_siamese")
class ClassAccuracy(keras.metrics.Metric):
    """Share of labelled images whose top class score is their (largest) target's class.

    Takes int labels and the float targets of mixed batches alike; images with
    label -1 (the turned copies of the rotation task) are not counted.
    """

    def __init__(self, name: str = "accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        del sample_weight  # the labels' -1 rows are the only weights used
        targets = class_targets(y_true, y_pred.shape[-1])
        self.correct.assign_add(ops.sum(class_accuracy(y_true, y_pred)))
        self.count.assign_add(ops.sum(ops.cast(_labelled(targets), "float32")))

    def result(self):
        return self.correct / ops.maximum(self.count, 1.0)


@keras.saving.register_keras_serializable(package="keras_siamese")
class ClassificationLoss(keras.losses.Loss):
    """`classification_loss` as a Keras loss: `y_true` class indices, `y_pred` class scores.

    The mean is over the labelled rows only (not the rotation task's turned copies).

    Args:
        scale: multiplies the scores (normalised softmax), > 0.
        margin: subtracted from the true class's score before scaling.
        label_smoothing: in [0, 1).
    """

    def __init__(
        self,
        scale: float = 1.0,
        margin: float = 0.0,
        label_smoothing: float = 0.0,
        name: str = "classification",
    ):
        if not scale > 0:
            raise ValueError(f"scale must be greater than 0, not {scale}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), not {label_smoothing}")
        super().__init__(name=name, reduction="sum_over_batch_size")
        self.scale, self.margin = float(scale), float(margin)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        per_sample = classification_loss(
            y_true, y_pred, self.scale, self.margin, self.label_smoothing
        )
        # Keras divides by the batch size: scaled so the loss is the labelled rows' mean.
        labelled = ops.cast(_labelled(class_targets(y_true, y_pred.shape[-1])), "float32")
        size = ops.cast(ops.shape(per_sample)[0], "float32")
        return per_sample * size / ops.maximum(ops.sum(labelled), 1.0)

    def get_config(self) -> dict:
        return {
            "scale": self.scale,
            "margin": self.margin,
            "label_smoothing": self.label_smoothing,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="keras_siamese")
class ContrastiveLoss(keras.losses.Loss):
    """The contrastive loss: `y_true` is 1 for same-class pairs, `y_pred` their distance."""

    def __init__(self, margin: float, name: str = "contrastive"):
        check_margin(margin)
        super().__init__(name=name)
        self.margin = float(margin)

    def call(self, y_true, y_pred):
        return contrastive_loss(y_true, loss_precision(y_pred), self.margin)

    def get_config(self) -> dict:
        return {"margin": self.margin, "name": self.name}
