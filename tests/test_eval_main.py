"""eval_main on real runs: eval.json, figures, the report, and rejected input."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from keras_siamese import workdir as wd
from keras_siamese.evaluation import report
from tests.conftest import (
    ROOT,
    TEST_IMAGES_PER_CLASS,
    program_error,
    program_output,
    program_run,
    run_main,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _assert_png(path: str) -> None:
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC, path


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, smoke_run, cifar_dir) -> str:
    """Three evaluated runs on `cifar_dir`: the 90_10 smoke run (with an extra flip-averaged
    row and the projector's files), a 100_0 one, and a batch-hard 10_90 one with a
    batch-norm neck, test-time options built into its export, snapshots (stopped by its
    time budget after its first epoch) and its learning curve.
    """
    runs = tmp_path_factory.mktemp("runs")
    shutil.copytree(smoke_run, runs / "90_10")
    extra = {
        "100_0": ["--split=100_0", "--epochs=1"],
        "hard": [
            "--split=10_90",  # ten seen classes: a small centring sample
            "--objective=batch_hard",
            "--classes_per_batch=8",
            "--snapshot_every=1",
            "--time_budget_minutes=0.001",
            "--neck=batchnorm",
            "--tta=flip",
            "--center=seen",
        ],
    }
    smoke = ["--flagfile=flags/smoke.flags", f"--data_dir={cifar_dir}"]
    for name, args in extra.items():  # in this process: the program's imports are paid once
        program_output("train_main", *smoke, f"--workdir={runs / name}", *args)
    # Evaluated in this process (the process contract is tested below); the 100_0 run
    # finds its data through the data_dir recorded at training.
    evaluations = [
        (
            f"--workdir={runs / '90_10'}",
            f"--data_dir={cifar_dir}",
            "--tta=flip",
            "--projector",
        ),
        (f"--workdir={runs / '100_0'}",),
        (f"--workdir={runs / 'hard'}", "--snapshots"),
    ]
    for args in evaluations:
        assert "Triplet accuracy" in program_output("eval_main", *args)
    return str(runs)


def test_eval_json_has_every_metric_and_the_four_figures(runs_dir):
    run = os.path.join(runs_dir, "90_10")
    e = _load(os.path.join(run, wd.EVAL_FILE))
    assert e["run"]["split"] == "90_10" and e["run"]["dataset"] == "cifar100"
    assert e["run"]["budget"]["epochs"] == 3
    seen, unseen = e["seen"], e["unseen"]
    assert seen["triplet_accuracy"]["count"] == 10_000
    pair = seen["pair"]
    assert pair["fixed"]["threshold"] == 0.8 and pair["fixed"]["accuracy"]["count"] == 10_000
    assert 0.0 < pair["calibrated"]["threshold"] < 2.0
    assert 0.0 <= pair["roc_auc"] <= 1.0 and 0.0 <= pair["equal_error_rate"] <= 1.0
    fewshot = unseen["fewshot_pairs"]
    assert {"balanced_fixed", "balanced_calibrated", "reference"} <= set(fewshot)
    # 10 supports against the other unseen test images (of 10 x TEST_IMAGES_PER_CLASS).
    per_class = TEST_IMAGES_PER_CLASS
    assert fewshot["reference"]["accuracy"]["count"] == 10 * (10 * per_class - 10)
    assert fewshot["reference"]["always_different"] == pytest.approx(0.9)
    oneshot = unseen["oneshot"]
    assert oneshot["ways"] == 10 and oneshot["first_support"]["count"] == 10 * (per_class - 1)
    assert oneshot["random_supports"]["count"] == 100
    assert [(x["ways"], x["shots"], x["episodes"]) for x in unseen["episodes"]] == [
        (5, 1, 1000),
        (5, 5, 1000),
    ]
    assert unseen["retrieval"]["recall_at_1"]["count"] == 10 * per_class
    assert 0.0 <= unseen["retrieval"]["map_at_r"]["value"] <= 1.0
    assert e["figures"] == list(wd.FIGURES)
    for name in wd.FIGURES:
        _assert_png(os.path.join(run, name))


def test_eval_main_and_training_compute_the_same_protocol(runs_dir):
    run = os.path.join(runs_dir, "90_10")
    at_training = _load(os.path.join(run, wd.METRICS_FILE))
    evaluated = _load(os.path.join(run, wd.EVAL_FILE))
    for path in (
        ("seen", "triplet_accuracy"),
        ("seen", "pair", "fixed", "accuracy"),
        ("unseen", "oneshot", "first_support"),
        ("unseen", "oneshot", "random_supports"),
    ):
        a, b = at_training, evaluated
        for key in path:
            a, b = a[key], b[key]
        assert a["count"] == b["count"]
        assert a["value"] == pytest.approx(b["value"], abs=2e-3), path


def test_test_time_options_are_an_extra_row_beside_the_protocol(runs_dir):
    plain = _load(os.path.join(runs_dir, "90_10", wd.EVAL_FILE))
    (row,) = plain["with_options"]
    assert (row["tta"], row["center"]) == ("flip", "none")
    assert row["metrics"]["unseen"]["oneshot"]["random_supports"]["count"] == 100
    # The protocol's own rows are the tower's alone, equal to those at training.
    at_training = _load(os.path.join(runs_dir, "90_10", wd.METRICS_FILE))
    assert "with_options" not in at_training
    assert plain["seen"]["triplet_accuracy"]["value"] == pytest.approx(
        at_training["seen"]["triplet_accuracy"]["value"], abs=2e-3
    )
    assert row["metrics"]["unseen"]["episodes"] != plain["unseen"]["episodes"]


def test_an_export_with_options_serves_them_to_every_client(runs_dir, cifar_dir):
    from keras_siamese.model import test_time
    from keras_siamese.serving import export, metadata

    run = os.path.join(runs_dir, "hard")
    export_dir = os.path.join(run, wd.EXPORT_DIR)
    meta = metadata.read(export_dir)
    assert (meta.tta, meta.center) == ("flip", "seen")
    with open(os.path.join(export_dir, "metadata.json")) as f:
        assert json.load(f)["format"] == "keras_siamese.export/2"
    served = export.load_tower(export_dir)
    tower = test_time.base_tower(served)
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    by_hand = (tower.predict(images, verbose=0) + tower.predict(images[:, :, ::-1], verbose=0)) / 2
    # The stored mean: the flip-averaged embedding of the seen classes' first train images.
    from keras_siamese.data.sources import load_dataset
    from keras_siamese.evaluation import export_eval

    part = export_eval.rebuild_partition(meta, load_dataset("cifar100", cifar_dir))
    seen = part.train_images[test_time.centring_sample(part.train_labels)]
    flipped = (tower.predict(seen, verbose=0) + tower.predict(seen[:, :, ::-1], verbose=0)) / 2
    mean = served.get_layer("centre").get_weights()[0]
    np.testing.assert_allclose(mean, flipped.mean(axis=0), atol=1e-4)
    by_hand -= mean
    saved_model = export.load_saved_model(export_dir)  # kept: its variables die with it
    served_by_saved_model = saved_model.serve(images).numpy()
    np.testing.assert_allclose(served.predict(images, verbose=0), by_hand, atol=1e-5)
    np.testing.assert_allclose(served_by_saved_model, by_hand, atol=1e-5)
    (row,) = _load(os.path.join(run, wd.EVAL_FILE))["with_options"]
    assert (row["tta"], row["center"]) == ("flip", "seen")


def test_the_projector_shows_the_unseen_test_images_as_the_export_embeds_them(runs_dir, cifar_dir):
    from keras_siamese.serving.similarity import Similarity
    from tests.test_projector import check_projector_files

    run = os.path.join(runs_dir, "90_10")
    with np.load(os.path.join(cifar_dir, "cifar100_test.npz")) as data:
        images, labels = data["images"], data["fine_labels"]
    unseen = labels >= 90
    names = _load(os.path.join(run, "export", "metadata.json"))["class_names"]
    embeddings = Similarity.load(os.path.join(run, "export")).embed(images[unseen])
    classes = [names[int(label)] for label in labels[unseen]]
    check_projector_files(os.path.join(run, "logs"), embeddings, classes, ["unseen"] * len(classes))


def test_split_without_unseen_classes_has_no_unseen_metrics(runs_dir):
    run = os.path.join(runs_dir, "100_0")
    e = _load(os.path.join(run, wd.EVAL_FILE))
    assert "unseen" not in e
    assert e["figures"] == [wd.DISTANCES_FIGURE, wd.ROC_FIGURE]
    assert not os.path.exists(os.path.join(run, wd.NEAREST_SUPPORTS_FIGURE))


def test_report_renders_a_table_and_figures_for_every_run(runs_dir, tmp_path):
    out = tmp_path / "results"
    program_output("eval_main", "--report", f"--runs_dir={runs_dir}", f"--out={out}")
    table = (out / report.REPORT_FILE).read_text()
    rows = [line for line in table.splitlines() if line.startswith("| 90_10 |")]
    assert len(rows) == 2  # one in each table
    assert "| 100_0 | 100_0 |" in table
    # The published 90-10 numbers stand beside ours, and the budget is stated.
    assert (
        "88.3" in rows[0]
        and "83.1" in rows[0]
        and "triplet, depth 8, 3 ep × 3 steps × 96 images" in rows[0]
    )
    assert "49.6" in rows[1]  # the reference models' 10-way one-shot, random supports
    # Test-time options are extra rows of the corrected table, named by their options.
    (flipped,) = [
        x for x in table.splitlines() if x.startswith("| 90_10 (tta=flip, center=none) |")
    ]
    assert flipped.count("|") == rows[1].count("|") and flipped != rows[1]
    assert any(x.startswith("| hard (tta=flip, center=seen) |") for x in table.splitlines())
    hard = [line for line in table.splitlines() if line.startswith("| hard |")]
    assert "batch_hard, depth 8, 1 ep × 3 steps × 32 images" in hard[0]
    for name in (report.FEWSHOT_FIGURE, report.ONESHOT_FIGURE, report.CURVES_FIGURE):
        _assert_png(str(out / name))
    assert f"({report.CURVES_FIGURE})" in table
    # Runs directly in --runs_dir belong to no recipe: no per-split table.
    assert not (out / "table.json").exists()


def test_the_records_of_a_recipes_runs_make_the_per_split_table(runs_dir, tmp_path):
    recipes = tmp_path / "runs"
    for name in ("90_10", "100_0"):  # a run's record: its metrics.json and config.flags
        os.makedirs(recipes / "smoke" / name)
        for record in (wd.METRICS_FILE, wd.CONFIG_FILE):
            shutil.copy(os.path.join(runs_dir, name, record), recipes / "smoke" / name)
    out = tmp_path / "results"
    program_output("eval_main", "--report", f"--runs_dir={recipes}", f"--out={out}")
    per_split = _load(str(out / "table.json"))["recipes"]["smoke"]
    assert sorted(per_split) == ["100_0", "90_10"]
    trained = _load(os.path.join(runs_dir, "90_10", wd.METRICS_FILE))
    five_way = per_split["90_10"]["metrics"]["5way_1shot"]
    assert five_way["seeds"] == [trained["unseen"]["episodes"][0]["accuracy"]["value"]]
    assert "5way_1shot" not in per_split["100_0"]["metrics"]
    assert not (out / report.REPORT_FILE).exists()  # no eval.json among the records


def test_time_budget_stops_training_and_snapshots_make_a_learning_curve(runs_dir):
    run = os.path.join(runs_dir, "hard")
    metrics = _load(os.path.join(run, wd.METRICS_FILE))
    assert metrics["budget"]["epochs"] == 1  # of 3: the budget ran out in the first
    with open(os.path.join(run, wd.HISTORY_FILE)) as f:
        assert len(f.read().strip().splitlines()) == 2
    assert os.path.exists(os.path.join(run, wd.SNAPSHOTS_DIR, "epoch_0001.weights.h5"))
    curve = _load(os.path.join(run, wd.CURVE_FILE))
    (point,) = curve["points"]
    assert point["epoch"] == 1 and point["train_seconds"] > 0
    assert point["metrics"]["seen"]["triplet_accuracy"]["count"] == 10_000
    assert point["metrics"]["unseen"]["oneshot"]["ways"] == 90
    # The last snapshot is the exported model (one epoch, best = last), so the curve's
    # unseen-class metrics, computed on all unseen test images, equal eval.json's.
    evaluated = _load(os.path.join(run, wd.EVAL_FILE))
    for key in ("first_support", "random_supports"):
        assert point["metrics"]["unseen"]["oneshot"][key] == pytest.approx(
            evaluated["unseen"]["oneshot"][key], abs=2e-3
        )
    _assert_png(os.path.join(run, wd.CURVE_FIGURE))


def test_snapshots_of_a_run_without_them_are_refused(capsys, runs_dir):
    run = f"--workdir={os.path.join(runs_dir, '100_0')}"
    assert "holds no snapshots" in program_error(capsys, "eval_main", run, "--snapshots")


def test_killed_evaluation_leaves_a_complete_eval_json(runs_dir, cifar_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(os.path.join(runs_dir, "100_0"), run)
    before = _load(str(run / wd.EVAL_FILE))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-u",
            os.path.join(ROOT, "eval_main.py"),
            f"--workdir={run}",
            f"--data_dir={cifar_dir}",
            "--seed=7",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # Keras prints the embedding summary line when the forward passes end; the metrics,
    # figures and eval.json follow. Kill it right then.
    for line in proc.stdout:
        if "/step" in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    after = _load(str(run / wd.EVAL_FILE))  # old or new, but whole
    assert after["evaluation_seed"] in (before["evaluation_seed"], 7)
    assert set(after) == set(before)
    # The rerun (in this process) writes the whole evaluation again.
    rerun = ("eval_main", f"--workdir={run}", f"--data_dir={cifar_dir}")
    assert program_run(*rerun) == 0
    assert _load(str(run / wd.EVAL_FILE)) == before


def _error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    return lines[-1]


def test_export_of_another_data_set_is_refused(capsys, tmp_path, runs_dir, cifar_dir):
    run = tmp_path / "run"
    shutil.copytree(os.path.join(runs_dir, "90_10"), run, ignore=shutil.ignore_patterns("*.json"))
    os.makedirs(run / "export", exist_ok=True)
    meta = _load(os.path.join(runs_dir, "90_10", "export", "metadata.json"))
    (run / "export" / "metadata.json").write_text(json.dumps({**meta, "dataset": "mnist"}))
    args = (f"--workdir={run}", f"--data_dir={cifar_dir}")
    assert "No mnist data found" in program_error(capsys, "eval_main", *args)
    renamed = {**meta, "class_names": [f"c{i}" for i in range(100)]}
    (run / "export" / "metadata.json").write_text(json.dumps(renamed))
    assert "class names differ" in program_error(capsys, "eval_main", *args)
    assert not (run / wd.EVAL_FILE).exists()


def test_data_dir_without_the_data_is_refused(capsys, tmp_path, runs_dir):
    run = os.path.join(runs_dir, "90_10")
    empty = tmp_path / "empty"
    empty.mkdir()
    line = program_error(capsys, "eval_main", f"--workdir={run}", f"--data_dir={empty}")
    assert "No cifar100 data found" in line


# The command-line contract as a process sees it; every other bad flag: tests/test_cli.py.
def test_a_bad_flag_is_one_line_and_a_non_zero_exit():
    result = run_main("eval_main.py", "--workdir=nowhere", "--ways=1")
    assert result.returncode == 1
    assert "--ways=1 must be at least 2" in _error_line(result)


_REPORT_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from keras_siamese import files
    from keras_siamese.evaluation import report
    real_replace = os.replace
    def dying_replace(src, dst):
        if dst.endswith(report.REPORT_FILE):  # the new table is complete, not yet in place
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst)
    files.os.replace = dying_replace
    report.write_report(sys.argv[1], sys.argv[2])
    """
)


def test_killed_report_leaves_the_previous_table_whole(runs_dir, tmp_path):
    out = tmp_path / "results"
    report.write_report(runs_dir, str(out))
    table = (out / report.REPORT_FILE).read_text()
    shutil.rmtree(os.path.join(runs_dir, "100_0-copy"), ignore_errors=True)
    shutil.copytree(os.path.join(runs_dir, "100_0"), os.path.join(runs_dir, "100_0-copy"))
    try:
        killed = subprocess.run(
            [sys.executable, "-c", _REPORT_SCRIPT, runs_dir, str(out)],
            cwd=ROOT,
            capture_output=True,
            timeout=300,
        )
    finally:
        shutil.rmtree(os.path.join(runs_dir, "100_0-copy"))
    assert killed.returncode == -signal.SIGKILL
    assert (out / report.REPORT_FILE).read_text() == table
    report.write_report(runs_dir, str(out))
    assert (out / report.REPORT_FILE).read_text() == table
