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
        (["--backbone=vgg16"], "is unknown: choose one of resnet56, efficientnetv2b0,"),
        (["--backbone=mobilenetv3small", "--image_size=16"], "below --backbone="),
        (["--backbone=mobilenetv3small", "--depth=20"], "--depth is resnet56's"),
        (
            ["--backbone=mobilenetv3small", "--backbone_weights=/nonexistent.weights.h5"],
            "is neither none, imagenet, a file nor an export",
        ),
        (["--backbone_weights=imagenet"], "is for a Keras Applications --backbone"),
        (["--backbone=mobilenetv3small", "--pool_grid=3"], "must be from 1 to 1"),
        (
            ["--backbone=mobilenetv3small", "--freeze_backbone_epochs=2", "--epochs=2"],
            "must be shorter than the run's --epochs=2",
        ),
        (
            ["--backbone=mobilenetv3small", "--backbone_lr_multiplier=0"],
            "--backbone_lr_multiplier=0.0 must be greater than 0",
        ),
        (["--freeze_backbone_epochs=1"], "is for a Keras Applications --backbone, not resnet56"),
        (["--train_backbone_norm"], "is for a Keras Applications --backbone, not resnet56"),
    ],
)
def test_bad_backbone_settings_are_one_line_and_nothing_is_written(
    capsys, tmp_path, flags, message
):
    error = train_error(capsys, *TINY, *flags, f"--workdir={tmp_path / 'run'}")
    assert message in error
    assert not (tmp_path / "run").exists()


def _fine_tuning(tmp_path, **settings):
    """A mobilenetv3small tower from a weights file, its classifier's training model, one
    fixed batch, and the network inside the tower."""
    from keras_siamese.config import TrainConfig
    from keras_siamese.data.datasets import DATASETS
    from keras_siamese.training import build
    from tests.fine_tuning import FINE_TUNING

    options = dict(FINE_TUNING, backbone_weights=_weights_file(tmp_path))
    config = TrainConfig(**{**options, **settings})
    keras.utils.set_random_seed(0)
    tower = build.build_tower(config, DATASETS["cifar100"])
    model = build.build_training_model(config, tower, num_classes=4, steps_per_epoch=2)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    y = np.arange(8, dtype=np.int32) % 4
    return model, x, y, backbones.network_of(tower)


def test_a_frozen_backbone_does_not_change_until_its_epochs_end(tmp_path):
    model, x, y, network = _fine_tuning(tmp_path, freeze_backbone_epochs=1)
    in_tower = {id(v) for v in network.trainable_variables}
    head = [v for v in model.trainable_variables if id(v) not in in_tower]
    tower_start = [w.copy() for w in network.get_weights()]
    trainable_start = [v.numpy().copy() for v in network.trainable_variables]
    head_start = [v.numpy().copy() for v in head]
    for _ in range(2):  # the frozen epoch: 2 steps
        model.train_on_batch(x, y)
    # Weights (decay included) and the batch norm's statistics (inference mode): unchanged.
    for got, want in zip(network.get_weights(), tower_start, strict=True):
        np.testing.assert_array_equal(got, want)
    assert all(not np.array_equal(v.numpy(), w) for v, w in zip(head, head_start, strict=True))
    model.train_on_batch(x, y)  # the first step after it: every trainable weight moves
    after = [v.numpy() for v in network.trainable_variables]
    assert all(not np.array_equal(a, b) for a, b in zip(after, trainable_start, strict=True))


def test_the_backbone_steps_at_its_multiple_of_the_rate(tmp_path):
    def first_step(multiplier: float):
        model, x, y, network = _fine_tuning(
            # A large rate, so that one step's change is far above float32's rounding.
            tmp_path,
            backbone_lr_multiplier=multiplier,
            weight_decay=0.0,
            momentum=0.0,
            learning_rate=100.0,
        )
        tracked = network.trainable_variables[0]  # the first convolution's kernel
        before = tracked.numpy().copy()
        model.train_on_batch(x, y)
        return tracked.numpy() - before

    plain, tenth = first_step(1.0), first_step(0.1)
    assert np.abs(plain).max() > 0
    np.testing.assert_allclose(tenth, 0.1 * plain, rtol=1e-3, atol=1e-7)


def test_a_pretrained_towers_batch_norm_stays_in_inference_mode_unless_asked(tmp_path):
    path = _weights_file(tmp_path)

    def batch_norms(weights: str, train_norm: bool = False):
        tower = backbones.backbone_tower(
            "mobilenetv3small", (32, 32, 3), 32, weights=weights, train_norm=train_norm
        )
        network = backbones.network_of(tower)
        return [x for x in network.layers if isinstance(x, keras.layers.BatchNormalization)]

    assert batch_norms(path) and not any(layer.trainable for layer in batch_norms(path))
    assert all(layer.trainable for layer in batch_norms(path, train_norm=True))
    assert all(layer.trainable for layer in batch_norms("none"))


def test_a_backbone_tower_is_its_own_base_tower_with_or_without_test_time_options():
    from keras_siamese.model import test_time

    tower = backbones.backbone_tower("mobilenetv3small", (32, 32, 3), 32)
    assert test_time.base_tower(tower) is tower  # not the network inside it
    wrapped = test_time.embedding_model(tower, tta="flip")
    assert test_time.base_tower(wrapped) is tower


