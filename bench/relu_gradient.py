"""ReLU's gradient in float32 and bfloat16, three ways (figures, not a test).

    python bench/relu_gradient.py [--repeats=30]

Times TensorFlow's `ReluGrad` kernel against two formulations of the same
gradient (`where(y > 0, dy, 0)` and `dy * cast(y > 0)`) on the activation
shapes of ResNet56's three stages at batch 128, each in float32 and bfloat16,
each a `tf.function` called `--repeats` times (median milliseconds). Prints one
JSON line per shape and dtype.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from measure import median_seconds  # noqa: E402  (bench/measure.py)

_REPEATS = flags.DEFINE_integer("repeats", 30, "Timed calls per formulation.")

# ResNet56's activations at batch 128: its three stages.
SHAPES = ((128, 32, 32, 16), (128, 16, 16, 32), (128, 8, 8, 64))


def main(argv: list[str]) -> None:
    del argv
    for shape in SHAPES:
        for dtype in (tf.float32, tf.bfloat16):
            y = tf.cast(tf.nn.relu(tf.random.normal(shape, seed=1)), dtype)
            dy = tf.cast(tf.random.normal(shape, seed=2), dtype)
            ways = {
                "relu_grad": tf.function(
                    lambda y=y, dy=dy: tf.raw_ops.ReluGrad(gradients=dy, features=y)
                ),
                "where": tf.function(lambda y=y, dy=dy: tf.where(y > 0, dy, tf.zeros_like(dy))),
                "multiply_mask": tf.function(lambda y=y, dy=dy, t=dtype: dy * tf.cast(y > 0, t)),
            }
            line = {"shape": list(shape), "dtype": dtype.name}
            for name, way in ways.items():
                way()  # traced once
                line[f"{name}_ms"] = round(1e3 * median_seconds(way, _REPEATS.value), 3)
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    app.run(main)
