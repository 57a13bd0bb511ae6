"""Mixed precision: 16-bit convolutions, float32 losses and outputs, the same export."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.config import TrainConfig
from keras_siamese.data.datasets import DATASETS
from keras_siamese.model import siamese
from keras_siamese.serving import export
from keras_siamese.training import build, devices
from tests.conftest import sample_metadata


class _Cifar:
    info = DATASETS["cifar100"]


@pytest.mark.parametrize(
    "precision,compute", [("mixed_float16", "float16"), ("mixed_bfloat16", "bfloat16")]
)
def test_mixed_precision_step_keeps_float32_losses_and_export(precision, compute, tmp_path):
    config = TrainConfig(workdir="unused", depth=8, precision=precision, batch_size=8)
    with build.precision_policy(precision):
        tower = build.build_tower(config, _Cifar().info)
        model = build.build_training_model(config, tower)
    assert keras.config.dtype_policy().name == "float32"  # restored
    convs = [layer for layer in tower.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(layer.compute_dtype == compute for layer in convs)
    assert all(v.dtype == "float32" for v in tower.trainable_variables)
    if precision == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)

    rng = np.random.default_rng(0)
    x = {n: rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8) for n in siamese.INPUT_NAMES}
    loss = model.train_on_batch(x, np.zeros(8, np.float32))
    assert np.isfinite(loss)
    per_sample = model(x)
    assert per_sample.dtype == "float32"

    export.export_tower(tower, str(tmp_path / "export"), sample_metadata())
    loaded = export.load_saved_model(str(tmp_path / "export"))
    served = loaded.serve(tf.constant(x["anchor"]))
    assert served.dtype == tf.float32 and np.all(np.isfinite(served.numpy()))


def test_jit_compile_auto_follows_the_device():
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    assert devices.resolve_jit_compile("auto") is has_gpu
    assert devices.resolve_jit_compile("true") is True
    assert devices.resolve_jit_compile("false") is False


def test_auto_precision_follows_the_cpus_bfloat16_instructions():
    import tensorflow as tf

    from keras_siamese.training import devices

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU decides before the CPU's flags")
    assert devices.resolve_precision("auto", {"avx2", "avx512_bf16"})[0] == "mixed_bfloat16"
    precision, reason = devices.resolve_precision("auto", {"avx2", "amx_bf16", "amx_tile"})
    assert precision == "mixed_bfloat16" and "amx_bf16" in reason
    assert devices.resolve_precision("auto", {"avx2", "fma"})[0] == "float32"
    # Under JAX, bfloat16 on a CPU gains nothing: float32 whatever the flags.
    assert devices.resolve_precision("auto", {"avx512_bf16"}, backend="jax") == (
        "float32",
        "auto: bfloat16 gains nothing under JAX on a CPU",
    )
    assert devices.resolve_precision("mixed_float16", set()) == ("mixed_float16", "as given")
    # Flags that cannot be read fall back to float32 and say so.
    assert devices.resolve_precision("auto", set()) == (
        "float32",
        "auto: the CPU's instruction flags could not be read",
    )


def test_float16_on_a_machine_without_a_gpu_is_one_warning_line():
    import tensorflow as tf

    from keras_siamese.training import devices

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("float16 is what a GPU is for")
    warning = devices.precision_warning("mixed_float16")
    assert warning.startswith("--precision=mixed_float16 is meant for GPUs") and "\n" not in warning
    assert devices.precision_warning("mixed_bfloat16") is None
    assert devices.precision_warning("float32") is None


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    from keras_siamese.training import devices

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\nbugs\t\t: none\n")
    assert devices.cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "avx512_bf16"}
    assert devices.cpu_flags(str(tmp_path / "missing")) == set()


def test_a_resumed_auto_run_keeps_the_precision_it_started_with(tmp_path):
    import json

    from keras_siamese import workdir as wd
    from keras_siamese.config import TrainConfig

    config = TrainConfig(workdir=str(tmp_path), precision="auto")
    (tmp_path / wd.CONFIG_FILE).write_text(config.to_flagfile())
    (tmp_path / wd.PRECISION_FILE).write_text(json.dumps({"precision": "mixed_bfloat16"}))
    assert wd.recorded_precision(str(tmp_path), config.to_flagfile()) is None  # no backup
    (tmp_path / wd.BACKUP_DIR).mkdir()
    assert wd.recorded_precision(str(tmp_path), config.to_flagfile()) == "mixed_bfloat16"
    other = TrainConfig(workdir=str(tmp_path), precision="auto", depth=20).to_flagfile()
    assert wd.recorded_precision(str(tmp_path), other) is None


@pytest.mark.parametrize(
    "export_precision, policy",
    [
        ("float32", "float32"),
        pytest.param("bfloat16", "mixed_bfloat16", marks=pytest.mark.slow),
    ],
)
def test_a_bfloat16_run_exports_float32_unless_asked(tmp_path, export_precision, policy):
    import json
    import os

    from tests.conftest import program_output
    from tests.test_distillation import TINY

    workdir = str(tmp_path / "run")
    program_output(
        "train_main",
        *TINY,
        "--precision=mixed_bfloat16",
        f"--export_precision={export_precision}",
        f"--workdir={workdir}",
    )
    with open(os.path.join(workdir, "export", "metadata.json")) as f:
        meta = json.load(f)
    assert meta["precision"] == "mixed_bfloat16" and meta["export_precision"] == policy
    tower = export.load_tower(os.path.join(workdir, "export"))
    convs = [layer for layer in tower.layers if isinstance(layer, keras.layers.Conv2D)]
    compute = "float32" if policy == "float32" else "bfloat16"
    assert convs and all(layer.compute_dtype == compute for layer in convs)
    # The SavedModel computes as the .keras tower the metadata describes.
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
    loaded = export.load_saved_model(os.path.join(workdir, "export"))  # kept: its variables
    served = loaded.serve(tf.constant(images))
    np.testing.assert_allclose(served.numpy(), tower.predict(images, verbose=0), atol=1e-4)


@pytest.mark.parametrize("float32_head", [False, True])
def test_a_float32_head_pools_the_bfloat16_map_without_rounding(float32_head):
    config = TrainConfig(workdir="unused", depth=8, float32_head=float32_head)
    keras.utils.set_random_seed(0)
    with build.precision_policy("mixed_bfloat16"):
        tower = build.build_tower(config, DATASETS["cifar100"])
    pool = tower.get_layer("pool")
    assert pool.compute_dtype == ("float32" if float32_head else "bfloat16")
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    feature_map = keras.Model(tower.input, pool.input)(images)
    assert feature_map.dtype == "bfloat16"  # the tower itself still computes in 16 bits
    exact = np.mean(np.asarray(tf.cast(feature_map, tf.float64)), axis=(1, 2))
    error = np.abs(tower(images).numpy() - exact).max() / np.abs(exact).max()
    # float32's rounding, or bfloat16's (8 bits of mantissa: about 4e-3 of the value).
    assert error < 1e-5 if float32_head else error > 1e-4, error


def _cifar_export(folder: str, policy: str = "mixed_bfloat16") -> keras.Model:
    """A depth-8 CIFAR tower built in `policy` and exported as runs wrote them before the
    precisions were recorded; returns the tower."""
    keras.utils.set_random_seed(0)
    with build.precision_policy(policy):
        tower = build.build_tower(TrainConfig(workdir="unused", depth=8), DATASETS["cifar100"])
    export.export_tower(tower, folder, sample_metadata(input_shape=[32, 32, 3]))
    return tower


def test_a_float32_copy_of_a_bfloat16_export_computes_as_a_float32_build(tmp_path):
    import json

    from tests.conftest import program_output

    source, copy = str(tmp_path / "export"), str(tmp_path / "export_f32")
    bf16_tower = _cifar_export(source)
    printed = program_output(
        "keras_siamese.programs.export", f"--export_dir={source}", f"--float32_copy={copy}"
    )
    assert "(mixed_bfloat16) computing in float32" in printed
    with open(os.path.join(copy, "metadata.json")) as f:
        meta = json.load(f)
    # The training precision is inferred from the source's tower when it was not recorded.
    assert meta["precision"] == "mixed_bfloat16" and meta["export_precision"] == "float32"
    tower = export.load_tower(copy)
    assert {layer.compute_dtype for layer in tower.layers} == {"float32"}
    with build.precision_policy("float32"):
        reference = build.build_tower(TrainConfig(workdir="unused", depth=8), DATASETS["cifar100"])
    reference.set_weights(bf16_tower.get_weights())
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    expected = reference.predict(images, verbose=0)
    np.testing.assert_allclose(tower.predict(images, verbose=0), expected, rtol=1e-5, atol=1e-5)
    loaded = export.load_saved_model(copy)  # kept: its variables
    served = loaded.serve(tf.constant(images)).numpy()
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-5)
    # The source's 16-bit arithmetic rounds what the copy computes exactly.
    rounded = bf16_tower.predict(images, verbose=0)
    assert not np.allclose(rounded, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rounded, expected, rtol=0.1, atol=0.1)


def test_a_float32_copy_is_refused_in_one_line_where_it_cannot_be_made(capsys, tmp_path):
    from tests.conftest import program_error

    source, copy = str(tmp_path / "export"), str(tmp_path / "export_f32")
    _cifar_export(source)
    program = "keras_siamese.programs.export"
    line = program_error(capsys, program, f"--export_dir={source}", f"--float32_copy={source}")
    assert "exists: give a new folder" in line
    line = program_error(capsys, program, f"--export_dir={tmp_path}", f"--float32_copy={copy}")
    assert "not its export" in line or "no complete export" in line
    assert not os.path.exists(copy)
    _cifar_export(str(tmp_path / "f32"), "float32")
    line = program_error(
        capsys, program, f"--export_dir={tmp_path / 'f32'}", f"--float32_copy={copy}"
    )
    assert "computes in float32 already" in line and not os.path.exists(copy)
