"""Damage done for real: SIGKILL during training and during export."""

import csv
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from keras_siamese import files
from keras_siamese.serving import export
from tests.conftest import (
    ROOT,
    kill_after_first_epoch,
    program_error,
    program_output,
    sample_metadata,
    train_error,
)


def _train_args(cifar_dir, workdir):
    """The smoke run's flags (three epochs of three steps), in another workdir."""
    return [
        "--flagfile=flags/smoke.flags",
        "--split=90_10",
        f"--data_dir={cifar_dir}",
        f"--workdir={workdir}",
    ]


def test_killed_training_resumes_and_logs_each_epoch_once(smoke_run, cifar_dir, tmp_path):
    workdir = str(tmp_path / "run")
    args = _train_args(cifar_dir, workdir)
    proc = subprocess.Popen(
        [sys.executable, "train_main.py", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killed_at = kill_after_first_epoch(proc, workdir)
    assert 1 <= killed_at < 3
    assert not os.path.exists(os.path.join(workdir, "export"))

    out = program_output("train_main", *args)  # the resumed run, in this process
    assert f"resuming at epoch {killed_at + 1}" in out
    steps_left = (3 - killed_at) * 3
    (estimate,) = [line for line in out.splitlines() if line.startswith("Estimated ")]
    assert f"for the {steps_left} training steps left in this run at " in estimate
    with open(os.path.join(workdir, "history.csv")) as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert epochs == [0, 1, 2]
    assert os.path.exists(os.path.join(workdir, "export", "saved_model.pb"))
    assert not os.path.exists(os.path.join(workdir, "backup"))

    # Training is deterministic on this CPU, so an exact resume (weights, Adam's moments
    # and step count, the sampler's epoch seed) ends where an uninterrupted run of the
    # same flags ends: the smoke run.
    straight = smoke_run
    with (
        open(os.path.join(straight, "config.flags")) as a,
        open(os.path.join(workdir, "config.flags")) as b,
    ):
        assert a.read() == b.read().replace(workdir, straight)
    resumed_weights = export.load_tower(os.path.join(workdir, "export")).get_weights()
    straight_weights = export.load_tower(os.path.join(straight, "export")).get_weights()
    for resumed, uninterrupted in zip(resumed_weights, straight_weights, strict=True):
        np.testing.assert_allclose(resumed, uninterrupted, rtol=1e-5, atol=1e-6)


_EXPORT_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from keras_siamese import files
    from keras_siamese.serving import export
    from keras_siamese.model import resnet
    export_dir, metadata = sys.argv[1], sys.argv[2]
    tower = resnet.resnet8(input_shape=(32, 32, 3), mean=(0.5,) * 3, std=(0.25,) * 3)
    if metadata == "second":
        real_replace = os.replace
        calls = []
        def dying_replace(src, dst):
            calls.append(src)
            if len(calls) == 2:  # the old export is aside, the new not yet in place
                os.kill(os.getpid(), signal.SIGKILL)
            real_replace(src, dst)
        files.os.replace = dying_replace
    from keras_siamese.serving.metadata import ExportMetadata
    export.export_tower(tower, export_dir, ExportMetadata(
        dataset="cifar100", split=metadata, split_order="sequential", split_seed=0,
        val_fraction=0.1, distance="cosine"))
    """
)


def test_killed_export_leaves_the_previous_export_whole(tmp_path):
    from keras_siamese.model import resnet

    export_dir = str(tmp_path / "export")
    tower = resnet.resnet8(input_shape=(32, 32, 3), mean=(0.5,) * 3, std=(0.25,) * 3)
    export.export_tower(tower, export_dir, sample_metadata("first"))
    # The second export is killed in its own process, between its two renames.
    result = subprocess.run(
        [sys.executable, "-c", _EXPORT_SCRIPT, export_dir, "second"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == -signal.SIGKILL
    # What the next run does first: put the interrupted replacement right.
    files.restore_interrupted_replace(export_dir)
    with open(os.path.join(export_dir, "metadata.json")) as f:
        assert json.load(f)["split"] == "first"
    served = export.load_saved_model(export_dir)
    assert served.serve is not None
    # The next export cleans the killed one's staging folder up.
    export.export_tower(tower, export_dir, sample_metadata("third"))
    assert sorted(os.listdir(tmp_path)) == ["export"]


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_diverged_run_stops_with_the_epoch_and_keeps_the_previous_export(
    capsys, smoke_run, data_root, tmp_path
):
    workdir = tmp_path / "run"
    args = [
        "--flagfile=flags/smoke.flags",
        "--distance=euclidean",
        # Batch normalisation's fused kernel keeps 1e12 finite; 1e30 overflows the convolutions.
        "--learning_rate=1e30",
        f"--data_dir={os.path.join(data_root, 'cifar100')}",
        f"--workdir={workdir}",
    ]
    # An export from an earlier good run of this workdir must survive the diverged run.
    shutil.copytree(os.path.join(smoke_run, "export"), workdir / "export")
    before = _tree(workdir / "export")
    line = program_error(capsys, "train_main", *args)  # in this process: no import to pay
    assert line.startswith("error: The training loss became nan in epoch 1")
    assert "no export was written" in line
    assert _tree(workdir / "export") == before
    assert not (workdir / "backup").exists()
    assert not (workdir / "checkpoints" / "best.weights.h5").exists()
    assert export.load_saved_model(str(workdir / "export")).serve is not None


def test_best_weights_ignore_nan_and_survive_a_resume(tmp_path):
    import keras

    from keras_siamese.training.callbacks import BestWeights

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = str(tmp_path / "best.weights.h5")
    callback = BestWeights(path, "val_loss")
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_epoch_end(0, {"val_loss": 0.5})
    good = [w.copy() for w in model.get_weights()]
    model.set_weights([w + 1 for w in good])
    callback.on_epoch_end(1, {"val_loss": float("nan")})
    callback.on_epoch_end(2, {"val_loss": 0.7})
    restored = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    restored.load_weights(path)
    for a, b in zip(restored.get_weights(), good, strict=True):
        np.testing.assert_array_equal(a, b)
    # A resumed run compares against the stored best, not against infinity.
    resumed = BestWeights(path, "val_loss")
    resumed.set_model(model)
    resumed.on_train_begin()
    assert resumed.best == 0.5


def test_best_weights_skip_the_epochs_before_their_first(tmp_path):
    import keras

    from keras_siamese.training.callbacks import BestWeights

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = str(tmp_path / "best.weights.h5")
    callback = BestWeights(path, "val_loss", first_epoch=2)
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_epoch_end(0, {"val_loss": 0.1})  # a warm-up epoch: lower, but another loss
    callback.on_epoch_end(1, {"val_loss": 0.2})
    assert not os.path.exists(path)
    callback.on_epoch_end(2, {"val_loss": 0.6})
    assert callback.best == 0.6 and os.path.exists(path)


def _cifar_dir(tmp_path, images=None, labels=None):
    rng = np.random.default_rng(0)
    if labels is None:
        labels = np.repeat(np.arange(100), 3).astype(np.uint8)
    if images is None:
        images = rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "cifar100_train.npz", images=images, fine_labels=labels)
    np.savez(data / "cifar100_test.npz", images=images, fine_labels=labels)
    return data


def _corrupt(kind, tmp_path):
    if kind == "truncated npz":
        data = _cifar_dir(tmp_path)
        raw = (data / "cifar100_train.npz").read_bytes()
        (data / "cifar100_train.npz").write_bytes(raw[:1000])
        return data, "cifar100_train.npz is not a readable .npz file"
    if kind == "wrong dtype":
        data = _cifar_dir(tmp_path, images=np.zeros((300, 32, 32, 3), np.float64))
        return data, "dtype float64, expected uint8"
    if kind == "wrong shape":
        data = _cifar_dir(tmp_path, images=np.zeros((300, 32, 32), np.uint8))
        return data, "expected (N, 32, 32, 3)"
    if kind == "labels out of range":
        labels = np.repeat(np.arange(100), 3)
        labels[7] = 250
        return _cifar_dir(tmp_path, labels=labels.astype(np.uint8)), "expected 0 to 99"
    if kind == "foreign pickle":
        data = tmp_path / "data" / "cifar-100-python"
        data.mkdir(parents=True)
        for name in ("train", "test", "meta"):
            (data / name).write_bytes(pickle.dumps({"data": os.system}))
        return data.parent, "not allowed"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind", ["truncated npz", "wrong dtype", "wrong shape", "labels out of range", "foreign pickle"]
)
def test_bad_data_is_one_line_and_writes_nothing(capsys, tmp_path, kind):
    data, message = _corrupt(kind, tmp_path)
    workdir = tmp_path / "run"
    assert message in train_error(capsys, f"--data_dir={data}", f"--workdir={workdir}")
    assert not workdir.exists()


def test_class_without_a_positive_pair_is_refused_before_the_workdir(capsys, tmp_path):
    labels = np.repeat(np.arange(100), 3)
    labels[[3, 4]] = 2  # class 1 keeps a single train image
    data = _cifar_dir(tmp_path, labels=labels.astype(np.uint8))
    workdir = tmp_path / "run"
    line = train_error(capsys, f"--data_dir={data}", f"--workdir={workdir}", "--val_fraction=0")
    assert line == (
        "error: Class '1', the smallest seen class, has 1 train image(s): training needs "
        "at least 2 (a positive pair)."
    )
    assert not workdir.exists()


def test_a_best_value_of_another_monitor_is_not_compared_against(tmp_path):
    from keras_siamese.training.callbacks import BestWeights

    path = str(tmp_path / "best.weights.h5")
    with open(f"{path}.json", "w") as f:
        json.dump({"epoch": 1, "monitor": "val_loss", "value": 0.01}, f)
    same, other = BestWeights(path, "val_loss"), BestWeights(path, "val_violating_fraction")
    for callback in (same, other):
        callback.on_train_begin()
    assert same.best == 0.01 and other.best == float("inf")
