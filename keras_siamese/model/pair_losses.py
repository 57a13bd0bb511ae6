"""The pair-based losses of metric learning, on a batch of integer labels and embeddings.

Multi-similarity, circle, NT-Xent (InfoNCE), supervised contrastive and the
generalised lifted structure loss, in keras.ops (any Keras 3 backend). Every
pair (i, j) of the batch counts, i != j: a positive pair where the labels are
equal, a negative one where they differ; no miner picks among them. Where a
paper leaves a choice open (how the batch is reduced, what an anchor without
a positive contributes, the similarity), each follows pytorch-metric-learning's
default, as its docstring says, so that a figure from a PyTorch project
transfers. The maths runs in float32 under mixed precision (float64 stays
float64); every loss is 0 where no pair it needs exists, and finite, with
finite gradients, on degenerate batches.

Each also takes `memory=(embeddings, labels)`: images of earlier batches (a
cross-batch memory, Wang et al. 2020; `keras_siamese.model.memory`) that every
image of the batch is paired with too, as constants. The batch's own pairs keep
their gradients, so an empty memory gives the loss without one; where
pytorch-metric-learning's `CrossBatchMemory` pairs the batch only with the
memory it has just been added to, the values are the same and the batch's own
pairs have a gradient through both of their images instead of one.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_siamese.model.distances import l2_normalize, loss_precision
from keras_siamese.model.mining import label_masks

__all__ = [
    "CircleLoss",
    "FunctionLoss",
    "LiftedStructureLoss",
    "MultiSimilarityLoss",
    "NTXentLoss",
    "SupConLoss",
    "circle_loss",
    "lifted_structure_loss",
    "masked_logsumexp",
    "multi_similarity_loss",
    "ntxent_loss",
    "supcon_loss",
]

# Stands for "left out" inside a masked logsumexp: exp of it is exactly 0.
_OUT = -1e9
# The lifted structure loss's smallest squared distance, under its square root.
_SMALLEST_SQUARED = 1e-12


def masked_logsumexp(x, mask, axis: int = -1, add_one: bool = False):
    """`log(sum(exp(x)))` over the entries where `mask` holds (plus `exp(0)` with
    `add_one`), along `axis`; 0 where no entry is kept, with a finite gradient.

    pytorch-metric-learning's `logsumexp(x, keep_mask, add_one)`.
    """
    kept = ops.where(mask, x, _OUT)
    top = ops.max(kept, axis=axis, keepdims=True)
    if add_one:
        top = ops.maximum(top, 0.0)
    top = ops.stop_gradient(top)
    total = ops.sum(ops.where(mask, ops.exp(kept - top), 0.0), axis=axis, keepdims=True)
    if add_one:
        return ops.squeeze(ops.log(total + ops.exp(-top)) + top, axis=axis)
    any_kept = ops.any(mask, axis=axis, keepdims=True)
    # log(1) where nothing is kept, so that no infinity reaches a gradient.
    out = ops.log(ops.where(any_kept, total, 1.0)) + top
    return ops.squeeze(ops.where(any_kept, out, 0.0), axis=axis)


def _checked(labels, embeddings):
    """The labels as a vector of integers and the embeddings in a loss's precision.

    Raises:
        ValueError: for labels that are not integers, or of another length.
    """
    embeddings = loss_precision(ops.convert_to_tensor(embeddings))
    labels = ops.convert_to_tensor(labels)
    if not keras.backend.standardize_dtype(labels.dtype).startswith(("int", "uint")):
        raise ValueError(f"labels must be integers, not {labels.dtype}")
    labels = ops.reshape(labels, [-1])
    lengths = labels.shape[0], embeddings.shape[0]
    if None not in lengths and lengths[0] != lengths[1]:
        raise ValueError(
            f"labels and embeddings differ in length: {lengths[0]} labels, {lengths[1]} embeddings"
        )
    return labels, embeddings


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be greater than 0, not {value}")
    return float(value)


def _pairs(labels, embeddings, memory):
    """The cosine similarities of each image of the batch to every other image of the
    batch and of the memory, `[N, N + M]`, with the masks of the positive and negative
    pairs among them.

    `memory`: None, or `(embeddings, labels)` of M earlier images, constants; a
    negative label marks an empty slot, which pairs with nothing.
    """
    unit = l2_normalize(embeddings)
    if memory is None:
        positive, negative = label_masks(labels)
        return ops.matmul(unit, ops.transpose(unit)), positive, negative
    stored, stored_labels = memory
    stored = ops.stop_gradient(l2_normalize(ops.cast(stored, unit.dtype)))
    stored_labels = ops.reshape(ops.cast(stored_labels, labels.dtype), [-1])
    rows = stored.shape[0], stored_labels.shape[0]
    if None not in rows and rows[0] != rows[1]:
        raise ValueError(f"memory: {rows[0]} embeddings but {rows[1]} labels")
    references = ops.concatenate([unit, stored], axis=0)
    reference_labels = ops.concatenate([labels, stored_labels], axis=0)
    n, total = ops.shape(labels)[0], ops.shape(reference_labels)[0]
    same = ops.equal(labels[:, None], reference_labels[None, :])
    not_self = ops.not_equal(ops.arange(n)[:, None], ops.arange(total)[None, :])
    filled = ops.concatenate([ops.ones_like(labels, "bool"), stored_labels >= 0], axis=0)
    positive = ops.logical_and(ops.logical_and(same, not_self), filled[None, :])
    negative = ops.logical_and(ops.logical_not(same), filled[None, :])
    return ops.matmul(unit, ops.transpose(references)), positive, negative


def multi_similarity_loss(labels, embeddings, *, alpha=2.0, beta=50.0, base=0.5, memory=None):
    """The multi-similarity loss (Wang et al. 2019) on cosine similarities `S`.

    Each anchor i contributes
    `(1/alpha) log(1 + sum_p exp(-alpha (S_ip - base)))
    + (1/beta) log(1 + sum_n exp(beta (S_in - base)))` over its positives p and
    negatives n (a term without pairs is 0); the loss is the mean over anchors.
    As pytorch-metric-learning's `MultiSimilarityLoss`: every pair counts (the
    paper's pair mining is a separate miner there), mean over all anchors.
    """
    alpha, beta = _positive("alpha", alpha), _positive("beta", beta)
    labels, embeddings = _checked(labels, embeddings)
    s, positive, negative = _pairs(labels, embeddings, memory)
    pos = masked_logsumexp(alpha * (base - s), positive, add_one=True) / alpha
    neg = masked_logsumexp(beta * (s - base), negative, add_one=True) / beta
    return ops.mean(pos + neg)


def circle_loss(labels, embeddings, *, m=0.4, gamma=80.0, memory=None):
    """The circle loss (Sun et al. 2020) on cosine similarities `S`.

    With optima `O_p = 1 + m`, `O_n = -m` and margins `D_p = 1 - m`, `D_n = m`,
    each anchor contributes
    `softplus(logsumexp_p(-gamma a_p (S_ip - D_p)) + logsumexp_n(gamma a_n (S_in - D_n)))`,
    with weights `a_p = relu(O_p - S_ip)`, `a_n = relu(S_in - O_n)` held constant
    (no gradient flows through them). An anchor without a positive or a negative
    contributes 0; as pytorch-metric-learning's `CircleLoss`, the loss is the mean
    over the anchors whose loss is above 0.
    """
    if not 0 <= m <= 1:
        raise ValueError(f"m must be from 0 to 1, not {m}")
    gamma = _positive("gamma", gamma)
    labels, embeddings = _checked(labels, embeddings)
    s, positive, negative = _pairs(labels, embeddings, memory)
    alpha_p = ops.stop_gradient(ops.relu(1.0 + m - s))
    alpha_n = ops.stop_gradient(ops.relu(s + m))
    pos = masked_logsumexp(-gamma * alpha_p * (s - (1.0 - m)), positive)
    neg = masked_logsumexp(gamma * alpha_n * (s - m), negative)
    both = ops.logical_and(ops.any(positive, axis=1), ops.any(negative, axis=1))
    per_anchor = ops.where(both, ops.softplus(pos + neg), 0.0)
    return _mean_above_zero(per_anchor)


def _mean_above_zero(values):
    """The mean of the values above 0 (pytorch-metric-learning's `AvgNonZeroReducer`)."""
    count = ops.sum(ops.cast(values > 0, values.dtype))
    return ops.sum(values) / ops.maximum(count, 1.0)


def ntxent_loss(labels, embeddings, *, temperature=0.07, memory=None):
    """The NT-Xent (normalised temperature-scaled cross-entropy, InfoNCE) loss.

    Each positive pair (a, p) is a softmax over `S/temperature` that must pick p
    among p and a's negatives: `-log(exp(S_ap/t) / (exp(S_ap/t) + sum_n exp(S_an/t)))`.
    As pytorch-metric-learning's `NTXentLoss`: the mean over every positive pair of
    the batch, 0 when the batch has no positive or no negative pair.
    """
    temperature = _positive("temperature", temperature)
    labels, embeddings = _checked(labels, embeddings)
    s, positive, negative = _pairs(labels, embeddings, memory)
    s = s / temperature
    # For pair (a, p): log(exp(S_ap) + sum_n exp(S_an)) - S_ap.
    negatives = masked_logsumexp(s, negative)  # [N]; 0 where a has no negative
    has_negative = ops.any(negative, axis=1)
    s_an = ops.where(has_negative, negatives, _OUT)[:, None]
    log_denominator = ops.logaddexp(s, s_an)  # log(exp(S_ap) + exp(logsumexp_n S_an))
    per_pair = ops.where(positive, log_denominator - s, 0.0)
    pairs = ops.sum(ops.cast(positive, s.dtype))
    some_negative = ops.any(negative)
    loss = ops.sum(per_pair) / ops.maximum(pairs, 1.0)
    return ops.where(some_negative, loss, 0.0)


def supcon_loss(labels, embeddings, *, temperature=0.1, memory=None):
    """The supervised contrastive loss (Khosla et al. 2020), `L_out`.

    Each anchor i contributes `-(1/|P_i|) sum_p log(exp(S_ip/t) / sum_{k != i} exp(S_ik/t))`
    over its positives p. As pytorch-metric-learning's `SupConLoss`: the mean over
    the anchors whose loss is above 0 (an anchor without a positive contributes 0),
    0 when the batch has no positive or no negative pair.
    """
    temperature = _positive("temperature", temperature)
    labels, embeddings = _checked(labels, embeddings)
    s, positive, negative = _pairs(labels, embeddings, memory)
    s = s / temperature
    others = ops.logical_or(positive, negative)
    log_prob = s - masked_logsumexp(s, others)[:, None]
    count = ops.sum(ops.cast(positive, s.dtype), axis=1)
    per_anchor = -ops.sum(ops.where(positive, log_prob, 0.0), axis=1) / ops.maximum(count, 1.0)
    loss = _mean_above_zero(ops.where(count > 0, per_anchor, 0.0))
    return ops.where(ops.logical_and(ops.any(positive), ops.any(negative)), loss, 0.0)


def lifted_structure_loss(labels, embeddings, *, neg_margin=1.0, pos_margin=0.0, memory=None):
    """The generalised lifted structure loss (Hermans et al. 2017, after Oh Song et al.).

    On euclidean distances `d` between the L2-normalised embeddings, each anchor
    contributes `relu(logsumexp_p(d_ap - pos_margin) + logsumexp_n(neg_margin - d_an))`
    (a term without pairs is 0). As pytorch-metric-learning's
    `GeneralizedLiftedStructureLoss`: the distance of normalised embeddings (its
    `LpDistance` default), the mean over all anchors.
    """
    labels, embeddings = _checked(labels, embeddings)
    s, positive, negative = _pairs(labels, embeddings, memory)
    squared = ops.maximum(2.0 - 2.0 * s, 0.0)
    # The root of 0 (coinciding embeddings) has no finite gradient: distances start at 1e-6.
    d = ops.sqrt(ops.maximum(squared, _SMALLEST_SQUARED))
    pos = masked_logsumexp(d - pos_margin, positive)
    neg = masked_logsumexp(neg_margin - d, negative)
    return ops.mean(ops.relu(pos + neg))


class FunctionLoss(keras.losses.Loss):
    """A loss for `model.compile` that calls one of these pure functions with its options:
    `y_true` integer labels, `y_pred` what the function takes beside them. A subclass
    names the function (`_function`) and checks its options (`_check`) when it is made."""

    _function = None

    def __init__(self, name: str | None = None, **options):
        # Checked now, so that a bad value fails where the loss is made.
        self._check(options)
        super().__init__(name=name or self.__class__.__name__, reduction="sum_over_batch_size")
        self.options = options

    def _check(self, options: dict) -> None:
        """Raises ValueError for an option out of its range."""

    def call(self, y_true, y_pred):
        return type(self)._function(ops.cast(y_true, "int32"), y_pred, **self.options)

    def get_config(self) -> dict:
        return {"name": self.name, **self.options}


class _PairLoss(FunctionLoss):
    """A pair-based loss for `model.compile`: `y_true` integer labels, `y_pred` embeddings."""

    # Its function takes `memory`: `CrossBatchMemoryLoss` can wrap it.
    takes_memory = True

    def _check(self, options: dict) -> None:
        for key, value in options.items():
            if key in ("alpha", "beta", "gamma", "temperature"):
                _positive(key, value)
        if "m" in options and not 0 <= options["m"] <= 1:
            raise ValueError(f"m must be from 0 to 1, not {options['m']}")


@keras.saving.register_keras_serializable(package="keras_siamese")
class MultiSimilarityLoss(_PairLoss):
    """`multi_similarity_loss` for `model.compile`."""

    _function = staticmethod(multi_similarity_loss)

    def __init__(self, alpha=2.0, beta=50.0, base=0.5, name=None):
        super().__init__(name=name, alpha=alpha, beta=beta, base=base)


@keras.saving.register_keras_serializable(package="keras_siamese")
class CircleLoss(_PairLoss):
    """`circle_loss` for `model.compile`."""

    _function = staticmethod(circle_loss)

    def __init__(self, m=0.4, gamma=80.0, name=None):
        super().__init__(name=name, m=m, gamma=gamma)


@keras.saving.register_keras_serializable(package="keras_siamese")
class NTXentLoss(_PairLoss):
    """`ntxent_loss` for `model.compile`."""

    _function = staticmethod(ntxent_loss)

    def __init__(self, temperature=0.07, name=None):
        super().__init__(name=name, temperature=temperature)


@keras.saving.register_keras_serializable(package="keras_siamese")
class SupConLoss(_PairLoss):
    """`supcon_loss` for `model.compile`."""

    _function = staticmethod(supcon_loss)

    def __init__(self, temperature=0.1, name=None):
        super().__init__(name=name, temperature=temperature)


@keras.saving.register_keras_serializable(package="keras_siamese")
class LiftedStructureLoss(_PairLoss):
    """`lifted_structure_loss` for `model.compile`."""

    _function = staticmethod(lifted_structure_loss)

    def __init__(self, neg_margin=1.0, pos_margin=0.0, name=None):
        super().__init__(name=name, neg_margin=neg_margin, pos_margin=pos_margin)