def test_an_export_of_this_project_is_a_backbones_weights_source(tmp_path):
    from keras_siamese.config import TrainConfig
    from keras_siamese.data.datasets import DATASETS
    from keras_siamese.training import build
    from tests.conftest import sample_metadata

    keras.utils.set_random_seed(3)
    source = backbones.backbone_tower(
        "mobilenetv3small", (32, 32, 3), 32, embedding="dense", embedding_dim=16
    )
    export.export_tower(source, str(tmp_path / "export"), sample_metadata())
    config = TrainConfig(
        workdir="unused",
        backbone="mobilenetv3small",
        backbone_weights=str(tmp_path / "export"),
        embedding="dense",
        embedding_dim=32,
    )
    keras.utils.set_random_seed(4)
    tower = build.build_tower(config, DATASETS["cifar100"])
    # The network's weights are the export's; the head (32-d, the export's 16) starts afresh.
    got, want = backbones.network_of(tower), backbones.network_of(source)
    for a, b in zip(got.get_weights(), want.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert tower.output_shape == (None, 32)
    other = TrainConfig(
        workdir="unused", backbone="mobilenetv3large", backbone_weights=str(tmp_path / "export")
    )
    with pytest.raises(ConfigError, match="is an export of a mobilenetv3small tower, not of"):
        build.build_tower(other, DATASETS["cifar100"])


def _tiny_run(tmp_path, *backbone: str) -> str:
    """A run of seconds on the demo's digits with `backbone`'s flags; its export folder."""
    workdir = tmp_path / "run"
    program_output(
        "train_main",
        *TINY,
        *backbone,
        "--image_size=32",
        "--embedding=dense",
        f"--workdir={workdir}",
    )
    return str(workdir / "export")


@pytest.mark.slow  # a whole run through a MobileNetV3: make test-slow
def test_a_run_on_a_backbone_from_a_weights_file_trains_exports_and_records_them(tmp_path):
    path = _weights_file(tmp_path)
    export_dir = _tiny_run(tmp_path, "--backbone=mobilenetv3small", f"--backbone_weights={path}")
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


def _hub_preset(folder) -> str:
    """A small KerasHub ResNet saved as a preset folder with its image converter, as a user
    saves one (never a download)."""
    keras_hub = pytest.importorskip("keras_hub")
    keras.utils.set_random_seed(5)
    network = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        use_pre_activation=False,
        image_shape=(None, None, 3),
    )
    network.save_to_preset(str(folder))
    keras_hub.layers.ResNetImageConverter(image_size=(64, 64), scale=1 / 255).save_to_preset(
        str(folder)
    )
    return str(folder)


def test_a_kerashub_preset_is_a_tower_with_its_weights_and_scaling(tmp_path):
    import keras_hub

    preset = _hub_preset(tmp_path / "preset")
    tower = backbones.backbone_tower(f"hub:{preset}", (28, 28, 1), 64, embedding="dense")
    assert tower.name == "hub" and tower.output_shape == (None, 64)
    network = backbones.network_of(tower)
    saved = keras_hub.models.Backbone.from_preset(preset)
    for got, want in zip(network.get_weights(), saved.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    # The preset's pretrained batch norm runs in inference mode, as a Keras application's.
    norms = [x for x in network.layers if isinstance(x, keras.layers.BatchNormalization)]
    assert norms and not any(x.trainable for x in norms)
    # A transformer's patch tokens go through the same head.
    keras.utils.set_random_seed(6)
    vit = keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32
    )
    vit.save_to_preset(str(tmp_path / "vit"))
    tokens = backbones.backbone_tower(f"hub:{tmp_path / 'vit'}", (32, 32, 3), 32)
    embeddings = tokens.predict(np.zeros((2, 32, 32, 3), np.uint8), verbose=0)
    assert embeddings.shape == (2, 16) and np.isfinite(embeddings).all()


def test_a_run_on_a_kerashub_preset_trains_and_exports_a_tower_that_loads(tmp_path):
    preset = _hub_preset(tmp_path / "preset")
    export_dir = _tiny_run(tmp_path, f"--backbone=hub:{preset}")
    with open(os.path.join(export_dir, "metadata.json")) as f:
        assert json.load(f)["backbone"] == f"hub:{preset}"
    tower = export.load_tower(export_dir)
    images = np.random.default_rng(1).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
    loaded = export.load_saved_model(export_dir)  # kept: its variables live with it
    served = loaded.serve(tf.constant(images)).numpy()
    np.testing.assert_allclose(served, tower.predict(images, verbose=0), atol=1e-4)


def test_a_kerashub_backbone_without_the_extra_is_one_line(capsys, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "keras_hub", None)  # as if it were not installed
    error = train_error(
        capsys, *TINY, "--backbone=hub:resnet_18_imagenet", f"--workdir={tmp_path}/r"
    )
    assert error == (
        "error: --backbone=hub:resnet_18_imagenet needs KerasHub: pip install 'keras-siamese[hub]'."
    )
    assert not (tmp_path / "r").exists()
    error = train_error(
        capsys, *TINY, "--backbone=hub:x", "--backbone_weights=imagenet", f"--workdir={tmp_path}/r"
    )
    assert "the KerasHub preset x brings its own weights" in error


@pytest.mark.slow  # a fresh process under Keras's JAX backend
def test_a_frozen_backbone_holds_still_under_jax_too():
    pytest.importorskip("jax")
    from tests.conftest import run_main

    result = run_main(os.path.join("tests", "backbone_freeze_under_jax.py"))
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [x.split() for x in result.stdout.splitlines() if x.startswith("frozen ")]
    during, after, total = (int(n) for n in line[1:])
    assert during == 0 and after == total > 0, line
