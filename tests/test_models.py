"""The one-call tower variant of the triplet model."""

from __future__ import annotations

import numpy as np


def test_the_one_call_tower_computes_the_same_loss_at_inference_and_trains():
    import keras

    from keras_siamese.config import TrainConfig
    from keras_siamese.data.datasets import DATASETS
    from keras_siamese.model import build, siamese

    rng = np.random.default_rng(0)
    x = {n: rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8) for n in siamese.INPUT_NAMES}
    config = TrainConfig(workdir="unused", depth=8)
    tower = build.build_tower(config, DATASETS["cifar100"])
    three = siamese.triplet_model(tower, "cosine", 0.3)
    one = siamese.triplet_model(tower, "cosine", 0.3, concat_tower=True)
    np.testing.assert_allclose(
        np.asarray(three(x, training=False)), np.asarray(one(x, training=False)), atol=1e-6
    )
    # In training, batch normalisation sees 3N images at once: the losses differ slightly.
    assert not np.allclose(np.asarray(three(x, training=True)), np.asarray(one(x, training=True)))

    keras.utils.set_random_seed(0)
    concat = TrainConfig(workdir="unused", depth=8, concat_tower=True)
    model = build.build_training_model(concat, build.build_tower(concat, DATASETS["cifar100"]))
    assert [layer.name for layer in model.layers if "stack" in layer.name] == ["stack", "unstack"]
    losses = [float(model.train_on_batch(x, np.zeros(6))) for _ in range(3)]
    assert all(np.isfinite(losses))
