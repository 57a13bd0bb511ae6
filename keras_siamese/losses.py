"""Distances and the triplet loss, in keras.ops (any Keras 3 backend).

Distances follow the reference project: cosine distance is `1 - cos(x, y)`;
euclidean distance is the squared L2 distance, which the loss uses directly
(no square root, so no infinite gradient at zero distance).
"""

from __future__ import annotations

from keras import ops

from keras_siamese.config import DEFAULT_MARGINS, DISTANCES, check_distance, check_margin

__all__ = [
    "DEFAULT_MARGINS",
    "DISTANCES",
    "check_distance",
    "check_margin",
    "l2_normalize",
    "paired_distance",
    "pairwise_distance",
    "triplet_loss",
]


def l2_normalize(x, epsilon: float = 1e-12):
    """Scales each row of `x` to unit L2 norm (rows of zeros stay zero)."""
    squared = ops.sum(ops.square(x), axis=-1, keepdims=True)
    return x * ops.rsqrt(ops.maximum(squared, epsilon))


def paired_distance(x, y, distance: str):
    """Distance between matching rows of `x` and `y`, shape `[N]`."""
    check_distance(distance)
    if distance == "cosine":
        return 1.0 - ops.sum(l2_normalize(x) * l2_normalize(y), axis=-1)
    return ops.sum(ops.square(x - y), axis=-1)


def pairwise_distance(x, y, distance: str):
    """Distances between every row of `x` and every row of `y`, shape `[..., N, M]`.

    Leading batch dimensions, if any, must match: `[B, N, D]` and `[B, M, D]`
    give `[B, N, M]`.
    """
    check_distance(distance)
    if distance == "cosine":
        return 1.0 - ops.matmul(l2_normalize(x), ops.swapaxes(l2_normalize(y), -1, -2))
    x_sq = ops.sum(ops.square(x), axis=-1, keepdims=True)
    y_sq = ops.sum(ops.square(y), axis=-1, keepdims=True)
    squared = x_sq + ops.swapaxes(y_sq, -1, -2) - 2.0 * ops.matmul(x, ops.swapaxes(y, -1, -2))
    return ops.maximum(squared, 0.0)


def triplet_loss(anchor, positive, negative, distance: str, margin: float):
    """Per-sample triplet loss `relu(d(a, p) - d(a, n) + margin)`, shape `[N]`.

    For cosine distance this equals the reference's
    `relu(cos(a, n) - cos(a, p) + margin)`.
    """
    d_ap = paired_distance(anchor, positive, distance)
    d_an = paired_distance(anchor, negative, distance)
    return ops.relu(d_ap - d_an + margin)
