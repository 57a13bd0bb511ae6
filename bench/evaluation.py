"""Speed of the evaluation: embedding throughput and the cost of the metrics (figures, not a test).

    python bench/evaluation.py [--depth=56] [--images=10000] [--batch_size=500] [--repeats=3]
        [--splits=90_10,10_90]

Prints JSON lines:

* `embed`: images per second through the tower (median of `--repeats` passes
  over `--images` random uint8 CIFAR images), the tower's forward cost in
  GFLOP per image (counted from its convolutions and dense layers), the
  GFLOP/s that rate implies, and, for scale, this machine's float32 matmul
  rate (median of 2048 x 2048 products);
* `metrics`: seconds for the whole protocol after embedding (1000 episodes
  included), on random 64-d embeddings shaped like the splits of `--splits`.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from measure import forward_gflop, matmul_gflops  # noqa: E402  (bench/measure.py)

from keras_siamese.data.datasets import DATASETS  # noqa: E402
from keras_siamese.evaluation import protocol  # noqa: E402
from keras_siamese.model import resnet  # noqa: E402

_DEPTH = flags.DEFINE_integer("depth", 56, "ResNet depth.")
_IMAGES = flags.DEFINE_integer("images", 10_000, "Images embedded per pass.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 500, "Images per forward pass.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed passes (after one warm-up batch).")
_SPLITS = flags.DEFINE_list("splits", ["90_10", "10_90"], "Splits whose metrics are timed.")


def _synthetic(unseen_classes: int, seed: int = 0) -> protocol.Embeddings:
    rng = np.random.default_rng(seed)
    seen_classes = 100 - unseen_classes

    def block(classes: int, per_class: int):
        labels = np.repeat(np.arange(classes), per_class)
        centres = rng.normal(size=(classes, 64))
        return (centres[labels] + rng.normal(size=(len(labels), 64))).astype(np.float32), labels

    return protocol.Embeddings(
        *block(seen_classes, 100), *block(unseen_classes, 100), *block(seen_classes, 50)
    )


def main(argv: list[str]) -> None:
    del argv
    info = DATASETS["cifar100"]
    tower = resnet.resnet_tower(_DEPTH.value, info.image_shape, info.mean, info.std)
    images = np.random.default_rng(0).integers(
        0, 256, (_IMAGES.value, *info.image_shape), dtype=np.uint8
    )
    protocol.embed(tower, images[: _BATCH_SIZE.value], _BATCH_SIZE.value, verbose=0)
    times = []
    for _ in range(_REPEATS.value):
        start = time.perf_counter()
        protocol.embed(tower, images, _BATCH_SIZE.value, verbose=0)
        times.append(time.perf_counter() - start)
    per_second = _IMAGES.value / statistics.median(times)
    gflop = forward_gflop(tower)
    print(
        json.dumps(
            {
                "bench": "embed",
                "depth": _DEPTH.value,
                "images": _IMAGES.value,
                "batch_size": _BATCH_SIZE.value,
                "median_seconds": round(statistics.median(times), 2),
                "images_per_second": round(per_second, 1),
                "gflop_per_image": round(gflop, 4),
                "achieved_gflops": round(per_second * gflop, 1),
                "matmul_gflops": round(matmul_gflops(), 1),
            }
        ),
        flush=True,
    )
    for split in _SPLITS.value:
        unseen = int(split.split("_")[1])
        emb = _synthetic(unseen)
        protocol.evaluate(emb, "cosine")  # warm-up
        start = time.perf_counter()
        protocol.evaluate(emb, "cosine")
        print(
            json.dumps(
                {
                    "bench": "metrics",
                    "split": f"{100 - unseen}_{unseen}",
                    "seen_images": len(emb.seen_labels),
                    "unseen_images": len(emb.unseen_labels),
                    "validation_images": len(emb.val_labels),
                    "seconds": round(time.perf_counter() - start, 2),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    app.run(main)
