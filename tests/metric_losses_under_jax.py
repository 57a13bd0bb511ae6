"""Trains a small model with each pair-based and proxy-based loss under KERAS_BACKEND=jax.

Run by tests/test_metric_losses.py in a fresh process (the backend is chosen before Keras
loads); prints one line `NAME FIRST LAST` per loss.
"""

import os
import sys

os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_siamese import losses  # noqa: E402

PAIR = {
    "multi_similarity": losses.MultiSimilarityLoss,
    "circle": losses.CircleLoss,
    "ntxent": losses.NTXentLoss,
    "supcon": losses.SupConLoss,
    "lifted_structure": losses.LiftedStructureLoss,
}
PROXY = {
    "proxy_anchor": losses.ProxyAnchorLoss,
    "proxy_nca": losses.ProxyNCALoss,
    "arcface": losses.ArcFaceLoss,
}


def main() -> None:
    assert keras.backend.backend() == "jax"
    rng = np.random.default_rng(9)
    labels = np.repeat(np.arange(4), 8).astype(np.int32)
    x = (rng.normal(size=(32, 8)) + labels[:, None] * 0.5).astype(np.float32)
    for name, loss_class in {**PAIR, **PROXY}.items():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8,))
        outputs = keras.layers.Dense(4)(inputs)
        if name in PROXY:
            outputs = losses.Proxies(4)(outputs)
        model = keras.Model(inputs, outputs)
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss_class())
        history = model.fit(x, labels, batch_size=32, epochs=30, shuffle=False, verbose=0)
        print(name, history.history["loss"][0], history.history["loss"][-1], flush=True)
    _memory(x, labels)


def _memory(x, labels) -> None:
    """SupCon with a cross-batch memory: the memory fills inside JAX's training step, and
    the loss without it (an evaluation's) falls."""
    from keras_siamese.model.memory import CrossBatchMemory

    keras.utils.set_random_seed(0)
    inputs, label_input = keras.Input((8,)), keras.Input((), dtype="int32")
    memory = CrossBatchMemory(24)
    model = keras.Model([inputs, label_input], memory(keras.layers.Dense(4)(inputs), label_input))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=memory.wrap(losses.SupConLoss()))
    first = model.evaluate((x, labels), labels, batch_size=32, verbose=0)
    model.fit((x, labels), labels, batch_size=8, epochs=10, shuffle=False, verbose=0)
    last = model.evaluate((x, labels), labels, batch_size=32, verbose=0)
    assert (np.asarray(memory.labels.value) >= 0).all(), "the memory stayed empty"
    assert int(memory.position.value) == (10 * 32) % 24, int(memory.position.value)
    print("supcon_with_memory", first, last, flush=True)


if __name__ == "__main__":
    main()
