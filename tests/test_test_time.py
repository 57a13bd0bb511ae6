"""Test-time options: flip averaging and centring, inside the model an export serves."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_siamese.errors import UserError
from keras_siamese.model import resnet, test_time

CIFAR = dict(input_shape=(32, 32, 3), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


@pytest.fixture(scope="module")
def tower() -> keras.Model:
    keras.utils.set_random_seed(0)
    return resnet.resnet8(**CIFAR)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)


def _embed(model, images) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(images, training=False)).astype(np.float64)


def test_no_options_is_the_tower_itself(tower, images):
    assert test_time.with_options(tower, "none", "none", images) is tower


def test_flip_averages_the_image_and_its_mirror_image(tower, images):
    model = test_time.with_options(tower, "flip", "none", images)
    by_hand = (_embed(tower, images) + _embed(tower, images[:, :, ::-1, :])) / 2
    np.testing.assert_allclose(_embed(model, images), by_hand, atol=1e-5)
    assert test_time.base_tower(model) is tower


def test_centring_on_the_seen_images_leaves_them_a_zero_mean(tower, images):
    model = test_time.with_options(tower, "flip", "seen", images[:8])
    flipped = (_embed(tower, images) + _embed(tower, images[:, :, ::-1, :])) / 2
    mean = flipped[:8].mean(axis=0)
    np.testing.assert_allclose(_embed(model, images), flipped - mean, atol=1e-5)
    np.testing.assert_allclose(_embed(model, images[:8]).mean(axis=0), 0.0, atol=1e-5)


def test_the_centring_sample_is_the_first_images_of_each_class():
    labels = np.array([3, 1, 3, 3, 1, 2, 3])
    np.testing.assert_array_equal(test_time.centring_sample(labels, per_class=2), [0, 1, 2, 4, 5])
    assert len(test_time.centring_sample(np.zeros((0,), np.int64))) == 0


def test_options_survive_the_keras_file(tower, images, tmp_path):
    model = test_time.with_options(tower, "flip", "seen", images)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(_embed(loaded, images), _embed(model, images), atol=1e-6)
    assert test_time.base_tower(loaded).name == tower.name


def test_centring_without_seen_images_is_one_clear_error(tower):
    with pytest.raises(UserError, match="--center=seen needs the seen classes' train images"):
        test_time.with_options(tower, "none", "seen", np.zeros((0, 32, 32, 3), np.uint8))


def test_the_search_scores_trials_on_the_embeddings_their_export_would_serve(tower, images):
    from keras_siamese.evaluation import protocol
    from keras_siamese.training.callbacks import ONESHOT_LOG, OneShotObjective

    labels = np.repeat(np.arange(4), 3)
    centring = images[:5]
    objective = OneShotObjective(
        tower, images, labels, "cosine", tta="flip", center="seen", centring_images=centring
    )
    logs = {"loss": 1.0}
    objective.on_epoch_end(0, logs)
    flipped = (_embed(tower, images) + _embed(tower, images[:, :, ::-1, :])) / 2
    centred = flipped - flipped[:5].mean(axis=0)
    expected = protocol.random_support_accuracy(centred, labels, "cosine").value
    assert logs[ONESHOT_LOG] == pytest.approx(expected)
    plain = protocol.random_support_accuracy(_embed(tower, images), labels, "cosine").value
    OneShotObjective(tower, images, labels, "cosine").on_epoch_end(0, logs)
    assert logs[ONESHOT_LOG] == pytest.approx(plain)
