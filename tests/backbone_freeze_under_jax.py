"""Trains a MobileNetV3 tower under KERAS_BACKEND=jax with its first epoch frozen.

Run by tests/test_backbones.py in a fresh process (the backend is chosen before Keras
loads); prints `frozen CHANGED_DURING_FREEZE CHANGED_AFTER TOTAL`: how many of the
network's trainable weights changed during the frozen epoch's 2 steps, and after the
next step.
"""

import os
import sys
import tempfile

os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_siamese.config import TrainConfig  # noqa: E402
from keras_siamese.data.datasets import DATASETS  # noqa: E402
from keras_siamese.model import backbones  # noqa: E402
from keras_siamese.training import build  # noqa: E402
from tests.fine_tuning import FINE_TUNING  # noqa: E402


def _changed(network: keras.Model, start: list) -> int:
    """How many of `network`'s trainable weights differ from `start`."""
    now = [np.array(v) for v in network.trainable_variables]
    return sum(not np.array_equal(a, b) for a, b in zip(now, start, strict=True))


def main() -> None:
    assert keras.backend.backend() == "jax"
    with tempfile.TemporaryDirectory() as folder:
        keras.utils.set_random_seed(7)
        network = keras.applications.MobileNetV3Small(
            include_top=False, weights=None, input_shape=(32, 32, 3)
        )
        path = os.path.join(folder, "mobilenetv3small.weights.h5")
        network.save_weights(path)
        config = TrainConfig(**FINE_TUNING, backbone_weights=path, freeze_backbone_epochs=1)
        keras.utils.set_random_seed(0)
        tower = build.build_tower(config, DATASETS["cifar100"])
        model = build.build_training_model(config, tower, num_classes=4, steps_per_epoch=2)
    inner = backbones.network_of(tower)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    y = np.arange(8, dtype=np.int32) % 4
    start = [np.array(v) for v in inner.trainable_variables]
    for _ in range(2):
        model.train_on_batch(x, y)
    during = _changed(inner, start)
    model.train_on_batch(x, y)
    after = _changed(inner, start)
    print("frozen", during, after, len(start), flush=True)


if __name__ == "__main__":
    main()
