"""The cross-batch memory: what it stores across batches, the pair-based losses against
their definitions with it, in a user's model, in the backup, and as an objective."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese import losses
from keras_siamese.model.memory import CrossBatchMemory, CrossBatchMemoryLoss
from tests.test_loss_definitions import BATCHES
from tests.test_metric_losses import ATOL, PAIR_LOSSES, RTOL, _value_and_gradients


def _call(memory, embeddings, labels, training=True):
    """The memory's rows of the layer's output (embeddings, labels) for one batch."""
    packed = memory(
        tf.constant(embeddings, tf.float32), tf.constant(labels, tf.int32), training=training
    ).numpy()
    stored = packed[len(labels) :]
    np.testing.assert_array_equal(packed[: len(labels), :-1], embeddings)
    np.testing.assert_array_equal(packed[: len(labels), -1], labels)
    return stored[:, :-1], stored[:, -1].astype(int)


def test_three_batches_fill_the_ring_overwrite_the_oldest_and_wait_out_the_warm_up():
    memory = CrossBatchMemory(size=3, warmup_steps=1)
    # First batch: nothing stored yet, and the warm-up hides every slot anyway.
    _, labels = _call(memory, [[1, 0], [0, 1]], [0, 1])
    np.testing.assert_array_equal(labels, [-1, -1, -1])
    # Second batch: the first one's images in slots 0 and 1, slot 2 still empty.
    embeddings, labels = _call(memory, [[0, 2], [3, 0]], [1, 2])
    np.testing.assert_array_equal(embeddings, [[1, 0], [0, 1], [0, 0]])
    np.testing.assert_array_equal(labels, [0, 1, -1])
    # Outside training the memory pairs with nothing (a validation loss is the plain one).
    _, labels = _call(memory, [[5, 5], [6, 6]], [7, 7], training=False)
    np.testing.assert_array_equal(labels, [-1, -1, -1])
    # The second batch went into slot 2 and, wrapping round, over the oldest (slot 0); the
    # inference call stored nothing.
    embeddings, labels = _call(memory, [[1, 1], [-1, 0]], [2, 0])
    np.testing.assert_array_equal(embeddings, [[3, 0], [0, 1], [0, 2]])
    np.testing.assert_array_equal(labels, [2, 1, 1])
    # The fourth batch went into slots 1 and 2; the next one starts at slot 0 again.
    np.testing.assert_array_equal(memory.embeddings.numpy(), [[3, 0], [1, 1], [-1, 0]])
    np.testing.assert_array_equal(memory.labels.numpy(), [2, 2, 0])
    assert int(memory.position.numpy()) == 0 and int(memory.steps.numpy()) == 3


def test_the_loss_pairs_the_batch_with_the_memory_by_hand():
    # The third batch above: anchor (1, 1) of class 2 has one positive in the memory,
    # (3, 0), and three negatives: (-1, 0) in the batch, (0, 1) and (0, 2) in the memory;
    # its cosines are c = 1/sqrt(2) to all but (-1, 0), -c to it. Anchor (-1, 0), class 0,
    # has no positive, so SupCon (temperature 1) is its first anchor's loss alone:
    # log(3 e^c + e^-c) - c = log(3 + e^(-2c)).
    memory = (tf.constant([[3, 0], [0, 1], [0, 2]], tf.float32), tf.constant([2, 1, 1]))
    value = losses.supcon_loss(
        tf.constant([2, 0]),
        tf.constant([[1, 1], [-1, 0]], tf.float32),
        temperature=1.0,
        memory=memory,
    )
    assert float(value) == pytest.approx(math.log(3 + math.exp(-math.sqrt(2))), rel=1e-6)


def _memory(rng, width: int, size: int = 7):
    """A memory of `size` random embeddings of classes 0 to 3, its last two slots empty."""
    labels = rng.integers(0, 4, size)
    labels[-2:] = -1
    return rng.normal(size=(size, width)).astype(np.float32), labels.astype(np.int32)


@pytest.mark.parametrize("batch", sorted(BATCHES))
@pytest.mark.parametrize("name", sorted(PAIR_LOSSES))
def test_each_pair_loss_with_a_memory_equals_its_definition(name, batch):
    function, _, definition, options = PAIR_LOSSES[name]
    rng = np.random.default_rng(5)
    labels, embeddings = BATCHES[batch](rng)
    stored, stored_labels = _memory(rng, embeddings.shape[1])
    value, (gradient,) = _value_and_gradients(
        function, labels, embeddings, memory=(stored, stored_labels), **options
    )
    expected = definition(
        labels,
        embeddings.astype(np.float32).astype(np.float64),
        memory=(stored.astype(np.float64), stored_labels),
        **options,
    )
    assert value == pytest.approx(expected, rel=RTOL, abs=ATOL)
    assert np.isfinite(gradient).all()


@pytest.mark.parametrize("name", sorted(PAIR_LOSSES))
def test_an_empty_memory_changes_neither_value_nor_gradient(name):
    function, _, _, options = PAIR_LOSSES[name]
    labels, embeddings = BATCHES["pk"](np.random.default_rng(2))
    empty = (np.ones((5, embeddings.shape[1]), np.float32), -np.ones(5, np.int32))
    plain = _value_and_gradients(function, labels, embeddings, **options)
    with_memory = _value_and_gradients(function, labels, embeddings, memory=empty, **options)
    assert with_memory[0] == pytest.approx(plain[0], rel=1e-6)
    # Summed in another order: float32 rounding apart (a few 1e-7).
    np.testing.assert_allclose(with_memory[1][0], plain[1][0], rtol=1e-5, atol=1e-6)


def _memory_model(size: int = 16) -> tuple[keras.Model, CrossBatchMemory]:
    inputs, labels = keras.Input((8,)), keras.Input((), dtype="int32")
    embeddings = keras.layers.Dense(4)(keras.layers.Dense(16, activation="relu")(inputs))
    memory = CrossBatchMemory(size, name="memory")
    return keras.Model([inputs, labels], memory(embeddings, labels)), memory


def _blobs(rng, n: int = 64):
    labels = rng.integers(0, 4, n).astype(np.int32)
    centres = rng.normal(size=(4, 8)).astype(np.float32)
    return centres[labels] + 0.5 * rng.normal(size=(n, 8)).astype(np.float32), labels


def test_a_memory_trains_a_model_a_user_writes_and_its_loss_equals_the_function():
    keras.utils.set_random_seed(0)
    x, labels = _blobs(np.random.default_rng(0))
    model, memory = _memory_model()
    loss = memory.wrap(losses.MultiSimilarityLoss())
    # The wrapped loss is the function on the unpacked batch and memory.
    packed = model([x[:8], labels[:8]], training=True)
    expected = losses.multi_similarity_loss(
        labels[:8], packed[:8, :-1], memory=(packed[8:, :-1], tf.cast(packed[8:, -1], tf.int32))
    )
    assert float(loss(labels[:8], packed)) == pytest.approx(float(expected), rel=1e-6)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
    history = model.fit((x, labels), labels, batch_size=8, epochs=5, shuffle=False, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert (memory.labels.numpy() >= 0).all()


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


def test_the_memory_resumes_exactly_from_the_backup(tmp_path):
    x, labels = _blobs(np.random.default_rng(1), n=40)

    def fit(backup: str, interrupt: bool = False):
        keras.utils.set_random_seed(1)
        model, memory = _memory_model(size=12)
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss=memory.wrap(losses.SupConLoss()))
        callbacks = [keras.callbacks.BackupAndRestore(backup)] + [_Interrupt()] * interrupt
        model.fit(
            (x, labels),
            labels,
            batch_size=8,
            epochs=4,
            shuffle=False,
            verbose=0,
            callbacks=callbacks,
        )
        return model.get_weights(), memory

    straight, _ = fit(str(tmp_path / "straight"))
    with pytest.raises(KeyboardInterrupt):
        fit(str(tmp_path / "resumed"), interrupt=True)
    resumed, memory = fit(str(tmp_path / "resumed"))
    # 5 batches of 8 a epoch into 12 slots: the position moves, so a memory that restarted
    # empty or at slot 0 would differ.
    assert int(memory.position.numpy()) == (4 * 40) % 12 and int(memory.steps.numpy()) == 20
    for a, b in zip(straight, resumed, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_layer_and_loss_round_trip_through_their_configs():
    memory = CrossBatchMemory(32, warmup_steps=5)
    assert CrossBatchMemory.from_config(memory.get_config()).get_config() == memory.get_config()
    loss = memory.wrap(losses.CircleLoss(m=0.25))
    again = CrossBatchMemoryLoss.from_config(loss.get_config())
    assert again.memory_size == 32 and again.loss.options == {"m": 0.25, "gamma": 80.0}


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: CrossBatchMemory(0), "size must be a positive integer"),
        (lambda: CrossBatchMemory(8, warmup_steps=-1), "warmup_steps must be"),
        (lambda: CrossBatchMemoryLoss(losses.ArcFaceLoss(), 8), "must be a pair-based loss"),
        (
            lambda: losses.ntxent_loss(
                [0, 1], np.ones((2, 3), np.float32), memory=(np.ones((4, 3)), [0, 1])
            ),
            "memory: 4 embeddings but 2 labels",
        ),
    ],
)
def test_bad_memory_arguments_are_one_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
