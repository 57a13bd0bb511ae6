"""A data set from a folder of labelled images: one subfolder per class.

    DIR/<class name>/*.png|jpg|jpeg|bmp|gif          a seeded, stratified test part is held out
    DIR/train/<class name>/...  DIR/test/<class name>/...   the given train/test division

Images of any size, colour or grey, become uint8 `image_size x image_size x
channels` arrays the way the Python API and the canvas make a picture into a
model's input (`keras_siamese.data.images.fit_image`). They are decoded once,
in parallel, into a cache file keyed by the folder's file names, sizes and
modification times and by the image size and channels; later runs read the
cache. Class indices follow the sorted class names.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import os
import sys
import time

import numpy as np

from keras_siamese import files as files_io
from keras_siamese.data.datasets import FOLDER, DatasetInfo, ImageDataset
from keras_siamese.data.images import IMAGE_SUFFIXES, ImageError, fit_image, read_image
from keras_siamese.errors import DataError

CACHE_ENV = "KERAS_SIAMESE_CACHE"


@dataclasses.dataclass(frozen=True)
class FolderOptions:
    """How a folder of images becomes arrays.

    Attributes:
        image_size: side of the square images the model takes.
        channels: 3 (colour) or 1 (grey).
        test_fraction: share of each class held out as test images, when the
            folder has no `train/` and `test/` parts.
        seed: seed of that held-out part.
        skip_bad_images: skip (and count) files that are not readable images,
            instead of stopping at the first.
    """

    image_size: int = 32
    channels: int = 3
    test_fraction: float = 0.2
    seed: int = 0
    skip_bad_images: bool = False


def cache_folder() -> str:
    """Where decoded folders are cached: `$KERAS_SIAMESE_CACHE`, else ~/.cache/keras_siamese."""
    default = os.path.join(os.path.expanduser("~"), ".cache", "keras_siamese")
    return os.path.join(os.environ.get(CACHE_ENV, default), "folders")


def _class_files(folder: str) -> dict[str, list[str]]:
    """Class name -> its image files (sorted), for the class subfolders of `folder`."""
    classes = sorted(
        n for n in os.listdir(folder) if os.path.isdir(os.path.join(folder, n)) and n[0] != "."
    )
    result = {}
    for name in classes:
        class_dir = os.path.join(folder, name)
        files = []
        for root, dirs, names in os.walk(class_dir):
            dirs[:] = sorted(d for d in dirs if d[0] != ".")
            files += [
                os.path.join(root, n) for n in sorted(names) if n.lower().endswith(IMAGE_SUFFIXES)
            ]
        result[name] = files
    return result


def _layout(root: str) -> tuple[dict[str, list[str]], dict[str, list[str]] | None]:
    """The train classes' files, and the test classes' files when the folder has both parts."""
    if not os.path.isdir(root):
        raise DataError(f"--data_dir={root} is not a folder of class subfolders.")
    has_train = os.path.isdir(os.path.join(root, "train"))
    has_test = os.path.isdir(os.path.join(root, "test"))
    if has_train != has_test:
        given, missing = ("train", "test") if has_train else ("test", "train")
        raise DataError(
            f"{root} has a {given}/ folder but no {missing}/ folder: give both, or put the "
            "class folders directly in it."
        )
    if has_train:
        train = _class_files(os.path.join(root, "train"))
        test = _class_files(os.path.join(root, "test"))
        if set(train) != set(test):
            odd = sorted(set(train) ^ set(test))[0]
            part = "train" if odd in train else "test"
            raise DataError(
                f"Class {odd!r} is in {root}/{part}/ only: train/ and test/ must hold the same "
                "class folders."
            )
    else:
        train, test = _class_files(root), None
    if not train:
        raise DataError(f"{root} holds no class subfolders: put each class's images in one.")
    if len(train) < 2:
        raise DataError(f"{root} holds one class ({next(iter(train))}): similarity needs two.")
    for part in (train, test or {}):
        for name, files in part.items():
            if not files:
                raise DataError(
                    f"Class folder {name!r} of {root} holds no image ({', '.join(IMAGE_SUFFIXES)})."
                )
    return train, test


def _cache_key(files: list[str], options: FolderOptions) -> str:
    digest = hashlib.sha256()
    digest.update(f"{options.image_size}/{options.channels}/{options.skip_bad_images}".encode())
    for path in files:
        stat = os.stat(path)
        digest.update(f"\n{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def _decode(path: str, options: FolderOptions) -> np.ndarray | None:
    try:
        pixels = read_image(path)
    except ImageError:
        if options.skip_bad_images:
            return None
        raise
    return fit_image(pixels, options.image_size, options.image_size, options.channels)


def _decode_all(files: list[str], options: FolderOptions, progress: bool) -> list:
    """Decoded images in `files`' order (None for a skipped bad one), with a progress line."""
    done, start, last = 0, time.time(), 0.0
    images: list = [None] * len(files)
    workers = min(8, (os.cpu_count() or 1) + 2)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = {pool.submit(_decode, path, options): i for i, path in enumerate(files)}
        try:
            for future in concurrent.futures.as_completed(futures):
                images[futures[future]] = future.result()
                done += 1
                if progress and (time.time() - last > 0.5 or done == len(files)):
                    last = time.time()
                    rate = done / max(last - start, 1e-9)
                    print(
                        f"\rDecoding {done:,}/{len(files):,} images ({rate:,.0f}/s)",
                        end="\n" if done == len(files) else "",
                        file=sys.stdout,
                        flush=True,
                    )
        except BaseException:
            for future in futures:
                future.cancel()
            if progress and done:
                print(file=sys.stdout, flush=True)  # ends the progress line before the error
            raise
    return images


