"""How fast an export embeds images, as a serving client calls it (figures, not a test).

    python bench/serving.py [--depth=56] [--precisions=float32,mixed_bfloat16]
        [--batches=1,32,1000] [--repeats=20]

For each precision, builds the CIFAR-100 tower with the code training uses (random
weights: the speed does not depend on them), exports it as a run does (`export_tower`)
into a temporary folder, loads the SavedModel as TensorFlow Serving would, and times its
`serving_default` signature on random uint8 images at each batch size: the median of
`--repeats` calls after two warm-up calls. Prints one JSON line per precision and batch
size with `images_per_second` and `median_call_ms`; each line also names the CPU's
bfloat16 instructions, since a bfloat16 export is only fast where they exist.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from measure import median_seconds  # noqa: E402  (bench/measure.py)

from keras_siamese.choices import PRECISIONS  # noqa: E402
from keras_siamese.config import TrainConfig  # noqa: E402
from keras_siamese.data.datasets import DATASETS  # noqa: E402
from keras_siamese.serving import export  # noqa: E402
from keras_siamese.serving.metadata import ExportMetadata  # noqa: E402
from keras_siamese.training import build, devices  # noqa: E402

_DEPTH = flags.DEFINE_integer("depth", 56, "ResNet depth of the exported tower.")
_PRECISIONS = flags.DEFINE_list(
    "precisions", ["float32", "mixed_bfloat16"], "Keras dtype policies the exports compute in."
)
_BATCHES = flags.DEFINE_list("batches", ["1", "32", "1000"], "Images per serving call.")
_REPEATS = flags.DEFINE_integer("repeats", 20, "Timed calls per batch size.")


def _export(precision: str, folder: str) -> None:
    """Exports a CIFAR-100 tower computing in `precision` to `folder`."""
    config = TrainConfig(workdir="unused", depth=_DEPTH.value)
    info = DATASETS["cifar100"]
    keras.utils.set_random_seed(0)
    with build.precision_policy(precision):
        tower = build.build_tower(config, info)
    metadata = ExportMetadata(
        dataset="cifar100",
        split="90_10",
        split_order="sequential",
        split_seed=0,
        val_fraction=0.02,
        distance="cosine",
        input_shape=list(info.image_shape),
        export_precision=precision,
    )
    export.export_tower(tower, folder, metadata)


def main(argv: list[str]) -> None:
    del argv
    for precision in _PRECISIONS.value:
        if precision not in PRECISIONS:
            raise app.UsageError(f"--precisions: {precision} is not one of {PRECISIONS}")
    rng = np.random.default_rng(0)
    bfloat16_units = sorted({"avx512_bf16", "amx_bf16"} & devices.cpu_flags())
    with tempfile.TemporaryDirectory() as root:
        for precision in _PRECISIONS.value:
            folder = os.path.join(root, precision)
            _export(precision, folder)
            signature = export.load_saved_model(folder).signatures["serving_default"]
            for batch in (int(b) for b in _BATCHES.value):
                images = rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)
                for _ in range(2):  # warm-up: the first calls trace and allocate
                    signature(images=images)
                seconds = median_seconds(
                    lambda served=signature, x=images: served(images=x), _REPEATS.value
                )
                line = {
                    "export_precision": precision,
                    "depth": _DEPTH.value,
                    "batch": batch,
                    "median_call_ms": round(1000 * seconds, 2),
                    "images_per_second": round(batch / seconds, 1),
                    "cpu_bfloat16_units": bfloat16_units,
                    "keras": keras.__version__,
                }
                print(json.dumps(line), flush=True)


if __name__ == "__main__":
    app.run(main)
