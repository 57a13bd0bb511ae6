"""Speed of reading a folder of images (`--dataset=folder`): first read, cached read, an epoch.

    python bench/folder.py --data_dir=FOLDER [--image_size=32] [--channels=3] [--batch_size=128]

Prints one JSON line: the first read's images/s (decoding every file in parallel and
writing the cache; the cache folder is a fresh temporary one), the cached read's
images/s, and the images/s of one epoch of the training pipeline (shuffled,
flipped and cropped class batches) over the cached arrays. Figures, not a test.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

_DATA_DIR = flags.DEFINE_string("data_dir", None, "A folder of class folders of images.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 32, "Side of the images made of the files.")
_CHANNELS = flags.DEFINE_integer("channels", 3, "3 (colour) or 1 (grey).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Images per batch of the epoch.")


def main(argv: list[str]) -> None:
    del argv
    from keras_siamese.data import folder, pipeline

    if not _DATA_DIR.value:
        raise app.UsageError("--data_dir is required: a folder of class folders of images.")
    options = folder.FolderOptions(image_size=_IMAGE_SIZE.value, channels=_CHANNELS.value)
    with tempfile.TemporaryDirectory() as cache:
        os.environ[folder.CACHE_ENV] = cache
        start = time.perf_counter()
        dataset = folder.load_folder(_DATA_DIR.value, options, progress=False)
        first = time.perf_counter() - start
        start = time.perf_counter()
        folder.load_folder(_DATA_DIR.value, options, progress=False)
        cached = time.perf_counter() - start
    count = len(dataset.train_labels) + len(dataset.test_labels)
    steps = len(dataset.train_labels) // _BATCH_SIZE.value
    batches = pipeline.class_dataset(
        dataset.train_images,
        dataset.train_labels,
        _BATCH_SIZE.value,
        steps,
        augmentation=pipeline.Augmentation(flip=True, crop=True),
    )
    iterator = iter(batches)
    next(iterator)  # the pipeline's start-up
    start = time.perf_counter()
    for _ in range(steps - 1):
        next(iterator)
    epoch = time.perf_counter() - start
    line = {
        "images": count,
        "classes": dataset.num_classes,
        "image_shape": list(dataset.info.image_shape),
        "first_read_seconds": round(first, 2),
        "first_read_images_per_second": round(count / first, 1),
        "cached_read_seconds": round(cached, 3),
        "cached_read_images_per_second": round(count / cached, 1),
        "epoch_images_per_second": round((steps - 1) * _BATCH_SIZE.value / epoch, 1),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    app.run(main)
