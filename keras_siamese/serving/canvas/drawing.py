"""Turns a drawing (PNG data URL or pixel array) into the model's input image.

MNIST digits were made by scaling each digit, keeping its aspect ratio, so
that its longer side is 20 pixels, then placing it in a 28 x 28 field with its
centre of mass at the field's centre, white strokes on black. A drawing of
an MNIST model goes through the same steps; for CIFAR-100 the drawing is
resized whole to 32 x 32 colour pixels.
"""

from __future__ import annotations

import base64
import binascii
import struct

import numpy as np

from keras_siamese.errors import UserError

MAX_SIDE = 1024  # pixels, either side of an uploaded image
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MNIST_BOX = 20
MNIST_CENTRE = 14.0  # where real MNIST digits have their centre of mass (row and column)


class DrawingError(UserError):
    """An image that cannot be used: not a PNG, too large, empty."""


def decode_data_url(data_url: str) -> np.ndarray:
    """Decodes a `data:image/png;base64,...` URL into a uint8 `[H, W, C]` array.

    Raises:
        DrawingError: for anything but a PNG of at most MAX_SIDE pixels a side.
    """
    if not isinstance(data_url, str) or not data_url.startswith("data:image/png;base64,"):
        raise DrawingError("An image must be a PNG data URL (data:image/png;base64,...).")
    try:
        data = base64.b64decode(data_url.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise DrawingError("The image's base64 data is malformed.") from None
    # Read the size from the header before decoding: a huge image is refused unread.
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise DrawingError("The image is not a PNG file.")
    width, height = struct.unpack(">II", data[16:24])
    check_size(height, width)
    import tensorflow as tf

    try:
        pixels = tf.io.decode_png(data).numpy()
    except (tf.errors.InvalidArgumentError, ValueError):
        raise DrawingError("The PNG file is damaged and cannot be decoded.") from None
    return pixels


def check_size(height: int, width: int) -> None:
    """Raises DrawingError unless both sides are between 1 and MAX_SIDE pixels."""
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise DrawingError(
            f"The image is {width} x {height} pixels: each side must be 1 to {MAX_SIDE}."
        )


def from_array(values: object) -> np.ndarray:
    """A nested list of 0-255 numbers (`[H, W]` or `[H, W, C]`) as a uint8 image."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DrawingError("An image array must be a nested list of numbers.") from None
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise DrawingError(
            f"An image array must be [H, W] or [H, W, 1|3|4]; got shape {list(array.shape)}."
        )
    check_size(array.shape[0], array.shape[1])
    if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 255:
        raise DrawingError("Image array values must be numbers from 0 to 255.")
    return np.round(array).astype(np.uint8)


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
        DrawingError: for a drawing with no strokes.
    """
    gray = to_gray(pixels)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 127:
        gray = 255.0 - gray
    if gray.max() < 16:
        raise DrawingError("The drawing is empty: draw something first.")
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
