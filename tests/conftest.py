"""Shared fixtures: the real data sets and a short real training run."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import pytest

# pymilvus configures logging when first imported (logging.config.dictConfig), which
# closes every existing handler: absl's closes its stream unless that stream is the
# sys.stderr of the moment. Under pytest, absl's handler writes to the worker's capture
# file, so a first import inside a capsys test (where sys.stderr is capsys's) closed the
# capture file and failed every later test of that process. Imported here, before any
# test, its configuration meets absl's handler while sys.stderr is still that file.
with contextlib.suppress(ImportError):
    import pymilvus  # noqa: F401

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def data_root() -> str:
    """The folder of real data sets named by $KERAS_SIAMESE_DATA.

    Skips when unset, except under CI=true, where a missing data set must fail.
    """
    path = os.environ.get("KERAS_SIAMESE_DATA")
    if not path:
        if os.environ.get("CI") == "true":
            pytest.fail("KERAS_SIAMESE_DATA is not set under CI: the real-data tests cannot run.")
        pytest.skip("KERAS_SIAMESE_DATA is not set")
    if not os.path.isdir(path):
        pytest.fail(f"KERAS_SIAMESE_DATA={path} is not a folder.")
    return path


def run_main(script: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Runs `python script args...` from the project root and captures its output."""
    return run_mains((script, *args), timeout=timeout)[0]


