"""Embeddings for TensorBoard's embedding projector: vectors, labels and a sprite image.

Writes, in a TensorBoard log folder:

    projector_config.pbtxt     the projector's configuration (its root run)
    projector/embeddings.tsv   one embedding per line
    projector/metadata.tsv     a header, then each image's class and role (seen/unseen)
    projector/sprite.png       the images in a square grid, in the same order

so that `tensorboard --logdir W/logs` shows them in its Projector tab, each
point drawn as its image and coloured by class.
"""

from __future__ import annotations

import math
import os

import numpy as np

from keras_siamese import files

CONFIG_FILE = "projector_config.pbtxt"
FOLDER = "projector"
EMBEDDINGS_FILE = "embeddings.tsv"
METADATA_FILE = "metadata.tsv"
SPRITE_FILE = "sprite.png"
TENSOR_NAME = "test_embeddings"
# TensorBoard draws sprites of at most 8192 x 8192 pixels.
MAX_SPRITE_PIXELS = 8192


def sprite(images: np.ndarray) -> np.ndarray:
    """The images `[N, H, W, C]` (uint8) tiled row by row in a square grid, RGB.

    Cells after the last image are black.
    """
    count, height, width = images.shape[:3]
    side = math.ceil(math.sqrt(count))
    if side * max(height, width) > MAX_SPRITE_PIXELS:
        raise ValueError(f"{count} images of {height}x{width} exceed a sprite's 8192 pixels")
    if images.ndim == 3 or images.shape[-1] == 1:
        images = np.repeat(images.reshape(count, height, width, 1), 3, axis=-1)
    grid = np.zeros((side * side, height, width, 3), np.uint8)
    grid[:count] = images
    grid = grid.reshape(side, side, height, width, 3).transpose(0, 2, 1, 3, 4)
    return grid.reshape(side * height, side * width, 3)


def write(
    log_dir: str,
    embeddings: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    roles: list[str],
    images: np.ndarray,
) -> list[str]:
    """Writes the projector's files for `embeddings` `[N, D]` into `log_dir`.

    Args:
        log_dir: the TensorBoard log folder (the run's `logs/`).
        embeddings: one row per image.
        labels: each image's class index into `class_names`.
        class_names: the data set's class names.
        roles: each image's role, e.g. "seen" or "unseen".
        images: the images `[N, H, W, C]`, uint8, for the sprite.

    Returns:
        The paths written, the configuration last.
    """
    from PIL import Image

    folder = os.path.join(log_dir, FOLDER)
    os.makedirs(folder, exist_ok=True)
    height, width = images.shape[1:3]
    rows = "\n".join("\t".join(f"{v:.6g}" for v in row) for row in embeddings)
    names = [class_names[int(label)].replace("\t", " ") for label in labels]
    metadata = "class\trole\n" + "".join(
        f"{name}\t{role}\n" for name, role in zip(names, roles, strict=True)
    )
    paths = [os.path.join(folder, n) for n in (EMBEDDINGS_FILE, METADATA_FILE, SPRITE_FILE)]
    files.write_text_atomic(paths[0], rows + "\n")
    files.write_text_atomic(paths[1], metadata)
    picture = Image.fromarray(sprite(images))
    files.write_atomic(paths[2], lambda tmp: picture.save(tmp, format="PNG"))
    config = (
        "embeddings {\n"
        f'  tensor_name: "{TENSOR_NAME}"\n'
        f'  tensor_path: "{FOLDER}/{EMBEDDINGS_FILE}"\n'
        f'  metadata_path: "{FOLDER}/{METADATA_FILE}"\n'
        "  sprite {\n"
        f'    image_path: "{FOLDER}/{SPRITE_FILE}"\n'
        f"    single_image_dim: {width}\n"
        f"    single_image_dim: {height}\n"
        "  }\n"
        "}\n"
    )
    config_path = os.path.join(log_dir, CONFIG_FILE)
    files.write_text_atomic(config_path, config)
    return [*paths, config_path]
