"""Damage done for real: SIGKILL during training and during export."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

from keras_siamese import export, files
from tests.conftest import ROOT, run_main


def _train_args(data_root, workdir):
    return [
        "--flagfile=flags/smoke.flags",
        "--epochs=3",
        "--steps_per_epoch=3",
        "--split=90_10",
        f"--data_dir={os.path.join(data_root, 'cifar100')}",
        f"--workdir={workdir}",
    ]


def _backup_epoch(workdir):
    try:
        with open(os.path.join(workdir, "backup", "training_metadata.json")) as f:
            return json.load(f)["epoch"]
    except (OSError, ValueError):
        return 0


def test_killed_training_resumes_and_logs_each_epoch_once(data_root, tmp_path):
    workdir = str(tmp_path / "run")
    args = _train_args(data_root, workdir)
    proc = subprocess.Popen(
        [sys.executable, "train_main.py", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 300
        while _backup_epoch(workdir) < 1 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "training ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    killed_at = _backup_epoch(workdir)
    assert 1 <= killed_at < 3
    assert not os.path.exists(os.path.join(workdir, "export"))

    result = run_main("train_main.py", *args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resuming at epoch {killed_at + 1}" in result.stdout
    with open(os.path.join(workdir, "history.csv")) as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert epochs == [0, 1, 2]
    assert os.path.exists(os.path.join(workdir, "export", "saved_model.pb"))
    assert not os.path.exists(os.path.join(workdir, "backup"))


_EXPORT_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from keras_siamese import export, files, resnet
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
    export.export_tower(tower, export_dir, {"run": metadata})
    """
)


def test_killed_export_leaves_the_previous_export_whole(tmp_path):
    export_dir = str(tmp_path / "export")

    def export_with(metadata):
        return subprocess.run(
            [sys.executable, "-c", _EXPORT_SCRIPT, export_dir, metadata],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )

    assert export_with("first").returncode == 0
    result = export_with("second")
    assert result.returncode == -signal.SIGKILL
    # What the next run does first: put the interrupted replacement right.
    files.restore_interrupted_replace(export_dir)
    with open(os.path.join(export_dir, "metadata.json")) as f:
        assert json.load(f) == {"run": "first"}
    served = export.load_saved_model(export_dir)
    assert served.serve is not None
    # The next export cleans the killed one's staging folder up.
    assert export_with("third").returncode == 0
    assert sorted(os.listdir(tmp_path)) == ["export"]


def test_diverged_run_stops_with_the_epoch_and_keeps_the_previous_export(
    smoke_run, data_root, tmp_path
):
    workdir = tmp_path / "run"
    args = [
        "--flagfile=flags/smoke.flags",
        "--distance=euclidean",
        "--learning_rate=1e12",
        f"--data_dir={os.path.join(data_root, 'cifar100')}",
        f"--workdir={workdir}",
    ]
    first = run_main("train_main.py", *args)
    assert first.returncode == 1
    assert "error: The training loss became nan in epoch 1" in first.stderr
    assert "no export was written" in first.stderr
    assert not (workdir / "export").exists() and not (workdir / "backup").exists()
    assert not (workdir / "checkpoints" / "best.weights.h5").exists()
    # An export from an earlier good run of this workdir must survive a diverged rerun.
    shutil.copytree(os.path.join(smoke_run, "export"), workdir / "export")
    before = (workdir / "export" / "metadata.json").read_text()
    second = run_main("train_main.py", *args)
    assert second.returncode == 1
    assert (workdir / "export" / "metadata.json").read_text() == before
    assert export.load_saved_model(str(workdir / "export")).serve is not None


def test_best_weights_ignore_nan_and_survive_a_resume(tmp_path):
    import keras
    import numpy as np

    from keras_siamese.checkpoints import BestWeights

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
