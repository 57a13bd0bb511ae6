"""Training-step throughput of each objective (figures, not a test).

    python bench/throughput.py [--objectives=triplet,batch_hard] [--depth=56] [--steps=10]
        [--batch_size=128] [--classes_per_batch=32] [--images_per_class=4] [--jit_compile]
        [--precision=float32|mixed_float16|mixed_bfloat16]

Builds each objective's training model with the code training uses, and prints
one JSON line per objective: the median seconds per training step on random
uint8 CIFAR-sized images, the images per second through the tower (the fair
comparison: triplets push three images per sample, pairs two, P x K batches
one), and the peak resident memory of the process so far.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from keras_siamese import devices, pipeline, training  # noqa: E402
from keras_siamese.config import OBJECTIVES, PRECISIONS, TrainConfig  # noqa: E402
from keras_siamese.datasets import DATASETS  # noqa: E402

_OBJECTIVES = flags.DEFINE_list("objectives", ["triplet", "batch_hard"], "Objectives to time.")
_DEPTH = flags.DEFINE_integer("depth", 56, "ResNet depth.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Triplets or pairs per step.")
_P = flags.DEFINE_integer("classes_per_batch", 32, "P of the batch_* objectives.")
_K = flags.DEFINE_integer("images_per_class", 4, "K of the batch_* objectives.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps (after two warm-up steps).")
_JIT = flags.DEFINE_boolean("jit_compile", False, "Compile the step with XLA.")
_PRECISION = flags.DEFINE_enum("precision", "float32", list(PRECISIONS), "Keras dtype policy.")


def _batch(config: TrainConfig, rng: np.random.Generator):
    shape = DATASETS["cifar100"].image_shape
    if config.uses_pk_batches:
        labels = np.repeat(np.arange(config.classes_per_batch), config.images_per_class)
        images = rng.integers(0, 256, (len(labels), *shape), dtype=np.uint8)
        return images, labels.astype(np.int32)
    names = pipeline.PAIR_INPUT_NAMES if config.objective == "contrastive" else pipeline.INPUT_NAMES
    x = {n: rng.integers(0, 256, (config.batch_size, *shape), dtype=np.uint8) for n in names}
    y = np.tile(np.array([1.0, 0.0], np.float32), config.batch_size // 2 + 1)[: config.batch_size]
    return x, y


def main(argv: list[str]) -> None:
    del argv
    for objective in _OBJECTIVES.value:
        if objective not in OBJECTIVES:
            raise app.UsageError(f"--objectives: {objective} is not one of {', '.join(OBJECTIVES)}")
        config = TrainConfig(
            workdir="unused",
            depth=_DEPTH.value,
            objective=objective,
            batch_size=_BATCH_SIZE.value,
            classes_per_batch=_P.value,
            images_per_class=_K.value,
            precision=_PRECISION.value,
            jit_compile="true" if _JIT.value else "false",
        )
        keras.utils.set_random_seed(0)
        with devices.precision_policy(config.precision):
            tower = training.build_tower(config, _CifarShape())
            model = training.build_training_model(config, tower)
        x, y = _batch(config, np.random.default_rng(0))
        for _ in range(2):
            model.train_on_batch(x, y)
        times = []
        for _ in range(_STEPS.value):
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times.append(time.perf_counter() - start)
        step = statistics.median(times)
        print(
            json.dumps(
                {
                    "objective": objective,
                    "model": f"resnet{_DEPTH.value}",
                    "images_per_step": config.images_per_batch,
                    "jit_compile": _JIT.value,
                    "precision": _PRECISION.value,
                    "median_step_seconds": round(step, 4),
                    "tower_images_per_second": round(config.images_per_batch / step, 1),
                    "peak_rss_mib": round(
                        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
                    ),
                    "keras": keras.__version__,
                }
            ),
            flush=True,
        )


class _CifarShape:
    """What `training.build_tower` reads of a dataset: its static facts."""

    info = DATASETS["cifar100"]


if __name__ == "__main__":
    app.run(main)
