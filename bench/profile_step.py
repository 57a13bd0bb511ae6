"""Where a training step's time goes, op by op (figures, not a test).

    python bench/profile_step.py [--objectives=normsoftmax] [--precision=float32]
        [--steps=5] [--batch_size=128] [--logdir=DIR]

(the flags are bench/throughput.py's; the first of --objectives is traced)

Builds the objective's training model as bench/throughput.py does, runs two
warm-up steps, then traces `--steps` steps with TensorFlow's profiler and sums
the time of every op kernel on the CPU threads by kind: convolutions forward,
their input and filter gradients, batch normalisation and its gradient, the
casts a 16-bit policy adds, element-wise activations, the input normalisation,
the optimizer's update, and the rest. Prints one JSON line: the step's wall
time, each kind's milliseconds per step and share of the summed op time, the
ten most costly op types, and `busy_share`, the summed op time over wall time
times the intra-op threads (what is left is waiting between ops).
"""

from __future__ import annotations

import collections
import glob
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402
from throughput import (  # noqa: E402  (bench/throughput.py, with its flags)
    _BATCH_SIZE,
    _DEPTH,
    _FUSED_BN,
    _OBJECTIVES,
    _PRECISION,
    _STEPS,
    NUM_CLASSES,
    _batch,
)

from keras_siamese.config import TrainConfig  # noqa: E402
from keras_siamese.data.datasets import DATASETS  # noqa: E402
from keras_siamese.training import build  # noqa: E402

_LOGDIR = flags.DEFINE_string("logdir", None, "Where the trace goes (default: a temp folder).")

# Op types by kind; the first matching kind wins, unmatched types are "other".
KINDS = (
    ("convolution forward", ("Conv2D",)),
    ("convolution input gradient", ("Conv2DBackpropInput",)),
    ("convolution filter gradient", ("Conv2DBackpropFilter",)),
    ("batch norm forward", ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")),
    ("batch norm gradient", ("FusedBatchNormGrad", "FusedBatchNormGradV2", "FusedBatchNormGradV3")),
    ("casts", ("Cast",)),
    ("activations", ("Relu", "ReluGrad")),
    (
        "element-wise ops (Keras's batch norm, residual sums, gradient sums)",
        (
            "Mul",
            "SquaredDifference",
            "Tile",
            "Sum",
            "Rsqrt",
            "RsqrtGrad",
            "Sub",
            "AddN",
            "BroadcastTo",
            "Reshape",
            "RealDiv",
            "Neg",
            "AddV2",
            "Add",
            "Mean",
        ),
    ),
    (
        "optimizer update",
        (
            "ResourceApplyKerasMomentum",
            "ResourceApplyMomentum",
            "ResourceApplyAdam",
            "AssignVariableOp",
            "AssignAddVariableOp",
            "AssignSubVariableOp",
            "ReadVariableOp",
        ),
    ),  # fmt: skip
    ("shortcut padding and pooling", ("Pad", "PadV2", "StridedSlice", "StridedSliceGrad")),
)


# Events that contain op kernels rather than being one: the executor's and the step's.
_CONTAINERS = ("Process", "Run", "ExecutorState", "__inference")


def _op_type(event_name: str, stats: dict) -> str | None:
    """The op type of a kernel event (`name:Type`, as TensorFlow's executor names them;
    oneDNN's kernels, `_MklNativeConv2D` and the like, by the op they implement)."""
    label = stats.get("tf_op") or event_name
    if ":" not in label:
        return None
    op = label.rsplit(":", 1)[1].strip()
    if not op or op.startswith(_CONTAINERS) or " " in op:
        return None
    for prefix in ("_MklNative", "_MklFused", "_Mkl"):
        if op.startswith(prefix):
            return op[len(prefix) :]
    return op


def _kernel_times(logdir: str) -> tuple[dict[str, float], int]:
    """Summed microseconds per op type on the host's threads, and the threads seen."""
    (path,) = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    totals: dict[str, float] = collections.defaultdict(float)
    threads = set()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        stat_names = {i: m.name for i, m in plane.stat_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                metadata = plane.event_metadata[event.metadata_id]
                stats = {
                    stat_names.get(s.metadata_id): (
                        plane.stat_metadata[s.ref_value].name if s.ref_value else s.str_value
                    )
                    for s in event.stats
                }
                op = _op_type(metadata.name, stats)
                if op:
                    totals[op] += event.duration_ps / 1e6
                    threads.add(line.id)
    return totals, len(threads)


def main(argv: list[str]) -> None:
    del argv
    config = TrainConfig(
        workdir="unused",
        depth=_DEPTH.value,
        objective=_OBJECTIVES.value[0],
        batch_size=_BATCH_SIZE.value,
        precision=_PRECISION.value,
        fused_batch_norm=_FUSED_BN.value,
    )
    keras.utils.set_random_seed(0)
    with build.precision_policy(config.precision):
        tower = build.build_tower(config, DATASETS["cifar100"])
        model = build.build_training_model(config, tower, num_classes=NUM_CLASSES)
    x, y = _batch(config, np.random.default_rng(0))
    for _ in range(2):
        model.train_on_batch(x, y)
    logdir = _LOGDIR.value or tempfile.mkdtemp(prefix="profile_step_")
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    for _ in range(_STEPS.value):
        model.train_on_batch(x, y)
    wall = (time.perf_counter() - start) / _STEPS.value
    tf.profiler.experimental.stop()
    totals, threads = _kernel_times(logdir)
    summed = sum(totals.values())
    by_kind: dict[str, float] = collections.defaultdict(float)
    for op, micros in totals.items():
        kind = next((k for k, ops in KINDS if op in ops), "other")
        by_kind[kind] += micros
    per_step = {k: round(v / _STEPS.value / 1000, 1) for k, v in by_kind.items()}
    intra = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    line = {
        "objective": config.objective,
        "precision": config.precision,
        "fused_batch_norm": config.fused_batch_norm,
        "batch_size": config.batch_size,
        "step_ms": round(1000 * wall, 1),
        "ops_ms_per_step": round(summed / _STEPS.value / 1000, 1),
        "busy_share": round(summed / _STEPS.value / 1e6 / (wall * intra), 3),
        "threads_with_ops": threads,
        "kinds_ms_per_step": dict(sorted(per_step.items(), key=lambda kv: -kv[1])),
        "kinds_share": {
            k: round(v / summed, 3) for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])
        },
        "top_ops_ms_per_step": {
            op: round(us / _STEPS.value / 1000, 1)
            for op, us in sorted(totals.items(), key=lambda kv: -kv[1])[:10]
        },
        "logdir": logdir,
    }
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    app.run(main)
