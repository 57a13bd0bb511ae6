"""Distances between embeddings, as objects, in keras.ops (any Keras 3 backend).

Distances follow the reference project: cosine distance is `1 - cos(x, y)`;
euclidean distance is the squared L2 distance, which the losses use directly
(no square root, so no infinite gradient at zero distance). A distance of
power 0.5 is the square root of one, kept finite by a small offset: the plain
euclidean distance of Hermans et al. (2017), or `sqrt(1 - cos)` for cosine.
A root keeps the order of the distances, so what is nearest is unchanged.

Evaluation, serving and the losses all measure through these objects;
`distance_of(name)` gives the one a run's `--distance` names.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_siamese.choices import DISTANCES, check_distance

__all__ = [
    "DISTANCES",
    "FIXED_THRESHOLDS",
    "CosineDistance",
    "Distance",
    "SquaredEuclideanDistance",
    "class_mean_space",
    "distance_of",
    "l2_normalize",
    "loss_precision",
    "paired_distance",
    "pairwise_distance",
]
# The reference's "same" rules: cosine similarity > 0.2, i.e. cosine distance < 0.8;
# (squared) euclidean distance <= 1.0.
FIXED_THRESHOLDS = {"cosine": 0.8, "euclidean": 1.0}
# Added under a root: its gradient stays finite at zero distance.
ROOT_EPSILON = 1e-8


def loss_precision(x):
    """`x` in the precision a loss computes in: float32 for 16-bit inputs (mixed
    precision), float32 and float64 as they are."""
    if keras.backend.standardize_dtype(x.dtype) in ("float32", "float64"):
        return x
    return ops.cast(x, "float32")


def l2_normalize(x, epsilon: float = 1e-12):
    """Scales each row of `x` to unit L2 norm (rows of zeros stay zero)."""
    squared = ops.sum(ops.square(x), axis=-1, keepdims=True)
    return x * ops.rsqrt(ops.maximum(squared, epsilon))


class Distance:
    """A distance between embeddings: of matching rows, of every two rows, and the space
    in which class means are taken.

    Args:
        power: 1 for the distance as defined; 0.5 for its square root (offset by
            `ROOT_EPSILON`). Other powers are not used and refused.
    """

    name = ""

    def __init__(self, power: float = 1.0):
        if power not in (1.0, 0.5):
            raise ValueError(f"a distance's power is 1 or 0.5, not {power}")
        self.power = float(power)

    def __repr__(self) -> str:
        power = "" if self.power == 1.0 else f", power={self.power:g}"
        return f"{type(self).__name__}({self.name!r}{power})"

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.power == self.power

    def __hash__(self) -> int:
        return hash((self.name, self.power))

    @property
    def fixed_threshold(self) -> float:
        """The reference's fixed "same" threshold for the distance (power 1)."""
        return FIXED_THRESHOLDS[self.name]

    def _raised(self, d):
        return d if self.power == 1.0 else ops.sqrt(d + ROOT_EPSILON)

    def paired(self, x, y):
        """Distance between matching rows of `x` and `y`, shape `[N]`."""
        return self._raised(self._paired(x, y))

    def pairwise(self, x, y):
        """Distances between every row of `x` and every row of `y`, shape `[..., N, M]`.

        Leading batch dimensions, if any, must match: `[B, N, D]` and `[B, M, D]`
        give `[B, N, M]`.
        """
        return self._raised(self._pairwise(x, y))

    def mean_space(self, x):
        """`x` as class means are taken of it (the nearest-class-mean rule)."""
        return x

    def _paired(self, x, y):
        raise NotImplementedError

    def _pairwise(self, x, y):
        raise NotImplementedError


class CosineDistance(Distance):
    """`1 - cos(x, y)`, clamped at 0: in floating point `1 - cos(x, x)` can be -1e-7, and
    roots are taken of these distances. Class means average directions (unit-length
    rows), so no support outweighs another by its norm."""

    name = "cosine"

    def _paired(self, x, y):
        return ops.maximum(1.0 - ops.sum(l2_normalize(x) * l2_normalize(y), axis=-1), 0.0)

    def _pairwise(self, x, y):
        cosines = ops.matmul(l2_normalize(x), ops.swapaxes(l2_normalize(y), -1, -2))
        return ops.maximum(1.0 - cosines, 0.0)

    def mean_space(self, x):
        return l2_normalize(x)


class SquaredEuclideanDistance(Distance):
    """`|x - y|^2`, the reference's euclidean distance."""

    name = "euclidean"

    def _paired(self, x, y):
        return ops.sum(ops.square(x - y), axis=-1)

    def _pairwise(self, x, y):
        x_sq = ops.sum(ops.square(x), axis=-1, keepdims=True)
        y_sq = ops.sum(ops.square(y), axis=-1, keepdims=True)
        cross = ops.matmul(x, ops.swapaxes(y, -1, -2))
        return ops.maximum(x_sq + ops.swapaxes(y_sq, -1, -2) - 2.0 * cross, 0.0)


_CLASSES = {cls.name: cls for cls in (CosineDistance, SquaredEuclideanDistance)}


def distance_of(distance: str | Distance, root: bool = False) -> Distance:
    """The distance named `distance` (one of `DISTANCES`), or its root with `root`.

    Raises:
        ConfigError: for an unknown name.
    """
    if isinstance(distance, Distance):
        return type(distance)(0.5 if root else distance.power)
    check_distance(distance)
    return _CLASSES[distance](0.5 if root else 1.0)


def paired_distance(x, y, distance: str | Distance):
    """Distance between matching rows of `x` and `y`, shape `[N]`."""
    return distance_of(distance).paired(x, y)


def pairwise_distance(x, y, distance: str | Distance):
    """Distances between every row of `x` and every row of `y`, shape `[..., N, M]`."""
    return distance_of(distance).pairwise(x, y)


def class_mean_space(x, distance: str | Distance):
    """`x` as class means are taken of it: unit-length rows for cosine distance."""
    return distance_of(distance).mean_space(x)
