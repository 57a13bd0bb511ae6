"""End to end: train_main on real data, the export, and rejected flags."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.data import datasets, sources
from keras_siamese.model import resnet, siamese
from keras_siamese.serving import export
from tests.conftest import TEST_IMAGES_PER_CLASS, program_output, run_main, sample_metadata


def _read(*parts: str) -> str:
    with open(os.path.join(*parts)) as f:
        return f.read()


def test_smoke_run_writes_metrics_export_and_config(smoke_run):
    metrics = json.loads(_read(smoke_run, "metrics.json"))
    assert 0.0 <= metrics["seen"]["triplet_accuracy"]["value"] <= 1.0
    assert metrics["seen"]["triplet_accuracy"]["count"] == 10_000
    assert metrics["unseen"]["oneshot"]["ways"] == 10
    # Each unseen class's first test image is its support; the others are queries.
    per_class = TEST_IMAGES_PER_CLASS
    assert metrics["unseen"]["oneshot"]["first_support"]["count"] == 10 * (per_class - 1)
    assert metrics["budget"]["epochs"] == 3
    for name in ("saved_model.pb", "metadata.json", "tower.keras"):
        assert os.path.exists(os.path.join(smoke_run, "export", name)), name
    meta = json.loads(_read(smoke_run, "export", "metadata.json"))
    assert meta["dataset"] == "cifar100" and meta["split"] == "90_10"
    assert meta["seen_classes"] == list(range(90))
    assert meta["unseen_classes"] == list(range(90, 100))
    assert meta["distance"] == "cosine" and meta["margin"] == 0.3
    assert meta["input_shape"] == [32, 32, 3] and meta["embedding_size"] == 64
    assert meta["metrics"] == metrics
    assert "tensorflow" in meta["versions"]
    flagfile = _read(smoke_run, "config.flags").splitlines()
    assert "--split=90_10" in flagfile and "--depth=8" in flagfile
    assert "--margin=0.3" in flagfile
    history = _read(smoke_run, "history.csv").splitlines()
    assert history[0].startswith("epoch") and len(history) == 4
    # Nothing half-written is left beside the export.
    assert not [f for f in os.listdir(smoke_run) if f.startswith(".export")]


def test_saved_model_matches_the_keras_tower_on_real_images(smoke_run, data_root):
    export_dir = os.path.join(smoke_run, "export")
    tower = export.load_tower(export_dir)
    served = tf.saved_model.load(export_dir)
    images = sources.load_dataset("cifar100", data_root).test_images[:64]
    expected = keras.ops.convert_to_numpy(tower(images, training=False))
    got = served.serve(tf.constant(images)).numpy()
    assert got.dtype == np.float32 and got.shape == (64, 64)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    signature = served.signatures["serving_default"]
    (spec,) = signature.structured_input_signature[1].values()
    assert spec.dtype == tf.uint8
    # As TensorFlow Serving calls it: named outputs, one ready for the cosine distance.
    outputs = signature(images=tf.constant(images[:8]))
    assert set(outputs) == {"embeddings", "search_vectors"}
    np.testing.assert_allclose(outputs["embeddings"].numpy(), expected[:8], atol=1e-5)
    vectors = outputs["search_vectors"].numpy()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    unit = expected[:8] / np.linalg.norm(expected[:8], axis=1, keepdims=True)
    # A client's dot product of two search vectors is their embeddings' cosine.
    np.testing.assert_allclose(vectors @ vectors.T, unit @ unit.T, atol=1e-5)


def test_export_equals_in_memory_tower_after_training(tmp_path):
    info = datasets.DATASETS["cifar100"]
    tower = resnet.resnet8(input_shape=info.image_shape, mean=info.mean, std=info.std)
    model = siamese.triplet_model(tower, "euclidean", 1.0)
    model.compile(optimizer="adam", loss=siamese.identity_loss)
    rng = np.random.default_rng(0)
    x = {k: rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8) for k in siamese.INPUT_NAMES}
    model.train_on_batch(x, np.zeros(8, np.float32))  # moves the batch-norm statistics
    export_dir = str(tmp_path / "export")
    export.export_tower(tower, export_dir, sample_metadata("first"))
    images = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    expected = keras.ops.convert_to_numpy(tower(images, training=False))
    served = export.load_saved_model(export_dir)
    np.testing.assert_allclose(served.serve(tf.constant(images)).numpy(), expected, atol=1e-5)
    # A second export replaces the first completely.
    export.export_tower(tower, export_dir, sample_metadata("second"))
    assert json.loads(_read(export_dir, "metadata.json"))["split"] == "second"
    assert sorted(os.listdir(tmp_path)) == ["export"]


# The command-line contract as a process sees it: a flag absl refuses (exit 2) and a
# setting the configuration refuses (exit 1). Every other bad flag: tests/test_cli.py.
@pytest.mark.parametrize(
    "flag,message",
    [("--distance=manhattan", "should be one of"), ("--depth=10", "6n+2")],
)
def test_bad_flags_exit_with_one_line_and_write_nothing(tmp_path, flag, message):
    workdir = tmp_path / "run"
    result = run_main("train_main.py", f"--workdir={workdir}", "--data_dir=/nonexistent", flag)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert not workdir.exists()


def test_workdir_of_another_configuration_is_refused_untouched(smoke_run, cifar_dir):
    before = {
        name: os.path.getmtime(os.path.join(smoke_run, name)) for name in os.listdir(smoke_run)
    }
    result = run_main(
        "train_main.py",
        "--flagfile=flags/smoke.flags",
        "--split=80_20",
        f"--data_dir={cifar_dir}",
        f"--workdir={smoke_run}",
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: --workdir={smoke_run} holds a run of another configuration (this one differs "
        "in --split=80_20): choose another workdir or pass --overwrite to replace that run."
    ]
    after = {
        name: os.path.getmtime(os.path.join(smoke_run, name)) for name in os.listdir(smoke_run)
    }
    assert after == before


def test_the_same_command_on_a_finished_run_trains_nothing(smoke_run, cifar_dir):
    watched = [os.path.join(smoke_run, n) for n in ("metrics.json", "config.flags", "history.csv")]
    watched.append(os.path.join(smoke_run, "export", "saved_model.pb"))
    before = [os.stat(p).st_mtime_ns for p in watched]
    out = program_output(
        "train_main",
        "--flagfile=flags/smoke.flags",
        "--split=90_10",
        f"--data_dir={cifar_dir}",
        f"--workdir={smoke_run}",
    )
    assert out.strip().splitlines() == [
        f"The run in {smoke_run} is finished: its metrics are in "
        f"{os.path.join(smoke_run, 'metrics.json')} and its export in "
        f"{os.path.join(smoke_run, 'export')}; pass --overwrite to train it again."
    ]
    assert [os.stat(p).st_mtime_ns for p in watched] == before
