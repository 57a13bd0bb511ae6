"""Mirrored data parallelism over two logical CPU devices, in a fresh process."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    import keras
    from keras_siamese.training import devices, trainer
    from keras_siamese.model import siamese
    from keras_siamese.training import build
    from keras_siamese.data import pipeline
    from keras_siamese.config import TrainConfig
    from keras_siamese.data.sources import load_dataset

    dataset = load_dataset("cifar100", sys.argv[1])
    keep = np.concatenate([np.flatnonzero(dataset.train_labels == c)[:20] for c in range(6)])
    images, labels = dataset.train_images[keep], dataset.train_labels[keep]
    config = TrainConfig(workdir="unused", depth=8, batch_size=16, learning_rate=3e-3,
                         strategy="mirrored")
    strategy = devices.make_strategy(config.strategy)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        tower = build.build_tower(config, dataset.info)
        model = build.build_training_model(config, tower)
    ds = pipeline.triplet_dataset(
        images, labels, 16, steps_per_epoch=1, names=siamese.INPUT_NAMES, seed=0
    )
    x, y = next(iter(ds))
    per_replica = next(iter(strategy.experimental_distribute_dataset(ds.take(1))))[0]
    fixed = tf.data.Dataset.from_tensors((x, y)).repeat()
    before = model.evaluate(x, y, verbose=0)
    history = model.fit(fixed, steps_per_epoch=4, epochs=3, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "per_replica_batches": [int(v.shape[0]) for v in per_replica["anchor"].values],
        "before": float(before), "after": float(after),
        "epoch_losses": [float(v) for v in history.history["loss"]],
    }))
    """
)


@pytest.mark.slow  # a fresh process with two logical devices: make test-slow
def test_mirrored_strategy_splits_the_global_batch_and_learns(data_root):
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, os.path.join(data_root, "cifar100")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["per_replica_batches"] == [8, 8]  # the global batch of 16, halved
    assert report["after"] < report["before"]
    assert all(v == v for v in report["epoch_losses"])  # no NaN
