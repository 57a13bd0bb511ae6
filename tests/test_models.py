"""The training model: the one-call tower variant, schedules, optimizers."""

from __future__ import annotations

import numpy as np
import pytest


def test_the_one_call_tower_computes_the_same_loss_at_inference_and_trains():
    import keras

    from keras_siamese.config import TrainConfig
    from keras_siamese.data.datasets import DATASETS
    from keras_siamese.model import siamese
    from keras_siamese.training import build

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


def _rates(config, steps_per_epoch):
    from keras_siamese.training import build

    schedule = build.learning_rate(config, steps_per_epoch)
    total = config.epochs * steps_per_epoch
    return [float(schedule(step)) for step in range(total + 1)]


def test_the_learning_rate_schedules_by_hand():
    from keras_siamese.config import TrainConfig
    from keras_siamese.training import build

    constant = TrainConfig(workdir="w")
    assert build.learning_rate(constant, None) == 1e-3
    # Cosine over 2 epochs of 5 steps, the first epoch a linear warm-up from 0.
    cosine = TrainConfig(workdir="w", epochs=2, lr_schedule="cosine", warmup_epochs=1)
    rates = _rates(cosine, 5)
    np.testing.assert_allclose(rates[:6], [0, 2e-4, 4e-4, 6e-4, 8e-4, 1e-3], atol=1e-9)
    halfway = 1e-3 * 0.5 * (1 + np.cos(np.pi * 2 / 5))  # 2 of the 5 decay steps
    assert rates[7] == pytest.approx(halfway, abs=1e-9)
    assert rates[10] < 1e-9
    # One cycle over 10 steps: 3 steps up from a 25th, then down to 1e-4 of the peak.
    cycle = _rates(TrainConfig(workdir="w", epochs=1, lr_schedule="onecycle"), 10)
    assert cycle[0] == pytest.approx(4e-5) and cycle[3] == pytest.approx(1e-3)
    assert cycle[10] == pytest.approx(1e-7, abs=1e-9) and max(cycle) == cycle[3]
    with pytest.raises(ValueError, match="steps per epoch"):
        build.learning_rate(cosine, None)


def test_each_optimizer_is_built_with_its_settings():
    import keras

    from keras_siamese.config import TrainConfig
    from keras_siamese.training import build

    sgd = build.optimizer(TrainConfig(workdir="w", optimizer="sgd", momentum=0.8))
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.nesterov and sgd.momentum == 0.8
    adamw = build.optimizer(TrainConfig(workdir="w", optimizer="adamw", weight_decay=5e-4))
    assert isinstance(adamw, keras.optimizers.AdamW) and adamw.weight_decay == 5e-4
    adam = build.optimizer(TrainConfig(workdir="w"))
    assert type(adam) is keras.optimizers.Adam and adam.weight_decay is None


def test_the_optimizer_is_built_with_the_model():
    from keras_siamese.config import TrainConfig
    from keras_siamese.data.datasets import DATASETS
    from keras_siamese.training import build

    # Built in the first training step instead, its variables would be created inside a
    # tf.function, which TensorFlow then traces twice.
    config = TrainConfig(workdir="unused", depth=8)
    model = build.build_training_model(config, build.build_tower(config, DATASETS["cifar100"]))
    assert model.optimizer.built
    slots = [v for v in model.optimizer.variables if v.name.endswith(("_momentum", "_velocity"))]
    assert len(slots) == 2 * len(model.trainable_variables) > 0
