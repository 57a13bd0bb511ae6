"""Keras Applications towers behind --backbone: built under the project's head, started from
a weights file this test writes (never a download), trained, exported and refused in one line."""

import hashlib
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.errors import ConfigError
from keras_siamese.model import backbones
from keras_siamese.serving import export
from tests.conftest import program_output, train_error
from tests.test_distillation import TINY as RESNET_TINY

# The demo's digits in a run of seconds; the backbone has its own depth.
TINY = [flag for flag in RESNET_TINY if not flag.startswith("--depth")]


@pytest.mark.parametrize(
    "name",
    [
        "mobilenetv3small",
        pytest.param("resnet50v2", marks=pytest.mark.slow),
        pytest.param("efficientnetv2b0", marks=pytest.mark.slow),
    ],
)
def test_a_backbone_takes_uint8_images_at_any_size_and_gives_the_heads_embedding(name):
    tower = backbones.backbone_tower(name, (28, 28, 1), 32, embedding="dense", embedding_dim=16)
    assert tower.input.dtype == "uint8" and tower.output_shape == (None, 16)
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
    embeddings = tower.predict(images, verbose=0)
    assert embeddings.dtype == np.float32 and np.isfinite(embeddings).all()
    # Grey images become colour and are resized inside: the network sees 32 x 32 x 3.
    network = next(layer for layer in tower.layers if isinstance(layer, keras.Model))
    assert tuple(network.input_shape[1:]) == (32, 32, 3)


def _weights_file(tmp_path, name: str = "mobilenetv3small", size: int = 32) -> str:
    """A randomly initialised network without its top, saved as a user would save one."""
    constructor = getattr(keras.applications, backbones.APPLICATIONS[name].constructor)
    keras.utils.set_random_seed(7)
    network = constructor(include_top=False, weights=None, input_shape=(size, size, 3))
    path = str(tmp_path / f"{name}.weights.h5")
    network.save_weights(path)
    return path


def test_a_tower_starts_from_exactly_the_weights_of_its_file(tmp_path):
    path = _weights_file(tmp_path)
    keras.utils.set_random_seed(0)  # another seed than the file's
    tower = backbones.backbone_tower("mobilenetv3small", (32, 32, 3), 32, weights=path)
    network = next(layer for layer in tower.layers if isinstance(layer, keras.Model))
    saved = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(32, 32, 3)
    )
    saved.load_weights(path)
    for got, want in zip(network.get_weights(), saved.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    record = backbones.weights_record(path)
    with open(path, "rb") as f:
        assert record == {"weights": path, "sha256": hashlib.sha256(f.read()).hexdigest()}


def test_a_weights_file_of_another_network_is_one_config_error(tmp_path):
    path = _weights_file(tmp_path, "resnet50v2")
    with pytest.raises(ConfigError, match="does not fit the mobilenetv3small tower at 32 pixels"):
        backbones.backbone_tower("mobilenetv3small", (32, 32, 3), 32, weights=path)


def test_imagenet_weights_that_cannot_be_downloaded_are_one_config_error(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no route to host")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(ConfigError) as error:
        backbones.backbone_tower("mobilenetv3small", (32, 32, 3), 32, weights="imagenet")
    message = str(error.value)
    assert "could not download mobilenetv3small's ImageNet weights (URL fetch failure" in message
    assert "--backbone_weights=PATH" in message and "\n" not in message


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--backbone=vgg16"], "should be one of"),
        (["--backbone=mobilenetv3small", "--image_size=16"], "below --backbone="),
        (["--backbone=mobilenetv3small", "--depth=20"], "--depth is resnet56's"),
        (
            ["--backbone=mobilenetv3small", "--backbone_weights=/nonexistent.weights.h5"],
            "is neither none, imagenet nor a file",
        ),
        (["--backbone_weights=imagenet"], "is for a Keras Applications --backbone"),
        (["--backbone=mobilenetv3small", "--pool_grid=3"], "must be from 1 to 1"),
    ],
)
def test_bad_backbone_settings_are_one_line_and_nothing_is_written(
    capsys, tmp_path, flags, message
):
    error = train_error(capsys, *TINY, *flags, f"--workdir={tmp_path / 'run'}")
    assert message in error
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # a whole run through a MobileNetV3: make test-slow
def test_a_run_on_a_backbone_from_a_weights_file_trains_exports_and_records_them(tmp_path):
    path = _weights_file(tmp_path)
    workdir = tmp_path / "run"
    program_output(
        "train_main",
        *TINY,
        "--backbone=mobilenetv3small",
        f"--backbone_weights={path}",
        "--image_size=32",
        "--embedding=dense",
        f"--workdir={workdir}",
    )
    export_dir = str(workdir / "export")
    with open(os.path.join(export_dir, "metadata.json")) as f:
        meta = json.load(f)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert meta["backbone"] == "mobilenetv3small"
    assert meta["backbone_weights"] == {"weights": path, "sha256": digest}
    assert meta["input_shape"] == [28, 28, 1]  # MNIST's own size: the tower resizes inside
    # The export embeds as the trained tower does, after saving and loading.
    tower = export.load_tower(export_dir)
    images = np.random.default_rng(1).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
    loaded = export.load_saved_model(export_dir)  # kept: its variables live with it
    served = loaded.serve(tf.constant(images)).numpy()
    np.testing.assert_allclose(served, tower.predict(images, verbose=0), atol=1e-4)
