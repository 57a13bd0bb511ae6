"""The proxy-based losses of metric learning: Proxy-Anchor, Proxy-NCA, ArcFace and
sub-center ArcFace.

Each class has a learned proxy (ArcFace's sub-center variant several), a row of a
`num_classes x dim` matrix (`num_classes * sub_centers x dim`, grouped by class);
every loss is a function of the labels and the cosines between the embeddings and
the proxies. The functions take the proxies; for a Keras model, `Proxies` is the
layer that owns them and outputs those cosines, and each loss has a
`keras.losses.Loss` that takes the cosines as `y_pred`, as a classifier's loss takes
its scores. As pytorch-metric-learning's losses of the same names, with their
defaults and reductions (each docstring says which), in keras.ops: float32 maths
under mixed precision, float64 kept, finite value and gradients on degenerate batches.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_siamese.model.distances import l2_normalize, loss_precision
from keras_siamese.model.pair_losses import FunctionLoss, masked_logsumexp

__all__ = [
    "PROXY_ANCHOR_INITIALIZER",
    "ArcFaceLoss",
    "ProxyAnchorLoss",
    "ProxyNCALoss",
    "Proxies",
    "SubCenterArcFaceLoss",
    "arcface_loss",
    "proxy_anchor_loss",
    "proxy_cosines",
    "proxy_nca_loss",
    "subcenter_arcface_loss",
]

# Proxy-Anchor's proxies start as PyTorch's kaiming_normal_(mode="fan_out") makes them:
# normal, standard deviation sqrt(2 / rows).
PROXY_ANCHOR_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_in", "distribution": "untruncated_normal"},
}
# acos is taken of cosines at most this far inside [-1, 1]: its gradient at +-1 is infinite.
_ACOS_EDGE = 1e-7


def _labels_of(labels):
    labels = ops.convert_to_tensor(labels)
    if not keras.backend.standardize_dtype(labels.dtype).startswith(("int", "uint")):
        raise ValueError(f"labels must be integers, not {labels.dtype}")
    return ops.reshape(labels, [-1])


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be greater than 0, not {value}")
    return float(value)


def proxy_cosines(embeddings, proxies, sub_centers: int = 1):
    """Cosines `[N, num_classes]` between the embeddings and each class's proxy (the
    largest over a class's `sub_centers` proxies, rows grouped by class).

    Raises:
        ValueError: for proxies whose width is not the embeddings', or whose rows do
            not divide into `sub_centers` per class.
    """
    if int(sub_centers) != sub_centers or sub_centers < 1:
        raise ValueError(f"sub_centers must be a whole number of at least 1, not {sub_centers}")
    embeddings = loss_precision(ops.convert_to_tensor(embeddings))
    proxies = ops.cast(ops.convert_to_tensor(proxies), embeddings.dtype)
    rows, width = proxies.shape
    if width != embeddings.shape[-1] or rows % sub_centers:
        raise ValueError(
            f"proxies of shape {tuple(proxies.shape)} do not fit {embeddings.shape[-1]}-d "
            f"embeddings with {sub_centers} sub-center(s) a class: expected "
            f"(num_classes * {sub_centers}, {embeddings.shape[-1]})"
        )
    cosines = ops.matmul(l2_normalize(embeddings), ops.transpose(l2_normalize(proxies)))
    if sub_centers == 1:
        return cosines
    grouped = ops.reshape(cosines, [-1, rows // sub_centers, int(sub_centers)])
    return ops.max(grouped, axis=-1)


def proxy_anchor_from_cosines(labels, cosines, *, margin=0.1, alpha=32.0):
    """`proxy_anchor_loss` from the cosines to the proxies."""
    alpha = _positive("alpha", alpha)
    labels, cosines = _labels_of(labels), loss_precision(cosines)
    num_classes = cosines.shape[-1]
    positive = ops.equal(labels[:, None], ops.arange(num_classes)[None, :])
    pos = masked_logsumexp(alpha * (margin - cosines), positive, axis=0, add_one=True)
    neg = masked_logsumexp(alpha * (cosines + margin), ops.logical_not(positive), 0, True)
    with_positives = ops.sum(ops.cast(ops.any(positive, axis=0), cosines.dtype))
    return ops.sum(pos) / ops.maximum(with_positives, 1.0) + ops.sum(neg) / num_classes


def proxy_anchor_loss(labels, embeddings, proxies, *, margin=0.1, alpha=32.0):
    """The Proxy-Anchor loss (Kim et al. 2020), on cosines `s(x, p)`.

    `(1/|P+|) sum_{p in P+} log(1 + sum_{x of p's class} exp(-alpha (s(x, p) - margin)))
    + (1/C) sum_p log(1 + sum_{x of other classes} exp(alpha (s(x, p) + margin)))`,
    where P+ are the proxies of the classes in the batch and C the number of classes;
    as pytorch-metric-learning's `ProxyAnchorLoss`, whose proxies start as
    `PROXY_ANCHOR_INITIALIZER` makes them.
    """
    return proxy_anchor_from_cosines(
        labels, proxy_cosines(embeddings, proxies), margin=margin, alpha=alpha
    )


def proxy_nca_from_cosines(labels, cosines, *, softmax_scale=1.0):
    """`proxy_nca_loss` from the cosines to the proxies."""
    softmax_scale = _positive("softmax_scale", softmax_scale)
    labels, cosines = _labels_of(labels), loss_precision(cosines)
    # The squared distance between unit vectors.
    squared = ops.maximum(2.0 - 2.0 * cosines, 0.0)
    log_p = ops.log_softmax(-softmax_scale * squared, axis=-1)
    targets = ops.one_hot(labels, cosines.shape[-1], dtype=cosines.dtype)
    return -ops.mean(ops.sum(targets * log_p, axis=-1))


def proxy_nca_loss(labels, embeddings, proxies, *, softmax_scale=1.0):
    """The Proxy-NCA loss (Movshovitz-Attias et al. 2017).

    Each embedding x of class y contributes `-log softmax(-softmax_scale d(x, p))_y`
    over the proxies p, with `d` the squared euclidean distance between the
    L2-normalised embedding and proxy; the loss is the mean over the batch. As
    pytorch-metric-learning's `ProxyNCALoss` (its distance, `LpDistance(power=2)` of
    normalised vectors; proxies drawn from a standard normal).
    """
    return proxy_nca_from_cosines(
        labels, proxy_cosines(embeddings, proxies), softmax_scale=softmax_scale
    )


def arcface_from_cosines(labels, cosines, *, margin=28.6, scale=64.0):
    """`arcface_loss` from the cosines to the proxies (the largest per class for sub-centers)."""
    if not 0 <= margin < 90:
        raise ValueError(f"margin must be from 0 to 90 degrees (less than 90), not {margin}")
    scale = _positive("scale", scale)
    labels, cosines = _labels_of(labels), loss_precision(cosines)
    targets = ops.one_hot(labels, cosines.shape[-1], dtype=cosines.dtype)
    target = ops.sum(targets * cosines, axis=-1, keepdims=True)
    angle = ops.arccos(ops.clip(target, -1.0 + _ACOS_EDGE, 1.0 - _ACOS_EDGE))
    widened = ops.cos(angle + math.radians(margin))
    logits = scale * (cosines + targets * (widened - target))
    return -ops.mean(ops.sum(targets * ops.log_softmax(logits, axis=-1), axis=-1))


def arcface_loss(labels, embeddings, proxies, *, margin=28.6, scale=64.0):
    """The additive angular margin loss, ArcFace (Deng et al. 2019).

    The softmax cross-entropy of `scale * cos(theta)` over the classes, where the
    true class's angle is widened by `margin` degrees: `scale * cos(theta_y + margin)`.
    As pytorch-metric-learning's `ArcFaceLoss`: mean over the batch, proxies from a
    standard normal. Cosines are held 1e-7 inside [-1, 1] before the arccosine, so
    that the gradient stays finite where an embedding lies on its proxy.
    """
    return arcface_from_cosines(
        labels, proxy_cosines(embeddings, proxies), margin=margin, scale=scale
    )


def subcenter_arcface_loss(labels, embeddings, proxies, *, margin=28.6, scale=64.0, sub_centers=3):
    """Sub-center ArcFace (Deng et al. 2020): ArcFace on each class's nearest of its
    `sub_centers` proxies (rows grouped by class), as pytorch-metric-learning's
    `SubCenterArcFaceLoss`."""
    cosines = proxy_cosines(embeddings, proxies, sub_centers)
    return arcface_from_cosines(labels, cosines, margin=margin, scale=scale)


@keras.saving.register_keras_serializable(package="keras_siamese")
class Proxies(keras.layers.Layer):
    """The trainable proxies of `num_classes` classes (`sub_centers` each), and the cosines
    `[N, num_classes]` of its input embeddings to them (a class's largest).

    Put it on a tower's embeddings and compile the model with one of this module's
    losses; like a classifier's weights, the proxies are a training head, not part
    of the tower. `initializer`: standard normal (Proxy-NCA, ArcFace), or
    `PROXY_ANCHOR_INITIALIZER` for Proxy-Anchor.
    """

    def __init__(
        self, num_classes: int, sub_centers: int = 1, initializer="random_normal", **kwargs
    ):
        super().__init__(**kwargs)
        if num_classes < 1 or sub_centers < 1:
            raise ValueError(
                f"num_classes and sub_centers must be at least 1, not {num_classes} and "
                f"{sub_centers}"
            )
        self.num_classes, self.sub_centers = int(num_classes), int(sub_centers)
        if initializer == "random_normal":
            initializer = keras.initializers.RandomNormal(stddev=1.0)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self.proxies = self.add_weight(
            shape=(self.num_classes * self.sub_centers, int(input_shape[-1])),
            initializer=self.initializer,
            name="proxies",
        )

    def call(self, embeddings):
        return proxy_cosines(embeddings, self.proxies, self.sub_centers)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "sub_centers": self.sub_centers,
            "initializer": keras.initializers.serialize(self.initializer),
        }


class _ProxyLoss(FunctionLoss):
    """A proxy-based loss for `model.compile`: `y_true` integer labels, `y_pred` the
    cosines that `Proxies` outputs."""


@keras.saving.register_keras_serializable(package="keras_siamese")
class ProxyAnchorLoss(_ProxyLoss):
    """`proxy_anchor_loss` on the cosines of `Proxies(initializer=PROXY_ANCHOR_INITIALIZER)`."""

    _function = staticmethod(proxy_anchor_from_cosines)

    def __init__(self, margin=0.1, alpha=32.0, name=None):
        _positive("alpha", alpha)
        super().__init__(name=name, margin=margin, alpha=alpha)


@keras.saving.register_keras_serializable(package="keras_siamese")
class ProxyNCALoss(_ProxyLoss):
    """`proxy_nca_loss` on the cosines of `Proxies`."""

    _function = staticmethod(proxy_nca_from_cosines)

    def __init__(self, softmax_scale=1.0, name=None):
        _positive("softmax_scale", softmax_scale)
        super().__init__(name=name, softmax_scale=softmax_scale)


@keras.saving.register_keras_serializable(package="keras_siamese")
class ArcFaceLoss(_ProxyLoss):
    """`arcface_loss` on the cosines of `Proxies` (with `sub_centers`: sub-center ArcFace)."""

    _function = staticmethod(arcface_from_cosines)

    def __init__(self, margin=28.6, scale=64.0, name=None):
        if not 0 <= margin < 90:
            raise ValueError(f"margin must be from 0 to 90 degrees (less than 90), not {margin}")
        _positive("scale", scale)
        super().__init__(name=name, margin=margin, scale=scale)


@keras.saving.register_keras_serializable(package="keras_siamese")
class SubCenterArcFaceLoss(ArcFaceLoss):
    """`subcenter_arcface_loss` on the cosines of `Proxies(num_classes, sub_centers=K)`,
    which already keep each class's nearest sub-center."""
