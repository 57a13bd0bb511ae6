"""Where the model runs: the tf.distribute strategy, XLA and the arithmetic's precision.

TensorFlow is imported only where its backend asks: under Keras's JAX backend
a run trains on a machine without it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import keras

from keras_siamese.errors import ConfigError

if TYPE_CHECKING:
    import tensorflow as tf


def check_strategy_backend(strategy: str, backend: str) -> None:
    """Raises ConfigError when `strategy` is tf.distribute's and `backend` is not TensorFlow."""
    if backend != "tensorflow" and strategy not in ("auto", "default"):
        raise ConfigError(
            f"--strategy={strategy} is tf.distribute's: with KERAS_BACKEND={backend} a "
            "run trains on one device (--strategy=auto)."
        )


def resolve_jit_compile(choice: str) -> bool:
    """XLA on or off: `auto` means on with a GPU, off on CPU (on for JAX, which compiles
    every step).

    On CPUs XLA made TensorFlow's ResNet56 training step slower (docs/benchmarks.md).
    """
    if choice == "auto":
        return keras.backend.backend() != "tensorflow" or bool(gpu_capabilities())
    return choice == "true"


def gpu_capabilities() -> list[tuple[int, int] | None]:
    """The compute capability of each GPU the Keras backend sees (None where unknown)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        found = []
        for gpu in tf.config.list_physical_devices("GPU"):
            capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
            found.append(tuple(capability) if capability else None)
        return found
    if backend == "jax":
        import jax

        found = []
        for device in jax.devices():
            if device.platform != "gpu":
                continue
            capability = getattr(device, "compute_capability", None)  # "9.0" on CUDA
            found.append(tuple(int(x) for x in capability.split(".")) if capability else None)
        return found
    return []


# CPU flags (as /proc/cpuinfo names them) of native bfloat16 arithmetic.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    """The instruction-set flags of this machine's CPU (empty where they cannot be read)."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def resolve_precision(
    choice: str, flags: set[str] | None = None, backend: str | None = None
) -> tuple[str, str]:
    """The dtype policy for `choice`, and why: `auto` looks at the machine.

    A GPU with float16 tensor cores (compute capability 7.0 or newer) gets
    mixed_float16; else, under TensorFlow, a CPU with bfloat16 instructions
    (`BF16_CPU_FLAGS`) mixed_bfloat16, which measured 1.16 to 1.38 times
    float32's step there (docs/benchmarks.md); else float32, 16 bits being
    emulated (7.5 times slower on an AVX2 CPU) or, under JAX on a CPU, gaining
    nothing (48 against 47 images/s on that same CPU). `flags`: the CPU's
    flags, read from /proc/cpuinfo when None; `backend`: Keras's, when None.
    """
    if choice != "auto":
        return choice, "as given"
    for capability in gpu_capabilities():
        if capability and capability >= (7, 0):
            return (
                "mixed_float16",
                f"auto: a GPU of compute capability {capability[0]}.{capability[1]}",
            )
    if (backend or keras.backend.backend()) != "tensorflow":
        return "float32", "auto: bfloat16 gains nothing under JAX on a CPU"
    flags = cpu_flags() if flags is None else flags
    if not flags:
        return "float32", "auto: the CPU's instruction flags could not be read"
    found = sorted(set(BF16_CPU_FLAGS) & flags)
    if found:
        return "mixed_bfloat16", f"auto: this CPU has {' and '.join(found)}"
    return "float32", "auto: no bfloat16 instructions or float16 tensor cores found"


def precision_warning(precision: str) -> str | None:
    """A line for a precision that will run slowly here (float16 on a machine without a GPU)."""
    if precision == "mixed_float16" and not gpu_capabilities():
        return (
            "--precision=mixed_float16 is meant for GPUs: this machine has none, and a CPU "
            "emulates float16, slower than float32 (--precision=auto picks for the machine). "
            "Going on."
        )
    return None


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy called `name`.

    auto: mirrored when the machine has two or more GPUs, else default.
    default: one device. mirrored: synchronous data parallelism over every
    GPU, or over every logical CPU device when there is no GPU. multi_worker:
    the same across the processes that TF_CONFIG lists, one per machine.
    tpu: the TPU that TensorFlow's TPUClusterResolver finds (TPU_NAME, or a
    TPU VM's own).
    """
    import tensorflow as tf

    if name == "multi_worker":
        # Before anything that starts TensorFlow's runtime, listing devices included.
        if not os.environ.get("TF_CONFIG"):
            raise ConfigError(
                "--strategy=multi_worker needs TF_CONFIG: the cluster's workers and this "
                "process's task (see docs/guide.md, Precision and devices)."
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        return _tpu_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "mirrored":
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy(devices=[d.name for d in devices])
    return tf.distribute.get_strategy()


def _tpu_strategy() -> tf.distribute.Strategy:
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError) as e:
        raise ConfigError(f"--strategy=tpu found no TPU ({e}).") from None
    return tf.distribute.TPUStrategy(resolver)
