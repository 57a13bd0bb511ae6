"""Hyperparameter search: the hypermodel, the held-out objective, a distributed resume."""

from __future__ import annotations

import csv
import dataclasses
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_siamese import cli
from keras_siamese.config import TrainConfig
from keras_siamese.data import splits
from tests.conftest import ROOT, program_flags

# A search of a few seconds per trial: depth 8, two steps of 8 triplets, 4 held-out classes
# scoring it, no validation images (the score does not use them).
SEARCH_FLAGS = (
    "--mode=tune",
    "--depth=8",
    "--epochs=1",
    "--steps_per_epoch=2",
    "--batch_size=8",
    "--split=90_10",
    "--val_fraction=0",
    "--val_classes=4",
    "--max_trials=3",
)


def _search_command(data_dir: str, workdir: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        os.path.join(ROOT, "train_main.py"),
        *SEARCH_FLAGS,
        f"--data_dir={data_dir}",
        f"--workdir={workdir}",
        *extra,
    ]


def _read_trials(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "trials.csv"), newline="") as f:
        return list(csv.DictReader(f))


def _completed_trials(workdir: str) -> list[str]:
    done = []
    for path in glob.glob(os.path.join(workdir, "search", "trial_*", "trial.json")):
        try:
            with open(path) as f:
                if json.load(f)["status"] == "COMPLETED":
                    done.append(os.path.basename(os.path.dirname(path)))
        except (OSError, ValueError, KeyError):
            pass  # being written
    return sorted(done)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_distributed(command: list[str]) -> dict[str, str]:
    """Runs `command` as a chief and two workers of one search; each role's output."""
    port = str(_free_port())
    procs = {}
    try:
        for role in ("chief", "tuner0", "tuner1"):
            env = dict(
                os.environ,
                KERASTUNER_TUNER_ID=role,
                KERASTUNER_ORACLE_IP="127.0.0.1",
                KERASTUNER_ORACLE_PORT=port,
            )
            procs[role] = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        outputs = {role: proc.communicate(timeout=300)[0] for role, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for role, proc in procs.items():
        assert proc.returncode == 0, f"{role}: {outputs[role][-3000:]}"
    return outputs


@pytest.fixture(scope="module")
def resumed_search(data_root, tmp_path_factory):
    """A 3-trial search killed after its first trial, then resumed to the end by a chief
    and two workers: (workdir, the trials done before, the first one's trial.json, each
    role's output)."""
    workdir = str(tmp_path_factory.mktemp("search") / "tune")
    command = _search_command(os.path.join(data_root, "cifar100"), workdir)
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    )
    try:
        deadline = time.time() + 300
        while not _completed_trials(workdir):
            assert proc.poll() is None, "the search ended before it could be interrupted"
            assert time.time() < deadline, "no trial finished in 300 s"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done_before = _completed_trials(workdir)
    with open(os.path.join(workdir, "search", done_before[0], "trial.json")) as f:
        first_trial = json.load(f)
    return workdir, done_before, first_trial, _run_distributed(command)


@pytest.mark.slow
def test_a_resumed_search_runs_only_the_trials_left(resumed_search):
    workdir, done_before, first_trial, outputs = resumed_search
    assert 1 <= len(done_before) < 3
    # keras-tuner announces each trial the chief hands out: none of the finished ones again.
    assert outputs["chief"].count("Running Trial #") == 3 - len(done_before)
    rows = _read_trials(workdir)
    assert [r["trial"] for r in rows] == ["0", "1", "2"]
    assert all(r["status"] == "COMPLETED" for r in rows)
    kept = next(r for r in rows if f"trial_{r['trial']}" == done_before[0])
    assert float(kept["val_oneshot"]) == pytest.approx(first_trial["score"], abs=1e-4)


