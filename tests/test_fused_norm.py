"""The fused batch normalisation: Keras's layer's outputs, gradients and statistics."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.model.fused_norm import FusedBatchNormalization
from keras_siamese.model.resnet import resnet_tower

SETTINGS = {"momentum": 0.9, "epsilon": 1e-5}


def _pair(shape):
    """A Keras layer and a fused one with the same (non-trivial) weights."""
    rng = np.random.default_rng(1)
    keras_bn = keras.layers.BatchNormalization(**SETTINGS)
    fused = FusedBatchNormalization(**SETTINGS)
    for layer in (keras_bn, fused):
        layer.build(shape)
    gamma, beta = rng.normal(size=shape[-1]), np.linspace(-1, 1, shape[-1])
    for layer in (keras_bn, fused):
        layer.gamma.assign(gamma.astype(np.float32))
        layer.beta.assign(beta.astype(np.float32))
    return keras_bn, fused


def _step(layer, x, weights):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
    grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
    return (
        y.numpy().astype(np.float32),
        [g.numpy() for g in grads],
        layer.moving_mean.numpy(),
        layer.moving_variance.numpy(),
        layer(x, training=False).numpy().astype(np.float32),
    )


@pytest.mark.parametrize("policy, tolerance", [("float32", 1e-5), ("mixed_bfloat16", 1e-2)])
def test_outputs_gradients_and_moving_statistics_are_keras_s(policy, tolerance):
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(16, 8, 8, 12)).astype(np.float32)
    weights = tf.constant(np.random.default_rng(5).normal(size=x.shape).astype(np.float32))
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        keras_bn, fused = _pair(x.shape)
        expected, got = _step(keras_bn, x, weights), _step(fused, x, weights)
    finally:
        keras.config.set_dtype_policy(previous)
    scale = np.abs(expected[0]).max()
    np.testing.assert_allclose(got[0], expected[0], atol=tolerance * scale)
    for g, e in zip(got[1], expected[1], strict=True):  # inputs, gamma, beta
        np.testing.assert_allclose(g, e, atol=tolerance * np.abs(e).max())
    # Moving statistics: 0.9 of the initial (0, 1) and 0.1 of the biased batch moments
    # (of the inputs as the policy rounds them).
    batch = x.reshape(-1, x.shape[-1])
    rtol = max(1e-4, tolerance)
    np.testing.assert_allclose(got[2], 0.1 * batch.mean(axis=0), rtol=rtol, atol=1e-5)
    np.testing.assert_allclose(got[3], 0.9 + 0.1 * batch.var(axis=0), rtol=rtol)
    np.testing.assert_allclose(got[3], expected[3], rtol=1e-5)
    np.testing.assert_allclose(got[4], expected[4], atol=tolerance * np.abs(expected[4]).max())


def test_other_shapes_use_keras_s_own_computation():
    x = np.random.default_rng(0).normal(size=(32, 6)).astype(np.float32)
    keras_bn, fused = _pair(x.shape)
    np.testing.assert_array_equal(
        fused(x, training=True).numpy(), keras_bn(x, training=True).numpy()
    )


def test_a_tower_with_it_saves_loads_and_keeps_keras_s_weights(tmp_path):
    kwargs = {"input_shape": (8, 8, 3), "mean": (0.5,) * 3, "std": (0.25,) * 3}
    fused = resnet_tower(8, **kwargs)
    plain = resnet_tower(8, fused_batch_norm=False, **kwargs)
    assert any(isinstance(layer, FusedBatchNormalization) for layer in fused.layers)
    assert not any(isinstance(layer, FusedBatchNormalization) for layer in plain.layers)
    plain.set_weights(fused.get_weights())  # the same variables, in the same order
    images = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    np.testing.assert_allclose(plain(images).numpy(), fused(images).numpy(), atol=1e-5)
    fused.save(tmp_path / "tower.keras")
    loaded = keras.models.load_model(tmp_path / "tower.keras")
    np.testing.assert_allclose(loaded(images).numpy(), fused(images).numpy(), atol=1e-6)
