"""Shared fixtures: the real data sets and a short real training run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def smoke_run(data_root, tmp_path_factory) -> str:
    """A depth-8 training run of a few steps on the real CIFAR-100, split 90_10."""
    workdir = str(tmp_path_factory.mktemp("smoke") / "run")
    result = run_main(
        "train_main.py",
        "--flagfile=flags/smoke.flags",
        "--split=90_10",
        f"--data_dir={os.path.join(data_root, 'cifar100')}",
        f"--workdir={workdir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir
