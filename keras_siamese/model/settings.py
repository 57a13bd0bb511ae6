"""The settings of the tower: its network, weights, embedding and pooling; checked without
Keras."""

from __future__ import annotations

import dataclasses
import os

from keras_siamese.choices import (
    BACKBONE_MINIMUM_SIZE,
    BACKBONE_WEIGHTS,
    BACKBONES,
    EMBEDDINGS,
    HUB_PREFIX,
    NECKS,
    check_depth,
    check_pool_grid,
)
from keras_siamese.errors import ConfigError
from keras_siamese.settings import setting

# The tower of the reference, which computes at the data's own size.
REFERENCE_BACKBONE = BACKBONES[0]


@dataclasses.dataclass(frozen=True)
class TowerSettings:
    """The embedding tower every objective trains."""

    TITLE = "Tower"

    depth: int = setting(56, "ResNet depth, 6n+2 (56, 20, 8).")
    embedding: str = setting(
        "gap",
        "gap: 64-d global average pool (the reference); dense: projection to --embedding_dim.",
        EMBEDDINGS,
    )
    embedding_dim: int = setting(64, "Size of the dense embedding.")
    pool_grid: int = setting(
        1,
        "Average-pool the last feature map over a G x G grid of cells (neighbouring cells "
        "share a row or column when G does not divide the map) and concatenate them: "
        "G*G*64 values that keep where in the image each feature is (what --embedding=dense "
        "projects); 1: the reference's global average pool.",
    )
    neck: str = setting(
        "none",
        "batchnorm: batch-normalise the embedding (no offset), so that it starts centred "
        "instead of in one narrow cone; none: the reference's embedding.",
        NECKS,
    )
    l2_normalize: bool = setting(False, "Scale embeddings to unit length.")
    float32_head: bool = setting(
        False,
        "Pool the last feature map and project it in float32 under a mixed-precision "
        "--precision (otherwise the mean and the embedding are rounded to 16 bits).",
    )
    backbone: str = setting(
        REFERENCE_BACKBONE,
        "The tower under the pooling and embedding head: resnet56, the reference's CIFAR "
        f"ResNet (with --depth); a Keras Applications network ({', '.join(BACKBONES[1:])}; "
        "ImageNet sizes: 224 pixels, efficientnetv2s 384); or hub:PRESET, a KerasHub image "
        "backbone from a preset name or folder, with its weights (pip install "
        "'keras-siamese[hub]'). The latter two compute at --image_size pixels (at least "
        "32; smaller images, CIFAR-100's included, are resized inside the tower).",
    )
    backbone_weights: str = setting(
        "none",
        "A Keras Applications backbone's starting weights: none (random), imagenet (Keras's "
        "download, cached in ~/.keras/models), the path of a .weights.h5 file of the "
        "network without its top, or an export of this project with the same backbone "
        "(its network's weights; the head starts afresh).",
    )
    freeze_backbone_epochs: int = setting(
        0,
        "A Keras Applications backbone: the first N epochs train the head (and proxies or "
        "classifier) with the tower's weights unchanged; then the whole tower fine-tunes.",
    )
    backbone_lr_multiplier: float = setting(
        1.0,
        "A Keras Applications backbone's learning rate over the head's (for example 0.1 to "
        "fine-tune a pretrained tower gently), > 0.",
    )
    train_backbone_norm: bool = setting(
        False,
        "Train the batch-normalisation layers of a pretrained backbone (--backbone_weights "
        "imagenet or a file); by default they stay in inference mode with their pretrained "
        "statistics, which small batches would spoil.",
    )

    @property
    def uses_application(self) -> bool:
        """Whether the tower is a Keras Applications or KerasHub network, not the CIFAR
        ResNet."""
        return self.backbone != REFERENCE_BACKBONE

    def check_tower(self, image_shape: tuple[int, int, int], size: int) -> None:
        """Raises ConfigError for a tower that cannot be built on images of `image_shape`
        computing at `size` pixels."""
        if self.embedding_dim < 1:
            raise ConfigError(f"--embedding_dim={self.embedding_dim} must be at least 1.")
        hub = self.backbone.startswith(HUB_PREFIX)
        if self.backbone not in BACKBONES and not (hub and len(self.backbone) > len(HUB_PREFIX)):
            raise ConfigError(
                f"--backbone={self.backbone} is unknown: choose one of {', '.join(BACKBONES)}, "
                "or hub:PRESET for a KerasHub preset."
            )
        if hub and self.backbone_weights != "none":
            raise ConfigError(
                f"--backbone_weights is for a Keras Applications --backbone: the KerasHub preset "
                f"{self.backbone[len(HUB_PREFIX) :]} brings its own weights."
            )
        if not self.backbone_lr_multiplier > 0:
            raise ConfigError(
                f"--backbone_lr_multiplier={self.backbone_lr_multiplier} must be greater than 0."
            )
        if self.freeze_backbone_epochs < 0:
            raise ConfigError(
                f"--freeze_backbone_epochs={self.freeze_backbone_epochs} must be 0 or more."
            )
        if not self.uses_application:
            check_depth(self.depth)
            fine_tuning = [
                name
                for name, value, default in (
                    ("freeze_backbone_epochs", self.freeze_backbone_epochs, 0),
                    ("backbone_lr_multiplier", self.backbone_lr_multiplier, 1.0),
                    ("train_backbone_norm", self.train_backbone_norm, False),
                )
                if value != default
            ]
            if fine_tuning:
                raise ConfigError(
                    f"--{fine_tuning[0]} is for a Keras Applications --backbone, not resnet56."
                )
            if self.backbone_weights != "none":
                raise ConfigError(
                    "--backbone_weights is for a Keras Applications --backbone: resnet56 starts "
                    "from random weights, or from an export with --init_from."
                )
            check_pool_grid(self.pool_grid, image_shape)
            return
        if self.depth != 56:
            raise ConfigError(
                f"--depth is resnet56's: --backbone={self.backbone} has its own depth."
            )
        if size < BACKBONE_MINIMUM_SIZE:
            raise ConfigError(
                f"--image_size={size} is below --backbone={self.backbone}'s minimum of "
                f"{BACKBONE_MINIMUM_SIZE} pixels."
            )
        weights = self.backbone_weights
        exists = os.path.isfile(weights) or os.path.isfile(os.path.join(weights, "metadata.json"))
        if weights not in BACKBONE_WEIGHTS and not exists:
            raise ConfigError(
                f"--backbone_weights={weights} is neither none, imagenet, a file nor an "
                "export: give the path of a .weights.h5 file or of a run's export folder."
            )
        final = -(-size // 32)
        if not 1 <= self.pool_grid <= final:
            raise ConfigError(
                f"--pool_grid={self.pool_grid} must be from 1 to {final}, the size of the last "
                f"feature map of {self.backbone} at {size} pixels."
            )
