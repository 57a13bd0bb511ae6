"""The benchmark scripts run in a short mode and print the figures they promise.

They run in this process (`run_bench`): what they promise is their figures, not a
process's exit code, and a fresh Python would import TensorFlow again for each.
"""

import contextlib
import importlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

from tests.conftest import ROOT

BENCH = os.path.join(ROOT, "bench")
# The scripts that define flags; some share a flag's name, so one is loaded at a time.
SCRIPTS = (
    "throughput",
    "profile_step",
    "evaluation",
    "search",
    "folder",
    "time_to_accuracy",
    "serving",
)


def _fresh_import(name: str):
    """bench/NAME.py imported anew, the flags of every script imported before removed."""
    by_module = flags.FLAGS.flags_by_module_dict()
    for script in SCRIPTS:
        for flag in list(by_module.get(script, [])):
            if flag.name in flags.FLAGS:
                delattr(flags.FLAGS, flag.name)
        sys.modules.pop(script, None)
    return importlib.import_module(name)


def run_bench(script: str, *args: str) -> subprocess.CompletedProcess:
    """Runs `bench/NAME.py`'s main with `args` in this process; what it printed.

    The scripts define their flags in absl's global FLAGS: each is imported anew and its
    flags parsed from their defaults, as `app.run` would parse them.
    """
    if BENCH not in sys.path:
        sys.path.insert(0, BENCH)  # the scripts import each other and bench/measure.py
    module = _fresh_import(os.path.splitext(os.path.basename(script))[0])
    flags.FLAGS.unparse_flags()
    flags.FLAGS([script, *args])
    out = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out):
        try:
            module.main([script])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return subprocess.CompletedProcess([script, *args], code, out.getvalue(), "")


