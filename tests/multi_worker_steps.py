"""One worker of the multi-worker test: trains two steps of ResNet-8, saves its weights.

TF_CONFIG=... python tests/multi_worker_steps.py DATA_DIR WORKDIR OUT.npz
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_siamese.training import devices  # noqa: E402

strategy = devices.make_strategy("multi_worker")  # first: before TensorFlow starts its runtime

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_siamese.config import TrainConfig  # noqa: E402
from keras_siamese.data import pipeline, splits  # noqa: E402
from keras_siamese.data.sources import load_dataset  # noqa: E402
from keras_siamese.model import siamese  # noqa: E402
from keras_siamese.training import build, multi_worker  # noqa: E402


def main(data_dir: str, workdir: str, out: str) -> None:
    config = TrainConfig(workdir=workdir, depth=8, batch_size=8, epochs=1, steps_per_epoch=2)
    dataset = load_dataset("cifar100", data_dir)
    part = splits.partition(dataset, splits.make_split("90_10", 100), 0.0)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build.build_training_model(config, build.build_tower(config, dataset.info))

    def make_dataset(context, first_epoch, skip):
        return pipeline.triplet_dataset(
            part.train_images,
            part.train_labels,
            context.get_per_replica_batch_size(config.batch_size),
            config.steps_per_epoch,
            names=siamese.INPUT_NAMES,
            seed=context.input_pipeline_id,  # each worker draws its own triplets
            first_epoch=first_epoch,
        ).skip(skip)

    _, losses = multi_worker.fit(
        model, strategy, make_dataset, 1, 2, os.path.join(workdir, "backup"), verbose=0
    )
    np.savez(out, *model.get_weights(), loss=np.array(losses))


if __name__ == "__main__":
    main(*sys.argv[1:])