@pytest.mark.slow
def test_the_table_and_best_flags_name_the_best_trial(resumed_search, data_root, tmp_path):
    workdir, _, _, outputs = resumed_search
    stdout = outputs["chief"]
    rows = _read_trials(workdir)
    scores = [float(r["val_oneshot"]) for r in rows]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert "val_oneshot" in stdout and "best.flags" in stdout
    margins = {float(r["margin"]) for r in rows}
    assert len(margins) == 3 and all(0.05 <= m <= 1.0 for m in margins)
    best = rows[int(np.argmax(scores))]
    with open(os.path.join(workdir, "best.flags")) as f:
        flagfile = f.read()
    lines = flagfile.splitlines()
    margin = float(next(x for x in lines if x.startswith("--margin="))[len("--margin=") :])
    rate = float(next(x for x in lines if x.startswith("--learning_rate=")).split("=")[1])
    assert margin == pytest.approx(float(best["margin"]), abs=1e-6)
    assert rate == pytest.approx(float(best["learning_rate"]), rel=1e-5)
    assert not any(x.startswith(("--workdir", "--data_dir", "--mode")) for x in lines)

    # train_main accepts it as it is, and trains on every seen class (no held-out ones).
    fv = program_flags(
        "train_main",
        f"--flagfile={os.path.join(workdir, 'best.flags')}",
        f"--data_dir={os.path.join(data_root, 'cifar100')}",
        f"--workdir={tmp_path / 'best'}",
    )
    config = cli.config_from_flags(TrainConfig, fv)
    config.validate()
    assert fv.mode == "train" and config.margin == pytest.approx(margin)
    assert (
        len(splits.make_split(config.split, 100, config.split_order, config.split_seed).seen) == 90
    )


