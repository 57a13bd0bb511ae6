"""The vocabularies of the settings and the checks of single values.

Kept free of Keras and TensorFlow, so that the model modules and the settings
can share them and flags are checked before TensorFlow loads.
"""

from __future__ import annotations

from collections.abc import Sequence

from keras_siamese.errors import ConfigError

DISTANCES = ("cosine", "euclidean")
DEFAULT_MARGINS = {"cosine": 0.3, "euclidean": 1.0}
EMBEDDINGS = ("gap", "dense")
# The towers of --backbone: the reference's CIFAR ResNet, and Keras Applications networks
# (keras_siamese.model.backbones), each computing at --image_size pixels or more.
BACKBONES = (
    "resnet56",
    "efficientnetv2b0",
    "efficientnetv2s",
    "mobilenetv3small",
    "mobilenetv3large",
    "resnet50v2",
    "convnexttiny",
)
# `--backbone=hub:PRESET_OR_FOLDER`: a KerasHub image backbone (the optional `hub` extra).
HUB_PREFIX = "hub:"
BACKBONE_MINIMUM_SIZE = 32
BACKBONE_WEIGHTS = ("none", "imagenet")  # or the path of a .weights.h5 file
NECKS = ("none", "batchnorm")
# Test-time options of the embedding (keras_siamese.model.test_time).
TTAS = ("none", "flip")
CENTERS = ("none", "seen")
# The mining losses over P x K batches, by their --objective names.
BATCH_MINING = ("batch_all", "batch_hard", "batch_semihard")
# batch_semihard's choice of negative: FaceNet's window, or TensorFlow's triplet_semihard_loss.
SEMIHARD_RULES = ("window", "tensorflow")
# Quarter turns of the rotation task (--rotation_weight): 0, 90, 180 and 270 degrees.
ROTATIONS = (0, 1, 2, 3)
PAIR_HEADS = ("contrastive", "bce")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
# The arithmetic an export computes in, and the Keras policy that builds its tower.
EXPORT_PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
# auto: chosen by the machine (keras_siamese.training.devices.resolve_precision).
PRECISION_CHOICES = (*PRECISIONS, "auto")
JIT_CHOICES = ("auto", "true", "false")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")
TUNERS = ("random", "bayesian", "hyperband")
OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("constant", "cosine", "onecycle")


def check_distance(distance: str) -> None:
    """Raises ConfigError unless `distance` is a known distance."""
    if distance not in DISTANCES:
        raise ConfigError(
            f"--distance={distance} is unknown: choose one of {', '.join(DISTANCES)}."
        )


def final_map_size(image_shape: Sequence[int]) -> int:
    """Height of the tower's last feature map: two stride-2 stages, each rounding up."""
    return -(-int(image_shape[0]) // 4)


def check_pool_grid(pool_grid: int, image_shape: Sequence[int]) -> None:
    """Raises ConfigError unless the grid has 1 to `final_map_size` cells a side."""
    size = final_map_size(image_shape)
    if not 1 <= pool_grid <= size:
        raise ConfigError(
            f"--pool_grid={pool_grid} must be from 1 to {size}, the size of the last "
            f"feature map of {image_shape[0]}-pixel images."
        )


def check_margin(margin: float) -> None:
    """Raises ConfigError unless `margin` is a positive number."""
    if not margin > 0:
        raise ConfigError(f"--margin={margin} must be greater than 0.")


def check_depth(depth: int) -> None:
    """Raises ConfigError unless `depth` is a CIFAR ResNet depth, 6n + 2 with n >= 1."""
    if depth < 8 or (depth - 2) % 6:
        raise ConfigError(
            f"--depth={depth} is not a CIFAR ResNet depth: use 6n+2 (8, 20, 56, ...)."
        )
