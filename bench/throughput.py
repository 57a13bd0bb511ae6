"""Training throughput against this machine's own limit (figures, not a test).

    python bench/throughput.py [--objectives=triplet] [--depth=56] [--batch_size=128]
        [--precision=float32|mixed_float16|mixed_bfloat16] [--jit_compile] [--concat_tower]
        [--classifier_weight=W] [--rotation_weight=W] [--ema_decay=D]
        [--steps=5] [--synthetic] [--inter_op_threads=N] [--intra_op_threads=N]
        [--nofused_batch_norm]
        [--backbone=mobilenetv3small --image_size=128]

Builds each objective's training model with the code training uses and times
`train_on_batch` on random uint8 CIFAR-sized arrays (no tf.data). Prints one
JSON line per objective:

* `median_step_seconds`, `samples_per_second` (triplets, pairs, or images of
  a P x K batch) and `tower_images_per_second` (the fair comparison: a
  triplet is three images through the tower, a pair two);
* `train_gflop_per_image`, counted from the tower's layers (forward plus
  backward), the GFLOP/s the step achieves, this machine's float32 matmul rate
  measured in the same run, and their ratio;
* `inference_images_per_second` at batch `--inference_batch` (1000);
* `pipeline_triplets_per_second`: the training tf.data pipeline alone (random
  triplets with flip augmentation from 50,000 images), which must be far above
  what training consumes; skipped with `--synthetic`, which needs only Keras;
* `peak_rss_mib`: the process's peak resident memory so far.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from measure import matmul_gflops, median_seconds, training_gflop  # noqa: E402  (bench/measure.py)

from keras_siamese import objectives  # noqa: E402
from keras_siamese.choices import PRECISIONS  # noqa: E402
from keras_siamese.config import TrainConfig  # noqa: E402
from keras_siamese.data.datasets import DATASETS  # noqa: E402
from keras_siamese.model import classifier, siamese  # noqa: E402
from keras_siamese.objectives import OBJECTIVES  # noqa: E402
from keras_siamese.training import build  # noqa: E402
from keras_siamese.training.teacher import Teacher  # noqa: E402

_OBJECTIVES = flags.DEFINE_list("objectives", ["triplet"], "Objectives to time.")
_DEPTH = flags.DEFINE_integer("depth", 56, "ResNet depth.")
_BACKBONE = flags.DEFINE_string(
    "backbone", "resnet56", "The tower: resnet56 (with --depth) or a Keras Applications network."
)
_IMAGE_SIZE = flags.DEFINE_integer(
    "image_size", 32, "The side a Keras Applications tower computes at (CIFAR images resized)."
)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Triplets or pairs per step.")
_P = flags.DEFINE_integer("classes_per_batch", 32, "P of the batch_* objectives.")
_K = flags.DEFINE_integer("images_per_class", 4, "K of the batch_* objectives.")
_CLASSIFIER_WEIGHT = flags.DEFINE_float(
    "classifier_weight", 0.0, "batch_*: a cosine classifier's loss beside the mining loss."
)
_ROTATION_WEIGHT = flags.DEFINE_float(
    "rotation_weight",
    0.0,
    "softmax, normsoftmax: the rotation task beside the classifier (4 x --batch_size images "
    "a step).",
)
_EMA_DECAY = flags.DEFINE_float("ema_decay", 0.0, "Keep a moving average of the weights.")
_MEMORY_SIZE = flags.DEFINE_integer(
    "memory_size", 0, "A cross-batch memory of this many images (the pair-based objectives)."
)
_DISTILL = flags.DEFINE_boolean(
    "distill",
    False,
    "softmax, normsoftmax: train against a frozen teacher of the same tower (--distill_from).",
)
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps (after two warm-up steps).")
_JIT = flags.DEFINE_boolean("jit_compile", False, "Compile the step with XLA.")
_PRECISION = flags.DEFINE_enum("precision", "float32", list(PRECISIONS), "Keras dtype policy.")
_CONCAT = flags.DEFINE_boolean(
    "concat_tower", False, "triplet: one tower call on the stacked batch instead of three."
)
_INFERENCE_BATCH = flags.DEFINE_integer("inference_batch", 1000, "Images per inference call.")
_PIPELINE_BATCHES = flags.DEFINE_integer("pipeline_batches", 20, "Batches timed from tf.data.")
_SYNTHETIC = flags.DEFINE_boolean(
    "synthetic", False, "Random arrays only: skip the tf.data measurement (any Keras backend)."
)
_FUSED_BN = flags.DEFINE_boolean(
    "fused_batch_norm", True, "Batch norm in TensorFlow's fused kernel (off: Keras's ops)."
)
_MATMUL_SIZE = flags.DEFINE_integer("matmul_size", 2048, "Side of the reference matmul.")
_INTER_OP = flags.DEFINE_integer(
    "inter_op_threads", 0, "TensorFlow's inter-op thread pool size; 0: TensorFlow's default."
)
_INTRA_OP = flags.DEFINE_integer(
    "intra_op_threads", 0, "TensorFlow's intra-op thread pool size; 0: TensorFlow's default."
)

SHAPE = DATASETS["cifar100"].image_shape


# Classes of the classification objectives' head: the seen classes of a 90_10 split.
NUM_CLASSES = 90


def _batch(config: TrainConfig, rng: np.random.Generator):
    """One batch of random images for `config`'s objective."""
    return objectives.objective_of(config).example_batch(config, rng, NUM_CLASSES, SHAPE)


