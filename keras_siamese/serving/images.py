"""Images for a model: PNG and JPEG files, and any picture made into the model's input.

MNIST digits were made by scaling each digit, keeping its aspect ratio, so
that its longer side is 20 pixels, then placing it in a 28 x 28 field with its
centre of mass at the field's centre, white strokes on black. A picture for
an MNIST model (a file, or a drawing on the canvas) goes through the same
steps; for CIFAR-100 it is resized whole to 32 x 32 colour pixels.
"""

from __future__ import annotations

import os

import numpy as np

from keras_siamese.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MNIST_BOX = 20
MNIST_CENTRE = 14.0  # where real MNIST digits have their centre of mass (row and column)


class ImageError(UserError):
    """An image that cannot be used: not a PNG or JPEG, too large, empty."""


def read_image(path: str) -> np.ndarray:
    """The pixels of a PNG or JPEG file: uint8 `[H, W, C]` (C = 1, 3 or 4).

    Raises:
        ImageError: for a missing file or one that is not a PNG or JPEG image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.format not in ("PNG", "JPEG"):
                raise ImageError(f"{path} is a {image.format} image: give PNG or JPEG files.")
            if image.mode not in ("L", "RGB", "RGBA"):
                image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            pixels = np.asarray(image, np.uint8)
    except FileNotFoundError:
        raise ImageError(f"{path} does not exist.") from None
    except (UnidentifiedImageError, OSError) as e:
        raise ImageError(f"{path} is not a readable PNG or JPEG image ({e}).") from None
    return pixels[..., None] if pixels.ndim == 2 else pixels


def image_files(folder: str) -> list[str]:
    """The PNG and JPEG files directly in `folder`, sorted by name.

    Raises:
        ImageError: when `folder` is not a folder, holds another kind of file,
            or holds no image.
    """
    if not os.path.isdir(folder):
        raise ImageError(f"{folder} is not a folder.")
    names = sorted(n for n in os.listdir(folder) if not n.startswith("."))
    others = [n for n in names if not n.lower().endswith(IMAGE_SUFFIXES)]
    if others:
        raise ImageError(
            f"{os.path.join(folder, others[0])} is not a PNG or JPEG file: a folder of images "
            "must hold images only."
        )
    if not names:
        raise ImageError(f"{folder} holds no PNG or JPEG image.")
    return [os.path.join(folder, n) for n in names]


def to_gray(pixels: np.ndarray) -> np.ndarray:
    """Float gray levels 0-255 `[H, W]`; transparent pixels count as black."""
    pixels = pixels.astype(np.float64)
    channels = pixels.shape[2]
    alpha = pixels[..., -1:] / 255.0 if channels in (2, 4) else 1.0
    colour = pixels[..., :3] if channels >= 3 else pixels[..., :1]
    return (colour * alpha).mean(axis=2)


def to_rgb(pixels: np.ndarray) -> np.ndarray:
    """Float RGB 0-255 `[H, W, 3]`; transparent pixels count as black."""
    pixels = pixels.astype(np.float64)
    channels = pixels.shape[2]
    alpha = pixels[..., -1:] / 255.0 if channels in (2, 4) else 1.0
    colour = pixels[..., :3] if channels >= 3 else np.repeat(pixels[..., :1], 3, axis=2)
    return colour * alpha


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-averaging resize of a float `[H, W, C]` image (anti-aliased when shrinking)."""
    import tensorflow as tf

    return tf.image.resize(image, (height, width), method="area", antialias=True).numpy()


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
    box = _resize(crop[..., None], height, width)[..., 0]
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
    colour = to_rgb(pixels) if channels == 3 else to_gray(pixels)[..., None]
    return np.clip(np.round(_resize(colour, height, width)), 0, 255).astype(np.uint8)
