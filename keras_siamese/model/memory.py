"""A cross-batch memory (XBM, Wang et al. 2020): the embeddings and labels of the last
images trained on, which the pair-based losses pair each new batch with too, so that a
small batch sees as many pairs as a large one.

The memory is a layer of the training model, so that its contents are model
variables: saved with the model's weights (and a run's backup) and updated
inside the training step on every Keras backend. It returns the batch and the
memory packed in one tensor, which `CrossBatchMemoryLoss` unpacks for a
pair-based loss:

    memory = CrossBatchMemory(size=1024)
    packed = memory(embeddings, labels)            # labels: a second model input
    model = keras.Model([images, labels], packed)
    model.compile(optimizer="adam", loss=memory.wrap(MultiSimilarityLoss()))
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_siamese.model import pair_losses

__all__ = ["CrossBatchMemory", "CrossBatchMemoryLoss"]

# The label of a memory slot that holds no image yet.
EMPTY = -1


@keras.saving.register_keras_serializable(package="keras_siamese")
class CrossBatchMemory(keras.layers.Layer):
    """Keeps the last `size` embeddings and labels it was called with in training.

    Called on `(embeddings [N, D], labels [N])`, it returns `[N + size, D + 1]`: the
    batch's rows, then the memory's rows as they were before this batch (constants),
    each with its label as the last column; a slot not filled yet, every slot during
    the first `warmup_steps` training calls, and every slot outside training (so that
    a validation loss is the loss without the memory) has the label -1, which pairs
    with nothing. A training call then stores the batch, overwriting the oldest
    images; other calls store nothing.

    Args:
        size: the images the memory holds, at least one batch.
        warmup_steps: training calls before the memory's images pair with the batch
            (the embedding moves fast at first, so early ones are stale).
    """

    def __init__(self, size: int, warmup_steps: int = 0, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        if int(size) != size or size < 1:
            raise ValueError(f"size must be a positive integer, not {size}")
        if int(warmup_steps) != warmup_steps or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer of 0 or more, not {warmup_steps}")
        self.size = int(size)
        self.warmup_steps = int(warmup_steps)

    def build(self, embeddings_shape, labels_shape=None) -> None:
        dim = embeddings_shape[-1]
        self.embeddings = self.add_weight(
            shape=(self.size, dim), initializer="zeros", trainable=False, name="embeddings"
        )
        self.labels = self.add_weight(
            shape=(self.size,),
            initializer=keras.initializers.Constant(EMPTY),
            dtype="int32",
            trainable=False,
            name="labels",
        )
        self.position = self.add_weight(
            shape=(), initializer="zeros", dtype="int32", trainable=False, name="position"
        )
        self.steps = self.add_weight(
            shape=(), initializer="zeros", dtype="int32", trainable=False, name="steps"
        )

    def call(self, embeddings, labels, training: bool | None = None):
        embeddings = ops.cast(embeddings, "float32")
        labels = ops.cast(ops.reshape(labels, [-1]), "int32")
        # Outside training the memory is left out, so a validation loss is the loss
        # without it, comparable from epoch to epoch.
        ready = ops.logical_and(self.steps.value >= self.warmup_steps, bool(training))
        stored_labels = ops.where(ready, self.labels.value, EMPTY)
        packed = ops.concatenate(
            [
                ops.concatenate([embeddings, ops.cast(labels, "float32")[:, None]], axis=1),
                ops.concatenate(
                    [
                        ops.stop_gradient(self.embeddings.value),
                        ops.cast(stored_labels, "float32")[:, None],
                    ],
                    axis=1,
                ),
            ],
            axis=0,
        )
        if training:
            self._store(ops.stop_gradient(embeddings), labels)
        return packed

    def _store(self, embeddings, labels) -> None:
        """Writes the batch over the oldest slots (a ring buffer)."""
        count = ops.shape(labels)[0]
        position = self.position.value
        slots = (position + ops.arange(count, dtype="int32")) % self.size
        self.embeddings.assign(
            ops.scatter_update(self.embeddings.value, slots[:, None], embeddings)
        )
        self.labels.assign(ops.scatter_update(self.labels.value, slots[:, None], labels))
        self.position.assign((position + count) % self.size)
        self.steps.assign(self.steps.value + 1)

    def compute_output_shape(self, embeddings_shape, labels_shape=None):
        rows = None if embeddings_shape[0] is None else embeddings_shape[0] + self.size
        return (rows, embeddings_shape[-1] + 1)

    def wrap(self, loss: pair_losses.FunctionLoss) -> CrossBatchMemoryLoss:
        """`loss` (a pair-based loss object) on this memory's packed output."""
        return CrossBatchMemoryLoss(loss, self.size)

    def get_config(self) -> dict:
        return {**super().get_config(), "size": self.size, "warmup_steps": self.warmup_steps}


@keras.saving.register_keras_serializable(package="keras_siamese")
class CrossBatchMemoryLoss(keras.losses.Loss):
    """A pair-based loss object on a `CrossBatchMemory` layer's packed output:
    `y_true` the batch's integer labels, `y_pred` the layer's output."""

    def __init__(self, loss: pair_losses.FunctionLoss | dict, memory_size: int, name=None):
        if isinstance(loss, dict):
            loss = keras.saving.deserialize_keras_object(loss)
        if not isinstance(loss, pair_losses.FunctionLoss) or not getattr(
            type(loss), "takes_memory", False
        ):
            raise ValueError(
                f"loss must be a pair-based loss object, not {type(loss).__name__}: "
                "the proxy-based losses have their proxies instead of a memory"
            )
        super().__init__(name=name or f"{loss.name}_with_memory", reduction="sum_over_batch_size")
        self.loss = loss
        self.memory_size = int(memory_size)

    def call(self, y_true, y_pred):
        batch, stored = y_pred[: -self.memory_size], y_pred[-self.memory_size :]
        memory = (stored[:, :-1], ops.cast(stored[:, -1], "int32"))
        return type(self.loss)._function(
            ops.cast(y_true, "int32"), batch[:, :-1], memory=memory, **self.loss.options
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "loss": keras.saving.serialize_keras_object(self.loss),
            "memory_size": self.memory_size,
        }