def test_default_hyperparameters_build_the_training_model(data_root):
    import keras
    import keras_tuner

    from keras_siamese.config import TrainConfig, TuneConfig
    from keras_siamese.data.sources import load_dataset
    from keras_siamese.training import build, tuning

    dataset = load_dataset("cifar100", os.path.join(data_root, "cifar100"))
    config = TrainConfig(workdir="unused", depth=8, split="90_10")
    images = dataset.train_images[:10]
    hypermodel = tuning.SiameseHyperModel(config, TuneConfig(), dataset, images, np.arange(10))
    tuned = hypermodel.build(keras_tuner.HyperParameters())
    keras.utils.set_random_seed(config.seed)
    plain = build.build_training_model(config, build.build_tower(config, dataset.info))

    def architecture(model):
        tower = tuning.tower_of(model)
        return (
            [
                (type(layer).__name__, [tuple(w.shape) for w in layer.weights])
                for layer in tower.layers
            ],
            [type(layer).__name__ for layer in model.layers],
            model.get_layer("triplet_loss").arguments,
            float(model.optimizer.learning_rate),
        )

    assert architecture(tuned) == architecture(plain)
    assert tuned.get_layer("triplet_loss").arguments == {"distance": "cosine", "margin": 0.3}
    # Same seed, same code: the very same initial weights.
    for a, b in zip(tuned.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_tuning_a_distance_gives_each_its_own_margin_range():
    import keras_tuner

    from keras_siamese.config import TrainConfig, TuneConfig
    from keras_siamese.training import tuning

    base = TrainConfig(workdir="unused")
    tune = TuneConfig(tune_distance=True)
    hp = keras_tuner.HyperParameters()
    first = tuning.trial_config(base, tune, hp)
    assert (first.distance, first.margin) == ("cosine", 0.3)
    hp.values["distance"] = "euclidean"
    second = tuning.trial_config(base, tune, hp)
    assert second.distance == "euclidean"
    assert second.margin == 1.0  # the euclidean default, inside (0.1, 2.0)
    assert hp.values["margin_euclidean"] == 1.0
    assert [p.name for p in hp.space] == [
        "distance",
        "margin_cosine",
        "learning_rate",
        "margin_euclidean",
    ]


@pytest.mark.slow
def test_the_chief_and_two_workers_share_the_trials_left(resumed_search):
    _, done_before, _, outputs = resumed_search
    # Each epoch of a trial logs its objective on the worker that trains it.
    ran = [outputs[w].count("val_oneshot: ") for w in ("tuner0", "tuner1")]
    assert sum(ran) == 3 - len(done_before), outputs
    assert "Best settings:" in outputs["chief"]
    assert "the chief writes the table" in outputs["tuner0"]


def _poisoned(dataset):
    """`dataset` with every test image and every unseen-class (90-99) image replaced by noise."""
    rng = np.random.default_rng(1)

    def noise_where(images: np.ndarray, poison: np.ndarray) -> np.ndarray:
        noise = rng.integers(0, 256, images.shape, dtype=np.uint8)
        return np.where(poison[:, None, None, None], noise, images)

    return dataclasses.replace(
        dataset,
        train_images=noise_where(dataset.train_images, dataset.train_labels >= 90),
        test_images=noise_where(dataset.test_images, np.ones(len(dataset.test_labels), bool)),
    )


def test_the_objective_never_looks_at_unseen_classes_or_test_images(data_root, tmp_path):
    # The same one-trial search twice in this process, once on data whose test images
    # and unseen-class images are noise: the same settings, the same score.
    from keras_siamese.config import TuneConfig
    from keras_siamese.data.sources import load_dataset
    from keras_siamese.training import tuning

    data_dir = os.path.join(data_root, "cifar100")
    dataset = load_dataset("cifar100", data_dir)
    trials = []
    for name, data in (("clean", dataset), ("poisoned", _poisoned(dataset))):
        workdir = str(tmp_path / name)
        fv = program_flags("train_main", *_search_command(data_dir, workdir, "--max_trials=1")[2:])
        config = cli.config_from_flags(TrainConfig, fv)
        tuning.run_search(config, cli.config_from_flags(TuneConfig, fv), data, verbose=0)
        trials.append(
            [(r["margin"], r["learning_rate"], r["val_oneshot"]) for r in _read_trials(workdir)]
        )
    clean, poisoned = trials
    assert len(clean) == 1 and 0.0 <= float(clean[0][2]) <= 1.0
    assert poisoned == clean


@pytest.mark.parametrize(
    "name, oracle",
    [
        ("random", "RandomSearchOracle"),
        ("bayesian", "BayesianOptimizationOracle"),
        ("hyperband", "HyperbandOracle"),
    ],
)
def test_each_tuner_searches_the_same_space(tmp_path, name, oracle):
    from keras_siamese.config import TrainConfig, TuneConfig
    from keras_siamese.data.datasets import DATASETS
    from keras_siamese.training import tuning

    class _Shapes:  # the tuner builds a model to learn the space: it needs only shapes
        info = DATASETS["cifar100"]

    base = TrainConfig(workdir=str(tmp_path), depth=8, epochs=4)
    tune = TuneConfig(tuner=name, max_trials=3)
    hypermodel = tuning.SiameseHyperModel(base, tune, _Shapes(), np.zeros(0), np.zeros(0))
    tuner = tuning.make_tuner(hypermodel, base, tune, str(tmp_path / "search"))
    assert type(tuner.oracle).__name__ == oracle
    assert [p.name for p in tuner.oracle.get_space().space] == ["margin", "learning_rate"]


@pytest.mark.parametrize(
    "settings",
    [
        dict(objective="batch_hard", soft_margin=True),
        dict(objective="normsoftmax"),
        dict(objective="contrastive", pair_head="bce"),
    ],
)
def test_a_loss_without_a_margin_searches_only_the_rate(settings):
    import keras_tuner

    from keras_siamese.config import TrainConfig, TuneConfig
    from keras_siamese.training import tuning

    base = TrainConfig(workdir="unused", **settings)
    hp = keras_tuner.HyperParameters()
    config = tuning.trial_config(base, TuneConfig(), hp)
    assert [p.name for p in hp.space] == ["learning_rate"] and config.margin == 0.3
