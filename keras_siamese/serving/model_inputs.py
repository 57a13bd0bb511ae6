"""Images for a model: PNG and JPEG files, and any picture made into the model's input.

MNIST digits were made by scaling each digit, keeping its aspect ratio, so
that its longer side is 20 pixels, then placing it in a 28 x 28 field with its
centre of mass at the field's centre, white strokes on black. A picture for
an MNIST model (a file, or a drawing on the canvas) goes through the same
steps; for CIFAR-100 it is resized whole to 32 x 32 colour pixels.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from keras_siamese.data.images import (
    IMAGE_SUFFIXES,
    ImageError,
    fit_image,
    read_image,
    resize,
    to_gray,
    to_rgb,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageError",
    "image_files",
    "mnist_digit",
    "model_input",
    "read_image",
    "to_gray",
    "to_rgb",
]
MNIST_BOX = 20
MNIST_CENTRE = 14.0  # where real MNIST digits have their centre of mass (row and column)

# What the serving API takes as images: a uint8 array `[N, H, W, C]` (or one image), an
# image file or folder, or a list of image files.
Images = np.ndarray | str | os.PathLike | Sequence[str | os.PathLike]


def image_files(folder: str) -> list[str]:
    """The image files (PNG, JPEG, BMP, GIF) in `folder`, sorted by their path: those
    directly in it, and those of its subfolders at any depth, so that a tree of class
    folders (`folder/CLASS/IMAGE`, as training reads it) is a gallery whose ids keep
    each image's class folder.

    Raises:
        ImageError: when `folder` is not a folder, holds another kind of file, or
            holds no image.
    """
    if not os.path.isdir(folder):
        raise ImageError(f"{folder} is not a folder.")
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(n for n in names if not n.startswith(".")):
            if not name.lower().endswith(IMAGE_SUFFIXES):
                raise ImageError(
                    f"{os.path.join(root, name)} is not a PNG, JPEG, BMP or GIF file: a folder "
                    "of images (or of class folders of images) must hold images only."
                )
            found.append(os.path.join(root, name))
    if not found:
        raise ImageError(f"{folder} holds no PNG, JPEG, BMP or GIF image.")
    return sorted(found, key=lambda path: os.path.relpath(path, folder).split(os.sep))


def mnist_digit(pixels: np.ndarray) -> np.ndarray:
    """A drawing as an MNIST digit: uint8 `[28, 28, 1]`, white strokes on black.

    A drawing on a light background (its border mostly bright) is inverted first.

    Raises:
        ImageError: for a drawing with no strokes.
    """
    gray = to_gray(pixels)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 127:
        gray = 255.0 - gray
    if gray.max() < 16:
        raise ImageError("The drawing is empty: draw something first.")
    ink = gray > 0.1 * gray.max()
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = MNIST_BOX / max(crop.shape)
    height = max(1, round(crop.shape[0] * scale))
    width = max(1, round(crop.shape[1] * scale))
    box = resize(crop[..., None], height, width)[..., 0]
    box = box * (255.0 / max(box.max(), 1e-6))
    mass = box.sum()
    centre_row = (box.sum(axis=1) * np.arange(height)).sum() / mass
    centre_col = (box.sum(axis=0) * np.arange(width)).sum() / mass
    top = int(np.clip(round(MNIST_CENTRE - centre_row), 0, 28 - height))
    left = int(np.clip(round(MNIST_CENTRE - centre_col), 0, 28 - width))
    digit = np.zeros((28, 28), np.float64)
    digit[top : top + height, left : left + width] = box
    return np.clip(np.round(digit), 0, 255).astype(np.uint8)[..., None]


def model_input(pixels: np.ndarray, dataset: str, input_shape: tuple[int, ...]) -> np.ndarray:
    """A decoded drawing as one uint8 image of `input_shape`, preprocessed for `dataset`."""
    if dataset == "mnist":
        return mnist_digit(pixels)
    height, width, channels = input_shape
    return fit_image(pixels, height, width, channels)