def _inference_rate(tower: keras.Model, batch: int) -> float:
    images = np.random.default_rng(1).integers(0, 256, (batch, *SHAPE), dtype=np.uint8)
    tower.predict_on_batch(images)  # warm-up
    return batch / median_seconds(lambda: tower.predict_on_batch(images), 3)


def _pipeline_rate(batch_size: int, batches: int) -> float:
    """Triplets per second out of the training pipeline alone."""
    from keras_siamese.data import pipeline

    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(100), 500)
    images = rng.integers(0, 256, (len(labels), *SHAPE), dtype=np.uint8)
    dataset = pipeline.triplet_dataset(
        images,
        labels,
        batch_size,
        batches + 2,
        names=siamese.INPUT_NAMES,
        seed=0,
        augmentation=pipeline.Augmentation(),
    )
    iterator = iter(dataset)
    for _ in range(2):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def main(argv: list[str]) -> None:
    del argv
    if _INTER_OP.value or _INTRA_OP.value:
        import tensorflow as tf

        if _INTER_OP.value:
            tf.config.threading.set_inter_op_parallelism_threads(_INTER_OP.value)
        if _INTRA_OP.value:
            tf.config.threading.set_intra_op_parallelism_threads(_INTRA_OP.value)
    matmul = matmul_gflops(_MATMUL_SIZE.value)
    pipeline_rate = None
    if not _SYNTHETIC.value:
        pipeline_rate = _pipeline_rate(_BATCH_SIZE.value, _PIPELINE_BATCHES.value)
    for objective in _OBJECTIVES.value:
        if objective not in OBJECTIVES:
            raise app.UsageError(f"--objectives: {objective} is not one of {', '.join(OBJECTIVES)}")
        config = TrainConfig(
            workdir="unused",
            depth=_DEPTH.value,
            backbone=_BACKBONE.value,
            image_size=_IMAGE_SIZE.value,
            objective=objective,
            batch_size=_BATCH_SIZE.value,
            classes_per_batch=_P.value,
            images_per_class=_K.value,
            precision=_PRECISION.value,
            concat_tower=_CONCAT.value,
            classifier_weight=_CLASSIFIER_WEIGHT.value
            if objectives.takes(objective, "classifier_weight")
            else 0.0,
            rotation_weight=_ROTATION_WEIGHT.value
            if objectives.takes(objective, "rotation_weight")
            else 0.0,
            ema_decay=_EMA_DECAY.value,
            memory_size=_MEMORY_SIZE.value if objectives.takes(objective, "memory_size") else 0,
            fused_batch_norm=_FUSED_BN.value,
            distill_from="teacher"
            if _DISTILL.value and objectives.takes(objective, "distill_from")
            else "",
        )
        keras.utils.set_random_seed(0)
        with build.precision_policy(config.precision):
            tower = build.build_tower(config, DATASETS["cifar100"])
            teacher = None
            if config.distill_from:  # a teacher of random weights costs what a trained one does
                teacher_tower = build.build_tower(config, DATASETS["cifar100"])
                scores = classifier.classifier_model(
                    teacher_tower,
                    NUM_CLASSES,
                    cosine=objectives.CLASSIFICATION.is_cosine(objective),
                )
                scores = keras.Model(scores.inputs[0], scores.outputs[0], name="teacher")
                teacher = Teacher(model=scores, logit_scale=1.0, images=0)
            model = build.build_training_model(
                config, tower, jit_compile=_JIT.value, num_classes=NUM_CLASSES, teacher=teacher
            )
        x, y = _batch(config, np.random.default_rng(0))
        for _ in range(2):
            model.train_on_batch(x, y)
        step = median_seconds(lambda: model.train_on_batch(x, y), _STEPS.value)  # noqa: B023
        family = objectives.objective_of(config)
        images_per_step = family.images_per_step(config)
        images_per_second = images_per_step / step
        # FLOPs are counted for the CIFAR ResNet's layers only.
        gflop = training_gflop(tower) if not config.uses_application else None
        samples = family.samples_per_step(config)
        line = {
            "objective": objective,
            "model": f"resnet{_DEPTH.value}"
            if not config.uses_application
            else f"{config.backbone}@{config.image_size}",
            "precision": config.precision,
            "jit_compile": _JIT.value,
            "concat_tower": config.concat_tower,
            "fused_batch_norm": config.fused_batch_norm,
            "classifier_weight": config.classifier_weight,
            "rotation_weight": config.rotation_weight,
            "ema_decay": config.ema_decay,
            "distill": bool(config.distill_from),
            "batch_size": config.batch_size,
            "images_per_step": images_per_step,
            "median_step_seconds": round(step, 4),
            "samples_per_second": round(samples / step, 2),
            "tower_images_per_second": round(images_per_second, 1),
            "train_gflop_per_image": None if gflop is None else round(gflop, 4),
            "achieved_gflops": None if gflop is None else round(images_per_second * gflop, 1),
            "matmul_gflops": round(matmul, 1),
            "ratio_to_matmul": None
            if gflop is None
            else round(images_per_second * gflop / matmul, 3),
            "inference_batch": _INFERENCE_BATCH.value,
            "inference_images_per_second": round(_inference_rate(tower, _INFERENCE_BATCH.value), 1),
            "pipeline_triplets_per_second": None
            if pipeline_rate is None
            else round(pipeline_rate, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "inter_op_threads": _INTER_OP.value,
            "intra_op_threads": _INTRA_OP.value,
            "backend": keras.backend.backend(),
            "keras": keras.__version__,
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    app.run(main)
