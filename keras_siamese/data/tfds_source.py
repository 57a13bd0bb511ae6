"""tensorflow-datasets: CIFAR-100 and MNIST (`--data_source=tfds`), and any prepared
image-classification set by name (`--dataset=tfds:NAME`).

A set by name must already be prepared under `--data_dir` (`tfds build NAME
--data_dir=DIR` where there is internet); it needs an image feature and a
class-label feature. Its `train` and `test` splits are used as given (without a
`test` split, a seeded share of each class is held out, as for a folder); its
images are made into the model's input as a folder's are.
"""

from __future__ import annotations

import socket

import numpy as np

from keras_siamese.data.datasets import TFDS_PREFIX, DatasetInfo, ImageDataset, make_dataset
from keras_siamese.data.folder import FolderOptions, held_out, normalization_of
from keras_siamese.data.images import fit_image
from keras_siamese.errors import DataError


def load_builtin(info: DatasetInfo, data_dir: str | None) -> ImageDataset:
    """CIFAR-100 or MNIST (`info`) through tensorflow-datasets (`--data_source=tfds`).

    Downloads it into `data_dir` when it is not prepared there and the download
    host answers; offline, says so in one line at once.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError("The tfds source needs tensorflow-datasets: pip install it.") from None
    builder = tfds.builder(info.name, data_dir=data_dir)
    if not builder.is_prepared() and not _can_reach(TFDS_DOWNLOAD_HOST):
        where = data_dir or "tensorflow-datasets' default folder"
        raise DataError(
            f"{info.name} is not prepared for tensorflow-datasets under {where}, and this "
            f"machine cannot download it: run `tfds build {info.name} --data_dir=DIR` where "
            "there is internet and copy DIR here, or give --data_dir the local files."
        )
    try:
        (train, test), tfds_info = tfds.load(
            info.name,
            split=["train", "test"],
            batch_size=-1,
            as_supervised=True,
            data_dir=data_dir,
            with_info=True,
        )
        train_images, train_labels = tfds.as_numpy(train)
        test_images, test_labels = tfds.as_numpy(test)
        names = tfds_info.features["label"].names
    except Exception as e:  # noqa: BLE001 - network and cache failures vary by version
        raise DataError(
            f"Could not load {info.name} through tensorflow-datasets ({_first_line(e)}); "
            "on a machine without internet use --data_dir with local files."
        ) from None
    return make_dataset(
        info, (train_images, train_labels), (test_images, test_labels), names, "tfds"
    )


# Where tensorflow-datasets downloads its prepared data sets from: unreachable, a
# download would only retry for minutes before failing.
TFDS_DOWNLOAD_HOST = "storage.googleapis.com"


def _can_reach(host: str, port: int = 443, timeout: float = 5.0) -> bool:
    """Whether a TCP connection to `host` opens within `timeout` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _features(info, name: str) -> tuple[str, str]:
    """The names of the image and the class-label features of a tfds data set."""
    import tensorflow_datasets as tfds

    features = info.features
    images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    labels = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
    if not images or not labels:
        raise DataError(
            f"{name} has no image and class-label features ({', '.join(features)}): it is not "
            "an image-classification data set."
        )
    return ("image" if "image" in images else images[0]), (
        "label" if "label" in labels else labels[0]
    )


def load_tfds_by_name(
    dataset: str, data_dir: str | None, options: FolderOptions | None = None
) -> ImageDataset:
    """The prepared tfds data set `tfds:NAME` under `data_dir` as an `ImageDataset`.

    Raises:
        DataError: when it is unknown to tensorflow-datasets, not prepared under
            `data_dir`, or not an image-classification data set.
    """
    import tensorflow_datasets as tfds

    options = options or FolderOptions()
    name = dataset[len(TFDS_PREFIX) :]
    where = data_dir or "tensorflow-datasets' default folder"
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # noqa: BLE001 - tfds raises several kinds for an unknown name
        raise DataError(
            f"tensorflow-datasets has no data set {name!r} ({_first_line(e)})."
        ) from None
    if not builder.is_prepared():
        raise DataError(
            f"{name} is not prepared for tensorflow-datasets under {where}: run `tfds build "
            f"{name} --data_dir=DIR` where there is internet and give --data_dir=DIR."
        )
    image_key, label_key = _features(builder.info, name)
    class_names = tuple(builder.info.features[label_key].names)
    parts = {}
    for split in ("train", "test"):
        if split in builder.info.splits:
            parts[split] = _arrays(builder.as_dataset(split=split), image_key, label_key, options)
    if "train" not in parts:
        raise DataError(
            f"{name} has no train split: its splits are {', '.join(builder.info.splits)}."
        )
    train_images, train_labels = parts["train"]
    if "test" in parts:
        test_images, test_labels = parts["test"]
    else:
        is_test = held_out(train_labels, options.test_fraction, options.seed)
        test_images, test_labels = train_images[is_test], train_labels[is_test]
        train_images, train_labels = train_images[~is_test], train_labels[~is_test]
    mean, std = normalization_of(train_images)
    shape = (options.image_size, options.image_size, options.channels)
    return ImageDataset(
        info=DatasetInfo(dataset, len(class_names), shape, mean, std),
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        class_names=class_names,
        source=f"tfds {name} in {where}",
    )


def _arrays(split, image_key: str, label_key: str, options: FolderOptions):
    import tensorflow_datasets as tfds

    images, labels = [], []
    for example in tfds.as_numpy(split):
        pixels = example[image_key]
        pixels = pixels[..., None] if pixels.ndim == 2 else pixels
        images.append(fit_image(pixels, options.image_size, options.image_size, options.channels))
        labels.append(int(example[label_key]))
    shape = (0, options.image_size, options.image_size, options.channels)
    return (np.stack(images) if images else np.zeros(shape, np.uint8)), np.asarray(labels, np.int64)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:200]
