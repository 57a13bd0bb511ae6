"""Pretrained image towers behind `--backbone`: the Keras Applications networks and
KerasHub's image backbones (`hub:PRESET`), under the project's pooling and embedding head.

Each takes uint8 images at the data's size and returns float32 embeddings, as the
CIFAR ResNet does (`keras_siamese.model.resnet`): the tower resizes the images to
its working size, converts grey to colour and applies the network's own
preprocessing inside the model, so an export still takes raw pixels. ImageNet
weights come from Keras's download (cached in `~/.keras/models`), or from a
`.weights.h5` file of the network (`save_weights` of the same application without
its top). A KerasHub preset (a name KerasHub downloads, or a folder on disk) brings
its weights and its image converter's scaling; its feature map, or its sequence of
patch tokens, goes through the same head.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings

import keras
from keras import layers

from keras_siamese.choices import BACKBONE_MINIMUM_SIZE, EMBEDDINGS, HUB_PREFIX, NECKS
from keras_siamese.errors import ConfigError
from keras_siamese.model.resnet import embedding_head

# How a network expects its float pixels in [0, 255]: its own preprocessing layers
# ("own"), or scaled to [-1, 1] ("tf", Keras's `preprocess_input` of ResNet50V2).
_OWN, _TF = "own", "tf"


@dataclasses.dataclass(frozen=True)
class Application:
    """A Keras Applications network: its constructor, its ImageNet size and its input."""

    constructor: str
    imagenet_size: int
    pixels: str


APPLICATIONS = {
    "efficientnetv2b0": Application("EfficientNetV2B0", 224, _OWN),
    "efficientnetv2s": Application("EfficientNetV2S", 384, _OWN),
    "mobilenetv3small": Application("MobileNetV3Small", 224, _OWN),
    "mobilenetv3large": Application("MobileNetV3Large", 224, _OWN),
    "resnet50v2": Application("ResNet50V2", 224, _TF),
    "convnexttiny": Application("ConvNeXtTiny", 224, _OWN),
}
# A backbone's feature map is its input's side over this (five stride-2 stages).
REDUCTION = 32


def weights_record(weights: str) -> dict:
    """What a run records of the weights it started from: the name, or the file and its
    SHA-256."""
    if weights in ("none", "imagenet"):
        return {"weights": weights}
    digest = hashlib.sha256()
    with open(weights, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return {"weights": os.path.abspath(weights), "sha256": digest.hexdigest()}


def _network(name: str, size: int, weights: str | keras.Model) -> keras.Model:
    """The application without its top at `size` x `size` x 3, with its weights (a name,
    a file, or a built network of the same application to copy them from).

    Raises:
        ConfigError: when ImageNet weights cannot be downloaded, or a weights file
            does not fit the network.
    """
    app = APPLICATIONS[name]
    constructor = getattr(keras.applications, app.constructor)
    options = {"include_top": False, "input_shape": (size, size, 3), "pooling": None}
    try:
        with warnings.catch_warnings():
            # Keras warns that ImageNet weights were made at 224 pixels; the help says so.
            warnings.filterwarnings("ignore", message=".*input_shape.*", category=UserWarning)
            pretrained = "imagenet" if isinstance(weights, str) and weights == "imagenet" else None
            network = constructor(weights=pretrained, **options)
    except Exception as e:  # Keras reports a failed download as a bare Exception
        if weights != "imagenet":
            raise
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise ConfigError(
            f"--backbone_weights=imagenet: Keras could not download {name}'s ImageNet "
            f"weights ({reason}): run once where the internet is reachable (they are "
            "cached in ~/.keras/models), or pass --backbone_weights=PATH, a .weights.h5 file "
            f"of keras.applications.{app.constructor}(include_top=False)."
        ) from None
    if isinstance(weights, keras.Model):
        _copy_network(weights, network, name)
    elif weights not in ("none", "imagenet"):
        try:
            # Keras loads what fits and warns of the rest: a partial load is refused too.
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                network.load_weights(weights)
        except (OSError, ValueError, KeyError, Warning) as e:
            raise ConfigError(
                f"--backbone_weights={weights} does not fit the {name} tower at {size} pixels "
                f"({str(e).splitlines()[0][:200]})."
            ) from None
    return network


def _copy_network(source: keras.Model, network: keras.Model, name: str) -> None:
    """Sets `network`'s weights to those of `source`, another build of the same application.

    Raises:
        ConfigError: when their weights differ in number or shape.
    """
    got = [tuple(w.shape) for w in source.weights]
    want = [tuple(w.shape) for w in network.weights]
    if got != want:
        raise ConfigError(
            f"--backbone_weights: the export's network does not fit the {name} tower "
            f"({len(got)} weights against {len(want)}, or of other shapes)."
        )
    network.set_weights(source.get_weights())


# The name of a tower on a KerasHub backbone (its preset can be a path, not a name).
HUB_TOWER = "hub"


def network_of(tower: keras.Model) -> keras.Model | None:
    """The Keras Applications or KerasHub network inside a tower of `backbone_tower`, or
    None for another tower."""
    inner = [layer for layer in tower.layers if isinstance(layer, keras.Model)]
    ours = tower.name in APPLICATIONS or tower.name == HUB_TOWER
    return inner[0] if ours and len(inner) == 1 else None


def _hub_network(preset: str) -> tuple[keras.Model, keras.layers.Layer]:
    """A KerasHub preset's backbone, with its weights, and the layer that scales pixels
    in [0, 255] as its image converter does (its resizing left to the tower).

    Raises:
        ConfigError: without KerasHub, or for a preset it cannot load.
    """
    flag = f"--backbone={HUB_PREFIX}{preset}"
    try:
        import keras_hub
    except ImportError:
        raise ConfigError(f"{flag} needs KerasHub: pip install 'keras-siamese[hub]'.") from None
    try:
        network = keras_hub.models.Backbone.from_preset(preset)
    except Exception as e:  # noqa: BLE001 - KerasHub reports a failed load variously
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise ConfigError(
            f"{flag}: KerasHub could not load the preset ({reason}): give a preset it can "
            "download, or the path of a preset folder on disk."
        ) from None
    try:
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
        scale, offset = converter.scale, converter.offset
    except Exception:  # noqa: BLE001 - a preset without a converter: pixels in [0, 1]
        scale, offset = 1.0 / 255.0, None
    scaling = keras_hub.layers.ImageConverter(
        scale=scale, offset=offset, dtype="float32", name="hub_pixels"
    )
    return network, scaling


def backbone_tower(
    name: str,
    input_shape: tuple[int, int, int],
    size: int,
    weights: str | keras.Model = "none",
    embedding: str = "gap",
    embedding_dim: int = 64,
    l2_normalize: bool = False,
    neck: str = "none",
    pool_grid: int = 1,
    train_norm: bool = False,
    float32_head: bool = False,
) -> keras.Model:
    """Builds a Keras Applications tower: uint8 images in, float32 embeddings out.

    Args:
        name: one of `APPLICATIONS`.
        input_shape: `(H, W, C)` of the images the tower takes (1 or 3 channels).
        size: the side it computes at; images of another size are resized inside.
        weights: `none`, `imagenet`, the path of a `.weights.h5` file of the network, or
            a built network of the same application (an export's) to copy them from.
        embedding, embedding_dim, l2_normalize, neck, pool_grid, float32_head: the
            project's head, as `keras_siamese.model.resnet.resnet_tower` takes them.
        train_norm: train the network's batch normalisation even when it starts from
            weights (ImageNet or a file); otherwise those layers stay in inference mode
            with the statistics and scales they were trained with.

    Raises:
        ConfigError: for a size below the minimum, an unknown choice, or weights that
            cannot be had.
    """
    hub = name.startswith(HUB_PREFIX)
    if name not in APPLICATIONS and not hub:
        raise ConfigError(
            f"--backbone={name} is unknown: choose one of resnet56, {', '.join(APPLICATIONS)}, "
            "or hub:PRESET."
        )
    if size < BACKBONE_MINIMUM_SIZE:
        raise ConfigError(
            f"--image_size={size} is below {name}'s minimum of {BACKBONE_MINIMUM_SIZE} pixels."
        )
    if embedding not in EMBEDDINGS or neck not in NECKS:
        raise ConfigError(f"--embedding={embedding} or --neck={neck} is unknown.")
    if hub:
        network, scaling = _hub_network(name[len(HUB_PREFIX) :])
    else:
        network, scaling = _network(name, size, weights), None
    pretrained = hub or not (isinstance(weights, str) and weights == "none")
    if pretrained and not train_norm:
        for layer in network.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.trainable = False  # Keras runs a frozen batch norm in inference mode
    images = keras.Input(shape=input_shape, dtype="uint8", name="images")
    # Preprocessing stays float32 whatever the mixed-precision policy.
    x = layers.Rescaling(1.0, dtype="float32", name="pixels")(images)
    if tuple(input_shape[:2]) != (size, size):
        x = layers.Resizing(size, size, dtype="float32", name="resize")(x)
    if input_shape[-1] == 1:
        x = layers.Concatenate(dtype="float32", name="grey_to_colour")([x, x, x])
    if scaling is not None:
        x = scaling(x)
    elif APPLICATIONS[name].pixels == _TF:
        x = layers.Rescaling(1.0 / 127.5, offset=-1.0, dtype="float32", name="to_unit_range")(x)
    features = network(x)
    if len(features.shape) == 3:  # a transformer's tokens [N, D]: a map of N x 1 to pool
        features = layers.Reshape((features.shape[1], 1, features.shape[2]), name="tokens")(
            features
        )
    x = embedding_head(
        features, embedding, embedding_dim, l2_normalize, neck, pool_grid, float32_head
    )
    return keras.Model(images, x, name=HUB_TOWER if hub else name)
