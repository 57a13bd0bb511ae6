"""What both benchmarks measure: the model's FLOPs and this machine's matmul rate."""

from __future__ import annotations

import statistics
import time

import keras
import numpy as np


def _conv_and_dense_flops(model: keras.Model) -> list[int]:
    flops = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            _, h, w, _ = layer.output.shape
            flops.append(2 * h * w * kh * kw * cin * cout)
        elif isinstance(layer, keras.layers.Dense):
            cin, cout = layer.kernel.shape
            flops.append(2 * cin * cout)
    return flops


def forward_gflop(model: keras.Model) -> float:
    """Multiply-adds x 2 of one image through the convolutions and dense layers."""
    return sum(_conv_and_dense_flops(model)) / 1e9


def training_gflop(model: keras.Model) -> float:
    """Forward plus backward GFLOP of one image.

    The backward pass costs each layer's forward FLOPs twice, once for the
    weight gradient and once for the input gradient, except that the first
    layer needs no input gradient (its input is the image).
    """
    flops = _conv_and_dense_flops(model)
    return (3 * sum(flops) - flops[0]) / 1e9


def median_seconds(call, repeats: int) -> float:
    """The median wall time of `repeats` calls of `call()` (warm it up before)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Median float32 matmul rate of this machine, through the same backend."""
    a = keras.ops.convert_to_tensor(np.random.default_rng(0).random((size, size), np.float32))
    keras.ops.convert_to_numpy(keras.ops.matmul(a, a))
    seconds = median_seconds(lambda: keras.ops.convert_to_numpy(keras.ops.matmul(a, a)), repeats)
    return 2 * size**3 / seconds / 1e9
