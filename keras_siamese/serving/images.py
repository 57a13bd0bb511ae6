"""Image files for the Python API: PNG and JPEG files, one by one or a folder at a time."""

from __future__ import annotations

import os

import numpy as np

from keras_siamese.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_image(path: str) -> np.ndarray:
    """The pixels of a PNG or JPEG file: uint8 `[H, W, C]` (C = 1, 3 or 4).

    Raises:
        UserError: for a missing file or one that is not a PNG or JPEG image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.format not in ("PNG", "JPEG"):
                raise UserError(f"{path} is a {image.format} image: give PNG or JPEG files.")
            if image.mode not in ("L", "RGB", "RGBA"):
                image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            pixels = np.asarray(image, np.uint8)
    except FileNotFoundError:
        raise UserError(f"{path} does not exist.") from None
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"{path} is not a readable PNG or JPEG image ({e}).") from None
    return pixels[..., None] if pixels.ndim == 2 else pixels


def image_files(folder: str) -> list[str]:
    """The PNG and JPEG files directly in `folder`, sorted by name.

    Raises:
        UserError: when `folder` is not a folder, holds another kind of file,
            or holds no image.
    """
    if not os.path.isdir(folder):
        raise UserError(f"{folder} is not a folder.")
    names = sorted(n for n in os.listdir(folder) if not n.startswith("."))
    others = [n for n in names if not n.lower().endswith(IMAGE_SUFFIXES)]
    if others:
        raise UserError(
            f"{os.path.join(folder, others[0])} is not a PNG or JPEG file: a folder of images "
            "must hold images only."
        )
    if not names:
        raise UserError(f"{folder} holds no PNG or JPEG image.")
    return [os.path.join(folder, n) for n in names]
