"""Test-time options of an embedding: flip averaging and centring (SimpleShot).

`embedding_model` wraps a trained tower into the model an export serves, so
every client of the export gets the same embeddings:

- `tta="flip"`: the mean of the embeddings of an image and of its mirror image;
- a `mean` vector: subtracted from every embedding (with `center="seen"`, the
  mean embedding of the seen classes' train images), so that cosine distances
  are measured around the data instead of around the origin.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from keras_siamese.choices import CENTERS, TTAS
from keras_siamese.errors import UserError

# The name an `embedding_model` adds to its tower's.
WITH_OPTIONS = "_with_options"


@keras.saving.register_keras_serializable(package="keras_siamese")
class HorizontalFlip(layers.Layer):
    """Mirrors `[N, H, W, C]` images left to right (always: not an augmentation)."""

    def call(self, images):
        return ops.flip(images, axis=2)


@keras.saving.register_keras_serializable(package="keras_siamese")
class Centre(layers.Layer):
    """Subtracts a fixed vector (stored with the model's weights) from each embedding."""

    def __init__(self, size: int, **kwargs):
        super().__init__(**kwargs)
        self.size = int(size)
        self.mean = self.add_weight(
            shape=(self.size,), initializer="zeros", trainable=False, name="mean"
        )

    def call(self, embeddings):
        return embeddings - ops.cast(self.mean, embeddings.dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "size": self.size}


def embedding_model(tower: keras.Model, tta: str = "none", mean=None) -> keras.Model:
    """`tower` with the test-time options applied; `tower` itself when there are none.

    Args:
        tower: the trained embedding tower (uint8 images in).
        tta: `none` or `flip`.
        mean: a `[D]` vector to subtract from every embedding, or None.
    """
    if tta not in TTAS:
        raise ValueError(f"tta must be one of {', '.join(TTAS)}, not {tta!r}")
    if tta == "none" and mean is None:
        return tower
    images = keras.Input(shape=tower.input_shape[1:], dtype=tower.input.dtype, name="images")
    x = tower(images)
    if tta == "flip":
        mirrored = tower(HorizontalFlip(name="mirror")(images))
        x = layers.Average(dtype="float32", name="flip_average")([x, mirrored])
    if mean is not None:
        mean = np.asarray(mean, np.float32).reshape(-1)
        centre = Centre(mean.shape[0], dtype="float32", name="centre")
        x = centre(x)
        centre.mean.assign(mean)
    return keras.Model(images, x, name=f"{tower.name}{WITH_OPTIONS}")


def base_tower(model: keras.Model) -> keras.Model:
    """The trained tower inside a model of `embedding_model` (the model itself if plain:
    a Keras Applications tower holds its network as a model too, and is plain)."""
    if not model.name.endswith(WITH_OPTIONS):
        return model
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def seen_mean(
    model: keras.Model, images: np.ndarray, batch_size: int = 500, verbose: int = 0
) -> np.ndarray:
    """The mean embedding of `images` (the seen classes' train images) under `model`.

    Raises:
        UserError: when there are no images to average.
    """
    if len(images) == 0:
        raise UserError(
            "--center=seen needs the seen classes' train images to average, and this split "
            "has none."
        )
    if verbose:
        print(f"Embedding {len(images):,} seen train images for the centring mean", flush=True)
    embeddings = model.predict(images, batch_size=batch_size, verbose=verbose)
    return np.mean(np.asarray(embeddings, np.float64), axis=0).astype(np.float32)


# The centring mean is taken over this many train images per seen class (all when a
# class has fewer): 9,000 images for 90 classes, which puts it within about 1% of a
# feature's spread of the mean over all 45,000, at a fifth of the cost.
CENTRE_IMAGES_PER_CLASS = 100


def centring_sample(labels: np.ndarray, per_class: int = CENTRE_IMAGES_PER_CLASS) -> np.ndarray:
    """Indices of the first `per_class` images of each class in `labels`, in order."""
    labels = np.asarray(labels).reshape(-1)
    if len(labels) == 0:
        return np.zeros((0,), np.int64)
    picked = [np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(picked))


def with_options(
    tower: keras.Model,
    tta: str,
    center: str,
    seen_train_images: np.ndarray,
    seen_train_labels: np.ndarray | None = None,
    batch_size: int = 500,
    verbose: int = 0,
) -> keras.Model:
    """`tower` under the options `tta` and `center`, the centring mean computed here.

    Args:
        tower: the trained embedding tower.
        tta: `none` or `flip`.
        center: `none`, or `seen`: centre on the mean embedding (under `tta`) of
            the seen classes' train images.
        seen_train_images: the seen classes' train images (uint8).
        seen_train_labels: their labels: the mean is then taken over the first
            `CENTRE_IMAGES_PER_CLASS` images of each class; None: over all.
        batch_size: images per forward pass while averaging.
        verbose: Keras progress display while averaging.

    Raises:
        UserError: for `center="seen"` without images.
    """
    if center not in CENTERS:
        raise ValueError(f"center must be one of {', '.join(CENTERS)}, not {center!r}")
    model = embedding_model(tower, tta)
    if center == "none":
        return model
    if seen_train_labels is not None:
        seen_train_images = seen_train_images[centring_sample(seen_train_labels)]
    mean = seen_mean(model, seen_train_images, batch_size, verbose)
    return embedding_model(tower, tta, mean)


__all__ = [
    "CENTERS",
    "TTAS",
    "Centre",
    "HorizontalFlip",
    "CENTRE_IMAGES_PER_CLASS",
    "base_tower",
    "centring_sample",
    "embedding_model",
    "seen_mean",
    "with_options",
]
