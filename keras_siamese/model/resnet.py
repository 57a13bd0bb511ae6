"""The CIFAR ResNet embedding tower (He et al. 2016, section 4.2).

Three stages of `n` basic blocks with 16, 32 and 64 channels, depth `6n + 2`,
option-A (parameter-free) shortcuts, batch norm and Kaiming-normal init, as
in the reference project. The tower takes uint8 images and normalises them
itself, so the pipeline and the exported model both carry raw pixels.
"""

from __future__ import annotations

import functools

import keras
from keras import layers, ops

from keras_siamese.choices import EMBEDDINGS, NECKS, check_depth, check_pool_grid
from keras_siamese.errors import ConfigError
from keras_siamese.model.fused_norm import FusedBatchNormalization

# PyTorch's kaiming_normal_ (fan_in, gain sqrt(2), not truncated).
_KAIMING_NORMAL = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_in", "distribution": "untruncated_normal"},
}
# PyTorch's BatchNorm2d defaults, as the reference used them.
_BN = {"momentum": 0.9, "epsilon": 1e-5}


@keras.saving.register_keras_serializable(package="keras_siamese")
class ShortcutA(layers.Layer):
    """Option-A shortcut: subsample spatially by `stride`, zero-pad channels."""

    def __init__(self, out_channels: int, stride: int, **kwargs):
        super().__init__(**kwargs)
        self.out_channels = out_channels
        self.stride = stride

    def call(self, x):
        if self.stride > 1:
            x = x[:, :: self.stride, :: self.stride, :]
        extra = self.out_channels - x.shape[-1]
        return ops.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape

        def reduce(size):
            return None if size is None else -(-size // self.stride)

        return (batch, reduce(height), reduce(width), self.out_channels)

    def get_config(self) -> dict:
        return {**super().get_config(), "out_channels": self.out_channels, "stride": self.stride}


def _conv(channels: int, stride: int, name: str):
    padding = "same" if stride == 1 else "valid"
    return layers.Conv2D(
        channels,
        3,
        strides=stride,
        padding=padding,
        use_bias=False,
        kernel_initializer=_KAIMING_NORMAL,
        name=name,
    )


def _conv_bn(x, channels: int, stride: int, name: str, norm: type):
    if stride > 1:
        # Symmetric padding, as PyTorch's padding=1 (Keras "same" pads unevenly).
        x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    x = _conv(channels, stride, f"{name}_conv")(x)
    return norm(**_BN, name=f"{name}_bn")(x)


def _basic_block(x, channels: int, stride: int, name: str, norm: type):
    y = _conv_bn(x, channels, stride, f"{name}_1", norm)
    y = layers.ReLU(name=f"{name}_1_relu")(y)
    y = _conv_bn(y, channels, 1, f"{name}_2", norm)
    shortcut = x
    if stride != 1 or x.shape[-1] != channels:
        shortcut = ShortcutA(channels, stride, name=f"{name}_shortcut")(x)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def resnet_tower(
    depth: int,
    input_shape: tuple[int, int, int],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    embedding: str = "gap",
    embedding_dim: int = 64,
    l2_normalize: bool = False,
    neck: str = "none",
    pool_grid: int = 1,
    name: str | None = None,
    fused_batch_norm: bool = True,
    float32_head: bool = False,
) -> keras.Model:
    """Builds the embedding tower: uint8 images in, float32 embeddings out.

    Args:
        depth: 6n + 2 (56 for the reference's ResNet56, 8 for tests).
        input_shape: `(H, W, C)` of the images.
        mean: per-channel mean of pixels scaled to [0, 1].
        std: per-channel standard deviation of pixels scaled to [0, 1].
        embedding: `gap` (the 64-d global average pool after the last ReLU, as
            the reference) or `dense` (a linear projection to `embedding_dim`).
        embedding_dim: size of the dense projection; ignored for `gap`.
        l2_normalize: scale embeddings to unit length.
        neck: `none`, or `batchnorm`: batch normalisation of the embedding
            without a learned offset (before any L2 normalisation).
        pool_grid: average the last feature map over a `pool_grid` x
            `pool_grid` grid of cells and concatenate them (1: global pool).
        name: model name; defaults to `resnet{depth}`.
        fused_batch_norm: batch normalisation in TensorFlow's fused kernel (the same
            math; see `fused_norm`); False: Keras's element-wise ops.
        float32_head: pool and project in float32 under a mixed-precision policy.

    Returns:
        A functional `keras.Model` mapping `[N, H, W, C]` uint8 to `[N, D]` float32.
    """
    check_depth(depth)
    if embedding not in EMBEDDINGS:
        raise ConfigError(f"--embedding={embedding} is unknown: choose gap or dense.")
    if embedding == "dense" and embedding_dim < 1:
        raise ConfigError(f"--embedding_dim={embedding_dim} must be at least 1.")
    if neck not in NECKS:
        raise ConfigError(f"--neck={neck} is unknown: choose none or batchnorm.")
    if len(mean) != input_shape[-1] or len(std) != input_shape[-1]:
        raise ValueError("mean and std need one value per image channel")
    check_pool_grid(pool_grid, input_shape)
    blocks_per_stage = (depth - 2) // 6
    images = keras.Input(shape=input_shape, dtype="uint8", name="images")
    # Preprocessing stays float32 whatever the mixed-precision policy.
    x = layers.Rescaling(1.0 / 255.0, dtype="float32", name="rescale")(images)
    x = layers.Normalization(
        mean=list(mean), variance=[s * s for s in std], dtype="float32", name="normalize"
    )(x)
    norm = FusedBatchNormalization if fused_batch_norm else layers.BatchNormalization
    x = _conv_bn(x, 16, 1, "stem", norm)
    x = layers.ReLU(name="stem_relu")(x)
    for stage, channels in enumerate((16, 32, 64)):
        for block in range(blocks_per_stage):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, channels, stride, f"stage{stage + 1}_block{block + 1}", norm)
    x = embedding_head(x, embedding, embedding_dim, l2_normalize, neck, pool_grid, float32_head)
    return keras.Model(images, x, name=name or f"resnet{depth}")


