"""Any image-classification data set of tensorflow-datasets, by name: `--dataset=tfds:NAME`.

The data set must already be prepared under `--data_dir` (`tfds build NAME
--data_dir=DIR` where there is internet); it needs an image feature and a
class-label feature. Its `train` and `test` splits are used as given (without a
`test` split, a seeded share of each class is held out, as for a folder); its
images are made into the model's input as a folder's are.
"""

from __future__ import annotations

import numpy as np

from keras_siamese.data.datasets import DatasetInfo, ImageDataset
from keras_siamese.data.folder import FolderOptions, held_out, normalization_of
from keras_siamese.data.images import fit_image
from keras_siamese.errors import DataError

PREFIX = "tfds:"


def is_tfds_name(dataset: str) -> bool:
    """Whether `dataset` names a tensorflow-datasets data set (`tfds:NAME`)."""
    return dataset.startswith(PREFIX) and len(dataset) > len(PREFIX)


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
    name = dataset[len(PREFIX) :]
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