def run_mains(
    *commands: tuple[str, ...], timeout: float = 600
) -> list[subprocess.CompletedProcess]:
    """Runs several `(script, *args)` commands at once, from the project root.

    Much of a short run is single-threaded (imports, tracing, export), so two runs side
    by side take little longer than one.
    """
    procs = [
        subprocess.Popen(
            [sys.executable, os.path.join(ROOT, script), *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for script, *args in commands
    ]
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def _shared_once(tmp_path_factory, name: str, make: Callable[[pathlib.Path], None]) -> str:
    """The folder `name` of this test session, made once by `make(folder)`.

    The processes of `pytest -n` share it through their common temporary folder, the
    first one to need it making it while the others wait.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = tmp_path_factory.getbasetemp().parent  # this session's, for every worker
    else:
        shared = tmp_path_factory.getbasetemp() / "shared"
        shared.mkdir(exist_ok=True)
    folder = shared / name
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (shared / f"{name}.done").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            make(folder)
            (shared / f"{name}.done").touch()
    return str(folder)


def rewritten_copy(
    source: str, target: pathlib.Path, rewrite: dict[str, Callable[[dict], dict]]
) -> str:
    """`target` filled with links to the files of `source`, except the .npz files named
    in `rewrite`, written anew with `rewrite[name](their arrays)`; returns `target`."""
    target.mkdir(parents=True, exist_ok=True)
    for name in sorted(os.listdir(source)):
        path = os.path.join(source, name)
        if name in rewrite:
            with np.load(path) as npz:
                arrays = {key: npz[key] for key in npz.files}
            np.savez(target / name, **rewrite[name](arrays))
        else:
            os.symlink(os.path.abspath(path), target / name)
    return str(target)


# Test images kept of each CIFAR-100 class in `cifar_dir`: every evaluation embeds the
# whole test split, and a fifth of it measures the same protocol five times faster.
TEST_IMAGES_PER_CLASS = 20


def _first_test_images(arrays: dict) -> dict:
    labels = arrays["fine_labels"]
    keep = np.concatenate(
        [np.flatnonzero(labels == c)[:TEST_IMAGES_PER_CLASS] for c in np.unique(labels)]
    )
    # Every per-image array is cut; the class names stay whole.
    return {k: v[keep] if len(v) == len(labels) else v for k, v in arrays.items()}


@pytest.fixture(scope="session")
def cifar_dir(data_root, tmp_path_factory) -> str:
    """The real CIFAR-100 with its test split cut to the first 20 images of each class.

    The train split and the class names are links to the real files.
    """

    def make(folder):
        source = os.path.join(data_root, "cifar100")
        rewritten_copy(source, folder, {"cifar100_test.npz": _first_test_images})

    return _shared_once(tmp_path_factory, "cifar_small", make)


@pytest.fixture(scope="session")
def smoke_run(cifar_dir, tmp_path_factory) -> str:
    """A depth-8 training run of a few steps on CIFAR-100 (`cifar_dir`), split 90_10.

    Trained once per test session and shared by the processes of `pytest -n`.
    """

    def make(folder):
        result = run_main(
            "train_main.py",
            "--flagfile=flags/smoke.flags",
            "--split=90_10",
            f"--data_dir={cifar_dir}",
            f"--workdir={folder / 'run'}",
        )
        assert result.returncode == 0, result.stderr[-3000:]

    return os.path.join(_shared_once(tmp_path_factory, "smoke", make), "run")


def sample_metadata(split: str = "90_10", **fields):
    """The metadata of an export written by a test rather than by a training run."""
    from keras_siamese.serving.metadata import ExportMetadata

    defaults = dict(split_order="sequential", split_seed=0, val_fraction=0.1, distance="cosine")
    defaults["dataset"] = "cifar100"
    return ExportMetadata(split=split, **{**defaults, **fields})


def program_flags(program: str, *args: str):
    """The flags of `program` (train_main or eval_main) parsed from `args`, in this process."""
    import importlib

    from absl import flags

    from keras_siamese import cli

    fv = flags.FlagValues()
    module = importlib.import_module(program)
    module.define_flags(fv)
    cli.parse_flags([f"{program}.py", *args], fv, getattr(module, "COMMANDS", ()))
    return fv


def program_run(program: str, *args: str) -> int:
    """Runs `program` (train_main, eval_main, canvas_main, search_main) with `args` in
    this process; a program of commands gets its command word among `args`."""
    import importlib

    module = importlib.import_module(program)
    fv = program_flags(program, *args)
    commands = getattr(module, "COMMANDS", ())
    if commands:
        (command,) = [a for a in args if a in commands]
        return module.run(fv, command)
    return module.run(fv)


def program_output(program: str, *args: str) -> str:
    """What `program` prints to stdout when run with `args` in this process; it must succeed.

    For fixtures, which cannot use capsys; a test's own runs use `program_run`.
    """
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = program_run(program, *args)
    assert code == 0, out.getvalue()[-3000:]
    return out.getvalue()


def program_error(capsys, program: str, *args: str) -> str:
    """The one `error:` line `program` prints for `args`, run in this process; it must fail."""
    try:
        code = program_run(program, *args)
    except SystemExit as e:  # a flag absl itself refuses
        code = e.code
    err = capsys.readouterr().err
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def train_error(capsys, *args: str) -> str:
    """train_main's one error line; the data folder is absent unless `args` name one."""
    return program_error(capsys, "train_main", "--data_dir=/nonexistent", *args)


def backup_epoch(workdir: str) -> int:
    """The epochs a run's backup holds (0 before its first)."""
    try:
        with open(os.path.join(workdir, "backup", "training_metadata.json")) as f:
            return json.load(f)["epoch"]
    except (OSError, ValueError):
        return 0


def kill_after_first_epoch(proc: subprocess.Popen, workdir: str) -> int:
    """SIGKILLs the training process `proc` once its backup holds an epoch; returns the
    epochs the backup holds then."""
    try:
        deadline = time.time() + 300
        while backup_epoch(workdir) < 1 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "training ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    return backup_epoch(workdir)


# The heaviest files first (by their measured seconds), so that `pytest -n 2 --dist
# loadfile --no-loadscope-reorder` (which then hands out whole files in collection order)
# ends with short ones on both processes.
HEAVY_FIRST = (
    "test_eval_main",
    "test_faults",
    "test_bench",
    "test_objectives",
    "test_distillation",
    "test_backbones",
    "test_strategy",
    "test_warm_start",
    "test_canvas",
    "test_tuning",
    "test_milvus",
    "test_metric_losses",
    "test_train_main",
    "test_folder",
    "test_precision",
    "test_native_logs",
    "test_jax_backend",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))