def embedding_head(
    features,
    embedding: str,
    embedding_dim: int,
    l2_normalize: bool,
    neck: str,
    pool_grid: int,
    float32: bool = False,
):
    """The project's head on a tower's last feature map: the pool (over a grid of cells),
    the dense projection, the batch-norm neck and the L2 normalisation that the settings
    ask for, then the float32 embedding; what every tower ends with. With `float32`, the
    pool and the projection compute in float32 whatever the policy (under a 16-bit one
    the mean of the map and the embedding would otherwise be rounded to 16 bits)."""
    dtype = {"dtype": "float32"} if float32 else {}
    if pool_grid == 1:
        x = layers.GlobalAveragePooling2D(name="pool", **dtype)(features)
    else:
        # Where a feature is matters for shapes that share their strokes (a 7 and a 9);
        # the global pool keeps only whether it is there.
        x = layers.AdaptiveAveragePooling2D(pool_grid, name="pool", **dtype)(features)
        x = layers.Flatten(name="pool_cells", **dtype)(x)
    if embedding == "dense":
        x = layers.Dense(
            embedding_dim, kernel_initializer=_KAIMING_NORMAL, name="projection", **dtype
        )(x)
    if neck == "batchnorm":
        # The pooled activations follow a ReLU: all non-negative, and at the start
        # nearly parallel, so every triplet violates a cosine margin. Centring each
        # dimension spreads them out.
        x = layers.BatchNormalization(center=False, dtype="float32", **_BN, name="neck")(x)
    if l2_normalize:
        x = layers.UnitNormalization(name="l2_normalize")(x)
    return layers.Activation("linear", dtype="float32", name="embedding")(x)


resnet56 = functools.partial(resnet_tower, 56)
resnet8 = functools.partial(resnet_tower, 8)