def _json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_throughput_bench_prints_a_line_per_objective():
    result = run_bench(
        "bench/throughput.py",
        "--depth=8",
        "--steps=1",
        "--batch_size=4",
        "--classes_per_batch=2",
        "--images_per_class=2",
        "--inference_batch=8",
        "--pipeline_batches=2",
        "--matmul_size=256",
        "--objectives=triplet,batch_hard,contrastive,normsoftmax",
        "--classifier_weight=1",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = _json_lines(result.stdout)
    # The classifier goes beside the mining loss only.
    assert [line["classifier_weight"] for line in lines] == [0, 1, 0, 0]
    assert [line["objective"] for line in lines] == [
        "triplet",
        "batch_hard",
        "contrastive",
        "normsoftmax",
    ]
    assert [line["images_per_step"] for line in lines] == [12, 4, 8, 4]
    assert [line["samples_per_second"] * line["median_step_seconds"] for line in lines] == (
        pytest.approx([4, 4, 4, 4], rel=0.01)
    )
    # Forward FLOPs of ResNet-8 by hand (see the evaluation bench test) times 3, less the
    # input gradient of the first convolution, which the image does not need.
    first = 2 * 9 * 1024 * 3 * 16
    flops = first + 2 * 9 * (
        2 * 1024 * 16 * 16 + 256 * (16 * 32 + 32 * 32) + 64 * (32 * 64 + 64 * 64)
    )
    for line in lines:
        assert line["median_step_seconds"] > 0 and line["tower_images_per_second"] > 0
        assert line["train_gflop_per_image"] == round((3 * flops - first) / 1e9, 4)
        # Both rates are printed to 0.1 GFLOP/s and the ratio to 0.001.
        achieved, matmul = line["achieved_gflops"], line["matmul_gflops"]
        low = (achieved - 0.05) / (matmul + 0.05) - 0.0005
        high = (achieved + 0.05) / (matmul - 0.05) + 0.0005
        assert low <= line["ratio_to_matmul"] <= high
        assert line["inference_images_per_second"] > 0
        assert line["pipeline_triplets_per_second"] > 0
        assert {"precision", "jit_compile", "concat_tower", "peak_rss_mib"} <= set(line)


def test_throughput_bench_synthetic_mode_skips_the_pipeline_and_times_every_lever():
    result = run_bench(
        "bench/throughput.py",
        "--objectives=triplet,normsoftmax",
        "--depth=8",
        "--steps=1",
        "--batch_size=4",
        "--inference_batch=8",
        "--matmul_size=256",
        "--synthetic",
        "--concat_tower",
        "--rotation_weight=1",
        "--ema_decay=0.99",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    triplet, rotation = _json_lines(result.stdout)
    assert triplet["concat_tower"] is True and triplet["pipeline_triplets_per_second"] is None
    # The rotation task applies to the classifiers only: a step is 4 x 4 images there.
    assert triplet["rotation_weight"] == 0.0 and triplet["images_per_step"] == 12
    assert rotation["rotation_weight"] == 1.0 and rotation["ema_decay"] == 0.99
    assert rotation["images_per_step"] == 16
    seconds = rotation["median_step_seconds"]
    assert abs(rotation["tower_images_per_second"] - 16 / seconds) <= 0.01 * 16 / seconds + 0.1


def test_throughput_bench_times_a_step_beside_a_frozen_teacher():
    result = run_bench(
        "bench/throughput.py",
        "--objectives=triplet,normsoftmax",
        "--depth=8",
        "--steps=1",
        "--batch_size=4",
        "--inference_batch=8",
        "--matmul_size=256",
        "--synthetic",
        "--distill",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    triplet, distilled = _json_lines(result.stdout)
    assert triplet["distill"] is False  # a teacher's scores are for the classifiers only
    assert distilled["distill"] is True and distilled["images_per_step"] == 4
    assert distilled["median_step_seconds"] > 0


def test_evaluation_bench_prints_embedding_and_metric_figures():
    result = run_bench(
        "bench/evaluation.py",
        "--depth=8",
        "--images=100",
        "--batch_size=50",
        "--repeats=1",
        "--splits=90_10,80_20",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    embed, *metrics = _json_lines(result.stdout)
    assert embed["bench"] == "embed" and embed["images_per_second"] > 0
    # ResNet-8 by hand, 2 x H x W x 9 x Cin x Cout per 3x3 convolution: the stem (3 -> 16 at
    # 32x32), two 16 -> 16 at 32x32, 16 -> 32 and 32 -> 32 at 16x16, 32 -> 64 and 64 -> 64 at 8x8.
    flops = 2 * 9 * (1024 * 3 * 16 + 2 * 1024 * 16 * 16 + 256 * (16 * 32 + 32 * 32))
    flops += 2 * 9 * 64 * (32 * 64 + 64 * 64)
    assert embed["gflop_per_image"] == round(flops / 1e9, 4)
    assert embed["matmul_gflops"] > 0
    assert [m["split"] for m in metrics] == ["90_10", "80_20"]
    assert [m["unseen_images"] for m in metrics] == [1000, 2000]
    assert all(m["seconds"] > 0 for m in metrics)


def test_search_bench_prints_each_backend_and_setting_with_its_recall():
    pytest.importorskip("faiss")
    result = run_bench(
        "bench/search.py",
        "--sizes=3000",
        "--dim=8",
        "--queries=20",
        "--latency_queries=5",
        "--repeats=1",
        "--hnsw_ef_search=16,64",
        "--ivf_probes=1,70",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = _json_lines(result.stdout)
    assert [(line["backend"], line["setting"]) for line in lines] == [
        ("exact", ""),
        ("hnsw", "ef_search=16"),
        ("hnsw", "ef_search=64"),
        ("ivf", "probes=1"),
        ("ivf", "probes=70"),
    ]
    exact, *approximate = lines
    assert exact["recall_at_10"] == 1.0 and exact["matmul_seconds"] > 0
    assert exact["ratio_to_matmul"] > 0 and "matmul_seconds" not in approximate[0]
    # Visiting all 70 cells of 3000 / 39 is exhaustive: exact again. One cell is not.
    assert approximate[3]["recall_at_10"] == 1.0 > approximate[2]["recall_at_10"]
    for line in lines:
        assert line["size"] == 3000 and line["queries_per_second"] > 0
        assert 0 < line["p50_ms"] <= line["p99_ms"]


def test_time_to_accuracy_compares_curves_by_hand():
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "bench", "time_to_accuracy.py")
    spec = importlib.util.spec_from_file_location("time_to_accuracy", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    def curve(*points):
        return [{"images": i, "seconds": s, "accuracy": a} for i, s, a in points]

    baseline = curve((1000, 10.0, 0.30), (2000, 20.0, 0.40), (8000, 80.0, 0.45))
    # Not monotonic: 0.40 is first reached at 200 images, though 300 dips below it.
    candidate = curve((100, 2.0, 0.35), (200, 4.0, 0.42), (300, 6.0, 0.38), (400, 8.0, 0.5))
    # The candidate's step is half as fast per image: seconds ratios are half the images'.
    rows, summary = bench.compare(baseline, candidate, baseline_rate=200.0, candidate_rate=100.0)
    assert [r["candidate_images"] for r in rows] == [100, 200, 400]
    assert [r["image_ratio"] for r in rows] == [10.0, 10.0, 20.0]
    assert [r["rate_seconds_ratio"] for r in rows] == [5.0, 5.0, 10.0]
    assert [r["snapshot_seconds_ratio"] for r in rows] == [5.0, 5.0, 10.0]
    assert summary == {
        "reached_every_baseline_point": True,
        "min_image_ratio": 10.0,
        "min_rate_seconds_ratio": 5.0,
        "min_snapshot_seconds_ratio": 5.0,
    }
    # A baseline accuracy the candidate never reaches leaves the factor undefined.
    rows, summary = bench.compare(curve((9000, 90.0, 0.6)), candidate, 200.0, 100.0)
    assert rows[0]["candidate_images"] is None
    assert summary["reached_every_baseline_point"] is False
    assert summary["min_image_ratio"] is None


def test_folder_bench_prints_the_first_and_cached_read_and_an_epoch(tmp_path):
    from PIL import Image

    for c in range(3):
        (tmp_path / f"class{c}").mkdir()
        for i in range(12):
            pixels = np.full((40 + i, 40, 3), 20 * c + i, np.uint8)
            Image.fromarray(pixels).save(tmp_path / f"class{c}" / f"{i}.png")
    result = run_bench("bench/folder.py", f"--data_dir={tmp_path}", "--batch_size=4")
    assert result.returncode == 0, result.stderr[-2000:]
    (line,) = _json_lines(result.stdout)
    assert line["images"] == 36 and line["classes"] == 3 and line["image_shape"] == [32, 32, 3]
    for key in ("first_read", "cached_read"):
        rate, seconds = line[f"{key}_images_per_second"], line[f"{key}_seconds"]
        # The seconds are rounded to 0.01 (first read) and 0.001 (cached read).
        assert rate > 0 and abs(rate * seconds - line["images"]) <= rate * 0.005 + 1
    assert line["epoch_images_per_second"] > 0


def test_step_profile_sums_the_traced_ops_by_kind():
    result = run_bench("bench/profile_step.py", "--depth=8", "--steps=1", "--batch_size=4")
    assert result.returncode == 0, result.stderr[-2000:]
    (line,) = _json_lines(result.stdout)
    kinds = line["kinds_ms_per_step"]
    assert kinds["convolution forward"] > 0 and kinds["convolution filter gradient"] > 0
    assert kinds["batch norm forward"] > 0 and kinds["batch norm gradient"] > 0  # fused
    assert sum(kinds.values()) == pytest.approx(line["ops_ms_per_step"], abs=0.1 * len(kinds))
    assert line["busy_share"] > 0 and line["fused_batch_norm"] is True


def test_serving_bench_times_the_exports_signature_at_each_batch_size():
    result = run_bench(
        "bench/serving.py", "--depth=8", "--precisions=float32", "--batches=1,4", "--repeats=2"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = _json_lines(result.stdout)
    assert [(x["export_precision"], x["batch"]) for x in lines] == [("float32", 1), ("float32", 4)]
    for line in lines:
        # The rate is the batch over the median call.
        assert line["images_per_second"] == pytest.approx(
            1000 * line["batch"] / line["median_call_ms"], rel=0.02
        )


@pytest.mark.slow  # builds and steps a MobileNetV3: make test-slow
def test_throughput_bench_times_a_keras_applications_tower_at_its_size():
    result = run_bench(
        "bench/throughput.py",
        "--objectives=normsoftmax",
        "--backbone=mobilenetv3small",
        "--image_size=64",
        "--batch_size=8",
        "--steps=1",
        "--synthetic",
        "--inference_batch=8",
        "--matmul_size=256",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (line,) = _json_lines(result.stdout)
    assert line["model"] == "mobilenetv3small@64" and line["tower_images_per_second"] > 0
    assert line["train_gflop_per_image"] is None  # counted for the CIFAR ResNet only


def test_the_reference_step_bench_without_pytorch_is_one_line(capsys):
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        pytest.skip("PyTorch is installed here: the bench would time the step")
    result = run_bench("bench/reference_step.py", "--steps=1")
    assert result.returncode == 1 and result.stdout == ""
    assert capsys.readouterr().err.strip() == (
        "error: the reference's step runs in PyTorch: pip install torch."
    )
