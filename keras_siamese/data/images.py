"""Decoding and resizing pictures: what a data set folder, the Python API and the canvas share.

A picture of any size becomes a model's input the same way everywhere:
colour or grey as the model takes it, transparent pixels black, then resized
whole with area averaging (`fit_image`).
"""

from __future__ import annotations

import numpy as np

from keras_siamese.errors import UserError

# The formats a picture may come in (a file's format is read from its contents), and
# the file name endings of a folder's images.
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


class ImageError(UserError):
    """An image that cannot be used: not a PNG, JPEG, BMP or GIF image, damaged, empty."""


def read_image(path: str) -> np.ndarray:
    """The pixels of an image file: uint8 `[H, W, C]` (C = 1, 3 or 4); a GIF's first frame.

    Raises:
        ImageError: for a missing file, or one that is not an image of `IMAGE_FORMATS`.
    """
    from PIL import Image, UnidentifiedImageError

    kinds = " or ".join(IMAGE_FORMATS)
    try:
        with Image.open(path) as image:
            if image.format not in IMAGE_FORMATS:
                raise ImageError(f"{path} is a {image.format} image: give {kinds} files.")
            if image.mode not in ("L", "RGB", "RGBA"):
                image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            pixels = np.asarray(image, np.uint8)
    except FileNotFoundError:
        raise ImageError(f"{path} does not exist.") from None
    except (UnidentifiedImageError, OSError) as e:
        raise ImageError(f"{path} is not a readable {kinds} image ({e}).") from None
    return pixels[..., None] if pixels.ndim == 2 else pixels


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


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-averaging resize of a float `[H, W, C]` image (anti-aliased when shrinking)."""
    import tensorflow as tf

    return tf.image.resize(image, (height, width), method="area", antialias=True).numpy()


def fit_image(pixels: np.ndarray, height: int, width: int, channels: int) -> np.ndarray:
    """Decoded pixels `[H, W, C]` as a uint8 `[height, width, channels]` model input.

    Colour for 3 channels, grey levels for 1; resized whole (no crop), with area
    averaging when shrinking.
    """
    colour = to_rgb(pixels) if channels == 3 else to_gray(pixels)[..., None]
    if colour.shape[:2] != (height, width):
        colour = resize(colour, height, width)
    return np.clip(np.round(colour), 0, 255).astype(np.uint8)