def load_folder(
    root: str, options: FolderOptions | None = None, progress: bool = True
) -> ImageDataset:
    """The labelled images of `root` as an `ImageDataset` (see the module's docstring).

    Raises:
        DataError: for a folder without class folders, a class without images,
            `train/` without `test/`, a file that is not an image (unless
            `skip_bad_images`), or fewer than two classes.
    """
    options = options or FolderOptions()
    train_files, test_files = _layout(root)
    names = tuple(train_files)
    parts = [train_files] if test_files is None else [train_files, test_files]
    files = [f for part in parts for name in names for f in part[name]]
    labels = np.array(
        [i for part in parts for i, name in enumerate(names) for _ in part[name]], np.int64
    )
    if test_files is None:
        is_test = held_out(labels, options.test_fraction, options.seed)
    else:  # the train part's files come first
        is_test = np.arange(len(files)) >= sum(len(f) for f in train_files.values())
    shape = (options.image_size, options.image_size, options.channels)
    cache = os.path.join(cache_folder(), _cache_key(files, options) + ".npz")
    if os.path.isfile(cache):
        with np.load(cache) as stored:
            images, kept = stored["images"], stored["kept"]
    else:
        try:
            decoded = _decode_all(files, options, progress)
        except ImageError as e:
            raise DataError(
                f"{e} Remove or fix it, or pass --skip_bad_images to leave such files out."
            ) from None
        kept = np.array([d is not None for d in decoded])
        good = [d for d in decoded if d is not None]
        images = np.stack(good) if good else np.zeros((0, *shape), np.uint8)
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        files_io.write_atomic(cache, lambda tmp: _save_npz(tmp, images=images, kept=kept))
    skipped = int((~kept).sum())
    if skipped and progress:
        print(f"Skipped {skipped:,} file(s) of {root} that are not readable images.", flush=True)
    labels, is_test = labels[kept], is_test[kept]
    for i, name in enumerate(names):
        if not np.any(labels == i):
            raise DataError(f"Class folder {name!r} of {root} holds no readable image.")
    train_images, test_images = images[~is_test], images[is_test]
    mean, std = normalization_of(train_images)
    return ImageDataset(
        info=DatasetInfo(FOLDER, len(names), shape, mean, std),
        train_images=train_images,
        train_labels=labels[~is_test],
        test_images=test_images,
        test_labels=labels[is_test],
        class_names=names,
        source=f"folder {os.path.abspath(root)}",
    )


def _save_npz(path: str, **arrays: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would add .npz to a name
        np.savez(f, **arrays)


def normalization_of(train_images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images, scaled to [0, 1]: the
    normalisation the model applies (and the export keeps)."""
    channels = train_images.shape[-1]
    scaled = train_images.reshape(-1, channels).astype(np.float64) / 255.0
    if not len(scaled):
        return (0.5,) * channels, (0.25,) * channels
    return (
        tuple(float(v) for v in scaled.mean(axis=0)),
        tuple(float(max(v, 1e-3)) for v in scaled.std(axis=0)),
    )


def held_out(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded, stratified test part: about `fraction` of each class, at least one image of
    every class with two or more, and never a class's last train image."""
    rng = np.random.default_rng([seed, 0xF01D])
    is_test = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < 2:
            continue
        count = min(max(1, round(fraction * len(members))), len(members) - 1)
        is_test[rng.choice(members, count, replace=False)] = True
    return is_test
