"""Triplets mined inside a batch, the per-triplet losses, and how they are averaged.

A batch-mining loss is three choices, as in pytorch-metric-learning's miners,
losses and reducers: which (anchor, positive, negative) triplets of the batch
count (a miner), the loss of each triplet, and the mean that makes them one
number (a reduction). Everything keeps static shapes: a miner returns the
distances of every candidate slot and a mask of the real ones, so the same
graph serves every batch.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from keras import ops

from keras_siamese.choices import SEMIHARD_RULES

# Stand-ins for "no such distance" in the masked minima and maxima.
_FAR, _NEAR = 1e9, -1e9
# A triplet whose loss is above this violates the margin (batch_all's count).
VIOLATION = 1e-16


@dataclasses.dataclass(frozen=True)
class Mined:
    """Triplets picked by a miner: `d(a, p)` and `d(a, n)` of one shape, broadcastable,
    and `valid`, the mask of the slots that are real triplets."""

    positive: Any
    negative: Any
    valid: Any


def label_masks(labels) -> tuple[Any, Any]:
    """`[N, N]` masks of a batch: same class but not the same image, and another class."""
    labels = ops.reshape(labels, [-1])
    same = ops.equal(labels[:, None], labels[None, :])
    not_self = ops.logical_not(ops.eye(ops.shape(labels)[0], dtype="bool"))
    return ops.logical_and(same, not_self), ops.logical_not(same)


def all_triplets(d, labels) -> Mined:
    """Every (anchor, positive, negative) of the batch, slots `[N, N, N]`."""
    positive, negative = label_masks(labels)
    valid = ops.logical_and(positive[:, :, None], negative[:, None, :])
    return Mined(d[:, :, None], d[:, None, :], valid)


def hardest_triplets(d, labels) -> Mined:
    """Each anchor's farthest positive and nearest negative, slots `[N]`; anchors without
    a positive or a negative in the batch are not valid."""
    positive, negative = label_masks(labels)
    hardest_positive = ops.max(ops.where(positive, d, _NEAR), axis=1)
    hardest_negative = ops.min(ops.where(negative, d, _FAR), axis=1)
    usable = ops.logical_and(ops.any(positive, axis=1), ops.any(negative, axis=1))
    return Mined(hardest_positive, hardest_negative, usable)


def semihard_triplets(d, labels, margin: float, rule: str = "window") -> Mined:
    """One negative for each (anchor, positive) pair, slots `[N, N]`.

    - `rule="window"` (FaceNet's semi-hard negatives): the closest negative inside
      the window `d(a, p) < d(a, n) < d(a, p) + margin`; when the window is empty,
      the anchor's hardest (closest) negative of all.
    - `rule="tensorflow"` (TensorFlow Addons' `triplet_semihard_loss`): the closest
      negative farther than the positive, `d(a, n) > d(a, p)`, with no upper limit;
      only when no negative is farther, the anchor's farthest negative.
    Pairs whose anchor has no negative in the batch are not valid.
    """
    if rule not in SEMIHARD_RULES:
        raise ValueError(f"rule must be one of {', '.join(SEMIHARD_RULES)}, not {rule!r}")
    positive, negative = label_masks(labels)
    d_ap = d[:, :, None]
    d_an = d[:, None, :]
    farther = ops.logical_and(negative[:, None, :], d_an > d_ap)
    if rule == "window":
        candidates = ops.logical_and(farther, d_an < d_ap + margin)
        fallback = ops.min(ops.where(negative, d, _FAR), axis=1)[:, None]
    else:
        candidates = farther
        fallback = ops.max(ops.where(negative, d, _NEAR), axis=1)[:, None]
    closest_candidate = ops.min(ops.where(candidates, d_an, _FAR), axis=2)
    chosen = ops.where(ops.any(candidates, axis=2), closest_candidate, fallback)
    usable = ops.logical_and(positive, ops.any(negative, axis=1)[:, None])
    return Mined(d, chosen, usable)


# Per-triplet losses.


def hinge(mined: Mined, margin: float):
    """`relu(d(a, p) - d(a, n) + margin)`, 0 where the slot is not a triplet."""
    return ops.where(mined.valid, ops.relu(mined.positive - mined.negative + margin), 0.0)


def soft_hinge(mined: Mined):
    """`softplus(d(a, p) - d(a, n))` (the soft margin of Hermans et al. 2017)."""
    return ops.where(mined.valid, ops.softplus(mined.positive - mined.negative), 0.0)


def selective_hinge(mined: Mined, margin: float):
    """The hinge, except where the negative is nearer than the positive: there the
    negative's cosine similarity `1 - d(a, n)` alone (the selectively contrastive loss of
    Xuan et al. 2020), which only pushes the negative away. Cosine distance only."""
    gap = mined.positive - mined.negative
    values = ops.where(gap > 0, 1.0 - mined.negative, ops.relu(gap + margin))
    return ops.where(mined.valid, values, 0.0)


# Reductions.


def mean_over_valid(values, valid):
    """The mean over the real triplets (0 when there is none)."""
    count = ops.sum(ops.cast(valid, values.dtype))
    return ops.sum(values) / ops.maximum(count, 1.0)


def mean_over_violating(values, valid) -> tuple[Any, Any]:
    """The mean over the triplets with a positive loss (pytorch-metric-learning's
    `AvgNonZeroReducer`), and their share of the real triplets."""
    violating = ops.sum(ops.cast(values > VIOLATION, values.dtype))
    mean = ops.sum(values) / ops.maximum(violating, 1.0)
    share = violating / ops.maximum(ops.sum(ops.cast(valid, values.dtype)), 1.0)
    return mean, share
