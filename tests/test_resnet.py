import keras
import numpy as np
import pytest

from keras_siamese.errors import ConfigError
from keras_siamese.model import resnet

CIFAR = {"input_shape": (32, 32, 3), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}


def _count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def test_resnet56_exact_parameter_count_and_output_shape():
    tower = resnet.resnet56(**CIFAR)
    # Hand count, 3x3 convolutions without bias:
    #   stem 3*16*9 = 432
    #   stage 1: 18 convs 16->16 = 18*2304 = 41,472
    #   stage 2: 16->32 (4,608) + 17 convs 32->32 (17*9,216) = 161,280
    #   stage 3: 32->64 (18,432) + 17 convs 64->64 (17*36,864) = 645,120
    #   convs: 848,304; batch-norm gamma/beta: 2*(16 + 18*16 + 18*32 + 18*64) = 4,064
    assert _count(tower.trainable_weights) == 852_368
    # Moving mean and variance of the same batch norms; the shortcuts add nothing.
    assert _count(tower.non_trainable_weights) == 4_064
    out = tower(np.zeros((2, 32, 32, 3), np.uint8))
    assert tuple(out.shape) == (2, 64)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


def test_option_a_shortcut_has_no_weights_and_pads_channels():
    layer = resnet.ShortcutA(out_channels=32, stride=2)
    x = np.arange(2 * 4 * 4 * 16, dtype=np.float32).reshape(2, 4, 4, 16)
    y = keras.ops.convert_to_numpy(layer(x))
    assert layer.weights == []
    assert y.shape == (2, 2, 2, 32)
    np.testing.assert_array_equal(y[..., 8:24], x[:, ::2, ::2, :])
    assert not y[..., :8].any() and not y[..., 24:].any()
    shortcuts = [
        layer for layer in resnet.resnet56(**CIFAR).layers if isinstance(layer, resnet.ShortcutA)
    ]
    assert len(shortcuts) == 2 and all(not layer.weights for layer in shortcuts)


def test_depth8_tower_on_mnist_shape_and_dense_l2_embedding():
    tower = resnet.resnet8(
        input_shape=(28, 28, 1),
        mean=(0.13,),
        std=(0.31,),
        embedding="dense",
        embedding_dim=16,
        l2_normalize=True,
    )
    out = keras.ops.convert_to_numpy(tower(np.full((3, 28, 28, 1), 200, np.uint8)))
    assert out.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_batchnorm_neck_centres_each_embedding_dimension_over_the_batch():
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    keras.utils.set_random_seed(0)
    plain = keras.ops.convert_to_numpy(resnet.resnet8(**CIFAR)(images, training=True))
    assert plain.min() >= 0.0  # the pool follows a ReLU
    keras.utils.set_random_seed(0)
    necked = keras.ops.convert_to_numpy(
        resnet.resnet8(**CIFAR, neck="batchnorm")(images, training=True)
    )
    # Batch normalisation by hand: the same pooled features, standardised per column.
    expected = (plain - plain.mean(0)) / np.sqrt(plain.var(0) + 1e-5)
    np.testing.assert_allclose(necked, expected, atol=1e-3)


def test_unknown_neck_is_a_config_error():
    with pytest.raises(ConfigError, match="--neck=layernorm"):
        resnet.resnet_tower(8, **CIFAR, neck="layernorm")


@pytest.mark.parametrize("depth", [0, 7, 9, 21])
def test_bad_depth_is_a_config_error(depth):
    with pytest.raises(ConfigError, match="6n\\+2"):
        resnet.resnet_tower(depth, **CIFAR)


def test_tower_round_trips_through_keras_file(tmp_path):
    tower = resnet.resnet8(**CIFAR)
    path = str(tmp_path / "tower.keras")
    tower.save(path)
    loaded = keras.models.load_model(path)
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(images)),
        keras.ops.convert_to_numpy(tower(images)),
        atol=1e-6,
    )


def test_grid_pool_concatenates_the_means_of_overlapping_cells(tmp_path):
    from keras_siamese.serving import export
    from tests.conftest import sample_metadata

    mnist = {"input_shape": (28, 28, 1), "mean": (0.13,), "std": (0.31,)}
    keras.utils.set_random_seed(0)
    tower = resnet.resnet8(**mnist, pool_grid=2)
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
    out = keras.ops.convert_to_numpy(tower(images))
    assert out.shape == (3, 2 * 2 * 64)
    # By hand: the 7 x 7 map's rows and columns 0-3 and 3-6 (the middle one in both
    # cells), each cell's 64 channel means in row-major order of the cells.
    feature_map = keras.Model(tower.input, tower.get_layer("stage3_block1_out").output)
    maps = keras.ops.convert_to_numpy(feature_map(images))
    assert maps.shape[1:3] == (7, 7)
    cells = [maps[:, r : r + 4, c : c + 4].mean((1, 2)) for r in (0, 3) for c in (0, 3)]
    expected = np.stack(cells, axis=1).reshape(3, -1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    # The global pool is the one-cell grid.
    assert tuple(resnet.resnet8(**mnist)(images).shape) == (3, 64)
    # The grid survives the SavedModel that clients load.
    export_dir = str(tmp_path / "export")
    export.export_tower(tower, export_dir, sample_metadata(dataset="mnist", split="6_4"))
    saved_model = export.load_saved_model(export_dir)  # kept: its variables die with it
    np.testing.assert_allclose(saved_model.serve(images).numpy(), out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("grid", [0, 9])
def test_a_grid_outside_the_last_feature_map_is_a_config_error(grid):
    with pytest.raises(ConfigError, match=f"--pool_grid={grid} must be from 1 to 8"):
        resnet.resnet_tower(8, **CIFAR, pool_grid=grid)
