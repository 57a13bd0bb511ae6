"""The metric-learning losses, for Keras 3 on any backend: one import for a user's model.

Each loss is a pure function (labels and embeddings in, a scalar out; the
proxy-based ones also take the proxies) and a Keras object to compile a model
with. The pair-based and batch-mining losses take integer labels as `y_true` and
embeddings as `y_pred`; the proxy-based ones take the cosines that a `Proxies`
layer on the embeddings outputs, as a classifier's loss takes its scores:

    embeddings = tower(images)
    model = keras.Model(images, embeddings)
    model.compile(optimizer="adam", loss=keras_siamese.losses.MultiSimilarityLoss())

    cosines = keras_siamese.losses.Proxies(num_classes)(embeddings)
    model = keras.Model(images, cosines)
    model.compile(optimizer="adam", loss=keras_siamese.losses.ArcFaceLoss())

A `CrossBatchMemory` layer pairs the pair-based losses with earlier batches' images too
(`memory.wrap(loss)`). Defaults and reductions follow pytorch-metric-learning's losses of
the same names.
"""

from __future__ import annotations

from keras import ops

from keras_siamese.model.losses import (
    BatchTripletLoss,
    ClassificationLoss,
    ContrastiveLoss,
    batch_all_triplet_loss,
    batch_hard_triplet_loss,
    batch_semihard_triplet_loss,
    classification_loss,
    contrastive_loss,
    triplet_loss,
)
from keras_siamese.model.memory import CrossBatchMemory, CrossBatchMemoryLoss
from keras_siamese.model.pair_losses import (
    CircleLoss,
    LiftedStructureLoss,
    MultiSimilarityLoss,
    NTXentLoss,
    SupConLoss,
    circle_loss,
    lifted_structure_loss,
    multi_similarity_loss,
    ntxent_loss,
    supcon_loss,
)
from keras_siamese.model.proxy_losses import (
    PROXY_ANCHOR_INITIALIZER,
    ArcFaceLoss,
    Proxies,
    ProxyAnchorLoss,
    ProxyNCALoss,
    SubCenterArcFaceLoss,
    arcface_loss,
    proxy_anchor_loss,
    proxy_cosines,
    proxy_nca_loss,
    subcenter_arcface_loss,
)

__all__ = [
    "PROXY_ANCHOR_INITIALIZER",
    "ArcFaceLoss",
    "BatchTripletLoss",
    "CircleLoss",
    "ClassificationLoss",
    "ContrastiveLoss",
    "CrossBatchMemory",
    "CrossBatchMemoryLoss",
    "LiftedStructureLoss",
    "MultiSimilarityLoss",
    "NTXentLoss",
    "Proxies",
    "ProxyAnchorLoss",
    "ProxyNCALoss",
    "SubCenterArcFaceLoss",
    "SupConLoss",
    "arcface_loss",
    "batch_all_triplet_loss",
    "batch_hard_triplet_loss",
    "batch_semihard_triplet_loss",
    "circle_loss",
    "contrastive_loss",
    "cosface_loss",
    "lifted_structure_loss",
    "multi_similarity_loss",
    "ntxent_loss",
    "proxy_anchor_loss",
    "proxy_cosines",
    "proxy_nca_loss",
    "subcenter_arcface_loss",
    "supcon_loss",
    "triplet_loss",
]


def cosface_loss(labels, embeddings, proxies, *, margin=0.35, scale=64.0):
    """The large margin cosine loss, CosFace (Wang et al. 2018), the normalised softmax
    with an additive margin: the cross-entropy of `scale * (cos - margin)` on the true
    class and `scale * cos` on the others, mean over the batch. The defaults are
    pytorch-metric-learning's `CosFaceLoss`'s; the fast recipe's normalised softmax
    (`--objective=normsoftmax`) takes a scale of 16 and no margin.
    """
    if not scale > 0:
        raise ValueError(f"scale must be greater than 0, not {scale}")
    cosines = proxy_cosines(embeddings, proxies)
    return ops.mean(classification_loss(labels, cosines, scale=scale, margin=margin))
