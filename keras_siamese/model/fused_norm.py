"""Batch normalisation in one kernel on TensorFlow.

Keras 3's `BatchNormalization` computes its moments, the normalisation and
their gradients as a dozen element-wise ops, each one pass over the
activations; a profile of the ResNet56 step on a CPU found them taking as much
time as the convolutions (bench/profile_step.py). TensorFlow's fused kernel
(`FusedBatchNormV3`, oneDNN's on CPUs) does the same work in one pass forward
and one backward. This layer is Keras's, with the same variables, settings
and moving-statistics update, and uses the fused kernel where it applies:
the TensorFlow backend, 4-d channels-last inputs, no mask, no renormalisation,
no cross-replica statistics. Elsewhere (JAX, PyTorch, other shapes) it is
Keras's layer unchanged.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="keras_siamese")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` that runs TensorFlow's fused kernel where it can."""

    def _fusable(self, inputs, mask) -> bool:
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and self.scale
            and self.center
            and not self.renorm
            and not self.synchronized
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        # The kernel takes 16-bit inputs as they are and keeps its statistics in float32,
        # as Keras's layer does after casting the inputs up (two casts a layer saved).
        x = (
            inputs
            if inputs.dtype in (tf.float32, tf.bfloat16, tf.float16)
            else tf.cast(inputs, tf.float32)
        )
        gamma = tf.cast(self.gamma, tf.float32)
        beta = tf.cast(self.beta, tf.float32)
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True
            )
            # The kernel returns the unbiased batch variance; Keras keeps the biased one.
            count = tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float32)
            variance = variance * (count - 1.0) / count
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
            self.moving_variance.assign(
                self.moving_variance * momentum + variance * (1.0 - momentum)
            )
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x,
                gamma,
                beta,
                mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32),
                epsilon=self.epsilon,
                data_format="NHWC",
                is_training=False,
            )
        return tf.cast(y, inputs.dtype)
