"""Decodes a drawing sent to the canvas (PNG data URL or pixel array) into pixels.

`keras_siamese.serving.model_inputs.model_input` then makes the model's input of it.
"""

from __future__ import annotations

import base64
import binascii
import struct

import numpy as np

from keras_siamese.serving.model_inputs import ImageError

MAX_SIDE = 1024  # pixels, either side of an uploaded image
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode_data_url(data_url: str) -> np.ndarray:
    """Decodes a `data:image/png;base64,...` URL into a uint8 `[H, W, C]` array.

    Raises:
        ImageError: for anything but a PNG of at most MAX_SIDE pixels a side.
    """
    if not isinstance(data_url, str) or not data_url.startswith("data:image/png;base64,"):
        raise ImageError("An image must be a PNG data URL (data:image/png;base64,...).")
    try:
        data = base64.b64decode(data_url.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("The image's base64 data is malformed.") from None
    # Read the size from the header before decoding: a huge image is refused unread.
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ImageError("The image is not a PNG file.")
    width, height = struct.unpack(">II", data[16:24])
    check_size(height, width)
    import tensorflow as tf

    try:
        pixels = tf.io.decode_png(data).numpy()
    except (tf.errors.InvalidArgumentError, ValueError):
        raise ImageError("The PNG file is damaged and cannot be decoded.") from None
    return pixels


def check_size(height: int, width: int) -> None:
    """Raises ImageError unless both sides are between 1 and MAX_SIDE pixels."""
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise ImageError(
            f"The image is {width} x {height} pixels: each side must be 1 to {MAX_SIDE}."
        )


def from_array(values: object) -> np.ndarray:
    """A nested list of 0-255 numbers (`[H, W]` or `[H, W, C]`) as a uint8 image."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ImageError("An image array must be a nested list of numbers.") from None
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ImageError(
            f"An image array must be [H, W] or [H, W, 1|3|4]; got shape {list(array.shape)}."
        )
    check_size(array.shape[0], array.shape[1])
    if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 255:
        raise ImageError("Image array values must be numbers from 0 to 255.")
    return np.round(array).astype(np.uint8)
