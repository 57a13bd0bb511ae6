"""The input pipeline's share of a training step (figures, not a test).

    python bench/pipeline_share.py [--objective=normsoftmax] [--precision=mixed_bfloat16]
        [--batch_size=128] [--steps=30] [--rounds=2]

Builds an objective's training model and its tf.data training pipeline with the
code training uses, on 90 classes of 500 random CIFAR-sized images each, and
times, alternated in one process for `--rounds` rounds:

* `pipeline_images_per_second`: the pipeline alone, batches drawn and dropped;
* `fed_images_per_second`: `model.fit` on that pipeline, as training runs;
* `cached_images_per_second`: `model.fit` on one batch of it, cached and
  repeated, so that no image is drawn or augmented during the steps.

The pipeline's share of a step is `1 - fed / cached`: what drawing and
augmenting the images takes from the cores the step runs on. Prints one JSON
line per round.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from keras_siamese import objectives  # noqa: E402
from keras_siamese.choices import PRECISIONS  # noqa: E402
from keras_siamese.config import TrainConfig  # noqa: E402
from keras_siamese.data import splits  # noqa: E402
from keras_siamese.data.datasets import DATASETS  # noqa: E402
from keras_siamese.training import build  # noqa: E402

_OBJECTIVE = flags.DEFINE_string("objective", "normsoftmax", "The objective whose step is timed.")
_PRECISION = flags.DEFINE_enum("precision", "mixed_bfloat16", list(PRECISIONS), "Dtype policy.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Images (or triplets) per step.")
_STEPS = flags.DEFINE_integer("steps", 30, "Steps timed per measurement (after 3 warm-up steps).")
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Alternated rounds of the three measurements.")
_CROP = flags.DEFINE_boolean("crop", False, "Random-crop augmentation (flip is always on).")

SEEN, IMAGES_PER_CLASS = 90, 500


def _partition() -> splits.Partition:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(SEEN), IMAGES_PER_CLASS)
    images = rng.integers(0, 256, (len(labels), *DATASETS["cifar100"].image_shape), np.uint8)
    empty_images = images[:0]
    empty_labels = labels[:0]
    return splits.Partition(
        split=splits.ClassSplit(seen=tuple(range(SEEN)), unseen=tuple(range(SEEN, 100))),
        train_images=images,
        train_labels=labels,
        val_images=empty_images,
        val_labels=empty_labels,
        test_seen_images=empty_images,
        test_seen_labels=empty_labels,
        test_unseen_images=empty_images,
        test_unseen_labels=empty_labels,
    )


def _fit_rate(model: keras.Model, dataset: tf.data.Dataset, steps: int, images: int) -> float:
    model.fit(dataset, steps_per_epoch=3, shuffle=False, verbose=0)  # warm-up: traces the step
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, shuffle=False, verbose=0)
    return steps * images / (time.perf_counter() - start)


def main(argv: list[str]) -> None:
    del argv
    config = TrainConfig(
        workdir="unused",
        objective=_OBJECTIVE.value,
        batch_size=_BATCH_SIZE.value,
        precision=_PRECISION.value,
        crop=_CROP.value,
    )
    family = objectives.objective_of(config)
    images = family.images_per_step(config)
    steps = _STEPS.value
    keras.utils.set_random_seed(0)
    with build.precision_policy(config.precision):
        tower = build.build_tower(config, DATASETS["cifar100"])
        model = build.build_training_model(config, tower, jit_compile=False, num_classes=SEEN)
    train, _ = family.tf_datasets(config, _partition(), 10_000, 0)
    cached = train.take(1).cache().repeat()
    for round_ in range(_ROUNDS.value):
        iterator = iter(train)
        next(iterator)
        start = time.perf_counter()
        for _ in range(steps):
            next(iterator)
        pipeline = steps * images / (time.perf_counter() - start)
        fed = _fit_rate(model, train, steps, images)
        alone = _fit_rate(model, cached, steps, images)
        line = {
            "round": round_ + 1,
            "objective": config.objective,
            "precision": config.precision,
            "images_per_step": images,
            "pipeline_images_per_second": round(pipeline, 1),
            "fed_images_per_second": round(fed, 1),
            "cached_images_per_second": round(alone, 1),
            "pipeline_share": round(1 - fed / alone, 3),
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    app.run(main)
