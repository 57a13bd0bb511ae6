"""Time to accuracy: how soon candidate runs reach what a baseline run reached (figures).

    python bench/time_to_accuracy.py --baseline=runs/race/triplet \
        --candidates=runs/race/fast_5k,runs/race/fast_44k \
        --baseline_rate=181.2 --candidate_rate=180.1 [--metric=5way_1shot] [--figure=PATH]

Every run needs its learning curve (`eval_main.py --workdir=W --snapshots`).
For each snapshot of the baseline (N images through the tower, accuracy A),
and each candidate run, prints a JSON line with the first snapshot of the
candidate that reaches A: its images, the ratio of images, and the ratio of
seconds, counted two ways: at the step rates `--baseline_rate` and
`--candidate_rate` (images per second of each objective, measured side by
side by `bench/throughput.py`), and as the snapshots' own training seconds
(meaningful only when both runs had the machine alone). A last line per
candidate gives the smallest ratios over the baseline's snapshots: the
time-to-accuracy factor that holds for every N up to the baseline's budget.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from keras_siamese import workdir as wd  # noqa: E402
from keras_siamese.errors import UserError  # noqa: E402
from keras_siamese.evaluation import plots  # noqa: E402
from keras_siamese.evaluation.results import LearningCurve  # noqa: E402
from keras_siamese.serving import metadata as export_metadata  # noqa: E402

METRICS = ("5way_1shot", "oneshot", "triplet")
_RATIO_KEYS = ("image_ratio", "rate_seconds_ratio", "snapshot_seconds_ratio")
_BASELINE = flags.DEFINE_string("baseline", None, "Workdir of the baseline run.")
_CANDIDATES = flags.DEFINE_list("candidates", [], "Workdirs of the candidate runs.")
_BASELINE_RATE = flags.DEFINE_float(
    "baseline_rate", None, "Images per second of the baseline's training step."
)
_CANDIDATE_RATE = flags.DEFINE_float(
    "candidate_rate", None, "Images per second of the candidates' training step."
)
_METRIC = flags.DEFINE_enum("metric", "5way_1shot", METRICS, "The accuracy compared.")
_FIGURE = flags.DEFINE_string("figure", None, "Also draw the curves against images here.")


def read_curve(workdir: str, metric: str) -> list[dict]:
    """The run's snapshots as `{"images", "seconds", "accuracy"}`, in training order.

    Raises:
        UserError: when the run has no learning curve or no budget to count images by.
    """
    path = os.path.join(workdir, wd.CURVE_FILE)
    try:
        with open(path) as f:
            curve = LearningCurve.from_json(json.load(f))
    except (OSError, ValueError) as e:
        raise UserError(
            f"{path} is not a readable learning curve ({e}): run "
            f"eval_main.py --workdir={workdir} --snapshots first."
        ) from None
    metrics = export_metadata.read(os.path.join(workdir, wd.EXPORT_DIR)).metrics
    if metrics is None or metrics.budget is None:
        raise UserError(f"{workdir}'s export records no training budget to count images by.")
    per_epoch = metrics.budget.images_per_epoch
    series = plots.curve_series(curve.points)
    return [
        {"images": p.epoch * per_epoch, "seconds": p.train_seconds, "accuracy": value}
        for p, value in zip(curve.points, series[metric], strict=True)
        if value is not None
    ]


def first_reaching(curve: list[dict], accuracy: float) -> dict | None:
    """The first point of `curve` at or above `accuracy`, or None if it never gets there."""
    return next((p for p in curve if p["accuracy"] >= accuracy), None)


def compare(
    baseline: list[dict], candidate: list[dict], baseline_rate: float, candidate_rate: float
) -> tuple[list[dict], dict]:
    """Per baseline point, when the candidate reached it; and the smallest ratios.

    A ratio is the baseline's cost over the candidate's: 10 means the
    candidate needed a tenth. The summary's ratios are None when the
    candidate never reached one of the baseline's accuracies.
    """
    rows = []
    for point in baseline:
        hit = first_reaching(candidate, point["accuracy"])
        row = {"baseline_images": point["images"], "accuracy": round(point["accuracy"], 4)}
        if hit is None:
            row.update(dict.fromkeys(_RATIO_KEYS), candidate_images=None)
        else:
            image_ratio = point["images"] / hit["images"]
            row.update(
                candidate_images=hit["images"],
                image_ratio=round(image_ratio, 2),
                rate_seconds_ratio=round(image_ratio * candidate_rate / baseline_rate, 2),
                snapshot_seconds_ratio=round(point["seconds"] / hit["seconds"], 2),
            )
        rows.append(row)
    reached = all(r["candidate_images"] is not None for r in rows)
    summary = {"reached_every_baseline_point": reached}
    for key in _RATIO_KEYS:
        summary[f"min_{key}"] = min(r[key] for r in rows) if reached and rows else None
    return rows, summary


def main(argv: list[str]) -> None:
    del argv
    if not _BASELINE.value or not _CANDIDATES.value:
        raise app.UsageError("--baseline and --candidates are required.")
    if not (_BASELINE_RATE.value and _CANDIDATE_RATE.value):
        raise app.UsageError("--baseline_rate and --candidate_rate are required (images/s).")
    try:
        baseline = read_curve(_BASELINE.value, _METRIC.value)
        candidates = {w: read_curve(w, _METRIC.value) for w in _CANDIDATES.value}
    except UserError as e:
        sys.exit(f"error: {e}")
    for name, curve in candidates.items():
        rows, summary = compare(baseline, curve, _BASELINE_RATE.value, _CANDIDATE_RATE.value)
        for row in rows:
            print(json.dumps({"candidate": name, "metric": _METRIC.value, **row}))
        print(json.dumps({"candidate": name, "metric": _METRIC.value, "summary": summary}))
    if _FIGURE.value:
        runs = {_BASELINE.value: baseline, **candidates}
        curves = {
            os.path.basename(os.path.normpath(name)): [(p["images"], p["accuracy"]) for p in curve]
            for name, curve in runs.items()
        }
        plots.plot_accuracy_against_images(curves, f"{_METRIC.value} accuracy (%)", _FIGURE.value)


if __name__ == "__main__":
    app.run(main)
