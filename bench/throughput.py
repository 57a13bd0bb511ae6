"""Training-step throughput of the Siamese triplet model (figures, not a test).

    python bench/throughput.py [--depth=56] [--batch_size=128] [--steps=10] [--jit_compile]

Prints one JSON line: median seconds per training step on random uint8
triplets, triplets and images (through the tower) per second, and the peak
resident memory of the process.
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

from keras_siamese import resnet, siamese  # noqa: E402
from keras_siamese.datasets import DATASETS  # noqa: E402

_DEPTH = flags.DEFINE_integer("depth", 56, "ResNet depth.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Triplets per step.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps (after two warm-up steps).")
_JIT = flags.DEFINE_boolean("jit_compile", False, "Compile the step with XLA.")


def main(argv: list[str]) -> None:
    del argv
    info = DATASETS["cifar100"]
    tower = resnet.resnet_tower(_DEPTH.value, info.image_shape, info.mean, info.std)
    model = siamese.triplet_model(tower, "cosine", 0.3)
    model.compile(optimizer="adam", loss=siamese.identity_loss, jit_compile=_JIT.value)
    rng = np.random.default_rng(0)
    batch = _BATCH_SIZE.value
    x = {
        name: rng.integers(0, 256, (batch, *info.image_shape), dtype=np.uint8)
        for name in ("anchor", "positive", "negative")
    }
    y = np.zeros(batch, np.float32)
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
                "model": f"resnet{_DEPTH.value}",
                "batch_size": batch,
                "jit_compile": _JIT.value,
                "median_step_seconds": round(step, 4),
                "triplets_per_second": round(batch / step, 1),
                "tower_images_per_second": round(3 * batch / step, 1),
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "keras": keras.__version__,
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
