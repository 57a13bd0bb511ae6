"""The results report: every run's eval.json in two markdown tables and two bar charts.

Table 1 holds the reference's own metrics (triplet, binary, few-shot pair
test) next to its published numbers; table 2 the corrected ones (calibrated
pair accuracy, AUC, N-way one-shot, episodes, retrieval) next to the
reference's models re-evaluated with the same protocol. Each row states the
run's training budget, so a short run is never read as a reproduction.
"""

from __future__ import annotations

import dataclasses
import json
import os

from keras_siamese import files
from keras_siamese import workdir as wd
from keras_siamese.errors import UserError
from keras_siamese.evaluation import reference, table
from keras_siamese.evaluation.results import (
    Accuracy,
    CurvePoint,
    EvalReport,
    LearningCurve,
    Metrics,
    RunFacts,
)

REPORT_FILE = "results.md"
FEWSHOT_FIGURE = "fewshot_by_split.png"
ONESHOT_FIGURE = "oneshot_by_run.png"
CURVES_FIGURE = "learning_curves.png"
_DASH = "–"


@dataclasses.dataclass(frozen=True)
class RunEvaluation:
    """One run's eval.json, named by its folder, with its learning curve if it has one."""

    name: str
    report: EvalReport
    curve: list[CurvePoint] | None = None

    @property
    def split(self) -> str:
        return self.report.run.split

    @property
    def images_per_epoch(self) -> int | None:
        """Images through the tower per training epoch, when the run recorded its budget."""
        budget = self.report.run.budget
        return budget.images_per_epoch if budget else None

    @property
    def metrics(self) -> Metrics:
        return self.report.metrics


def find_evaluations(runs_dir: str) -> list[RunEvaluation]:
    """Every eval.json under `runs_dir`, ordered by split.

    Raises:
        UserError: when `runs_dir` is missing or an eval.json is unreadable.
    """
    if not os.path.isdir(runs_dir):
        raise UserError(f"--runs_dir={runs_dir} is not a folder.")
    found = []
    for folder, dirs, names in os.walk(runs_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if wd.EVAL_FILE not in names:
            continue
        path = os.path.join(folder, wd.EVAL_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                content = EvalReport.from_json(json.load(f))
            if not isinstance(content.run.split, str):
                raise ValueError("not an eval.json of eval_main.py")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise UserError(
                f"{path} is unreadable ({e}): rerun eval_main.py on that run."
            ) from None
        curve = None
        curve_path = os.path.join(folder, wd.CURVE_FILE)
        if os.path.exists(curve_path):
            try:
                with open(curve_path, encoding="utf-8") as f:
                    curve = LearningCurve.from_json(json.load(f)).points
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                raise UserError(f"{curve_path} is unreadable ({e}).") from None
        found.append(RunEvaluation(os.path.relpath(folder, runs_dir), content, curve))
    return sorted(found, key=lambda e: (table.seen_classes(e.split), e.name))


def _pct(acc: Accuracy | None) -> str:
    if acc is None:
        return _DASH
    return f"{100 * acc.value:.1f} ± {100 * acc.ci95:.1f}"


def _value(acc: Accuracy | None) -> float | None:
    return acc.value if acc else None


def _ref(value: float | None, scale: float = 100.0, digits: int = 1) -> str:
    return _DASH if value is None else f"{scale * value:.{digits}f}"


def _reference_rows(evaluation: RunEvaluation) -> tuple[dict, dict]:
    if evaluation.report.run.dataset != "cifar100":
        return {}, {}
    split = evaluation.split
    return reference.PUBLISHED.get(split, {}), reference.REEVALUATED.get(split, {})


def budget_text(run: RunFacts) -> str:
    """`triplet, depth 56, 150 ep × 390 steps × 384 images (100% of the reference's), 31 h`;
    `batch_hard + classifier × 1` for mining beside a classifier, and `, from W/export`
    for a run that started from an earlier run's weights."""
    budget = run.budget
    if not budget:
        return _DASH
    per_step = budget.tower_images_per_step
    share = 100 * budget.images / reference.REFERENCE_IMAGES
    seconds = budget.train_seconds
    if seconds >= 3600:
        wall = f"{seconds / 3600:.1f} h"
    elif seconds >= 60:
        wall = f"{seconds / 60:.0f} min"
    else:
        wall = f"{seconds:.0f} s"
    start = f", from {budget.init_from}" if budget.init_from else ""
    objective = budget.objective
    if budget.classifier_weight:
        objective += f" + classifier × {budget.classifier_weight:g}"
    return (
        f"{objective}, depth {run.depth}, {budget.epochs} ep "
        f"× {budget.steps_per_epoch} steps × {per_step} images ({share:.2g}% of the "
        f"reference's), {wall}{start}"
    )


def _corrected_row(name: str, split: str, metrics: Metrics, ref: dict) -> str:
    pair = metrics.seen.pair
    unseen = metrics.unseen
    oneshot = unseen.oneshot if unseen else None
    retrieval = unseen.retrieval if unseen else None
    ways = f" ({oneshot.ways}-way)" if oneshot else ""
    return (
        f"| {name} | {split}{ways} "
        f"| {_pct(pair.calibrated.accuracy if pair.calibrated else None)} "
        f"| {pair.roc_auc:.3f} | {_ref(ref.get('pair_auc'), 1.0, 3)} "
        f"| {_pct(oneshot and oneshot.first_support)} | {_ref(ref.get('oneshot_first'))} "
        f"| {_pct(metrics.random_support_accuracy)} | {_ref(ref.get('oneshot_random'))} "
        f"| {_pct(metrics.episode_accuracy(5, 1))} | {_ref(ref.get('5way_1shot'))} "
        f"| {_pct(metrics.episode_accuracy(5, 5))} | {_ref(ref.get('5way_5shot'))} "
        f"| {_pct(retrieval and retrieval.recall_at_1)} | {_ref(ref.get('recall_at_1'))} "
        f"| {_pct(retrieval and retrieval.map_at_r)} |"
    )


def results_markdown(evaluations: list[RunEvaluation], with_curves: bool = False) -> str:
    """The two results tables, in percent with 95% confidence intervals."""
    lines = [
        "# Results",
        "",
        "Accuracies in percent, ± the half-width of the 95% confidence interval. "
        "*pub.*: the reference's published number; *ref.*: the reference's own trained "
        "models re-evaluated with this protocol. The budget column says how much training "
        "each run had; only runs near 100% of the reference's images through the tower "
        "reproduce it.",
        "",
        "## The reference's metrics",
        "",
        "| run | split | budget | triplet | pub. | binary @ fixed threshold | pub. | "
        "few-shot pairs (reference test) | pub. | always 'different' |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e in evaluations:
        published, _ = _reference_rows(e)
        seen, unseen = e.metrics.seen, e.metrics.unseen
        fewshot = unseen.fewshot_pairs.reference if unseen else None
        lines.append(
            f"| {e.name} | {e.split} | {budget_text(e.report.run)} "
            f"| {_pct(seen.triplet_accuracy)} | {_ref(published.get('triplet'), 1)} "
            f"| {_pct(seen.pair.fixed.accuracy)} | {_ref(published.get('pair_fixed'), 1)} "
            f"| {_pct(fewshot.accuracy if fewshot else None)} "
            f"| {_ref(published.get('fewshot_unbalanced'), 1)} "
            f"| {_ref(fewshot.always_different) if fewshot else _DASH} |"
        )
    lines += [
        "",
        "## The corrected metrics",
        "",
        "| run | split | pair (calibrated) | AUC | ref. | N-way 1-shot (first) | ref. "
        "| N-way 1-shot (random) | ref. | 5-way 1-shot | ref. | 5-way 5-shot | ref. "
        "| recall@1 | ref. | MAP@R |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
        "| --- | --- | --- |",
    ]
    for e in evaluations:
        _, ref = _reference_rows(e)
        lines.append(_corrected_row(e.name, e.split, e.metrics, ref))
        # Test-time options: extra rows under the protocol's own, never in its place.
        for row in e.metrics.with_options or ():
            name = f"{e.name} (tta={row.tta}, center={row.center})"
            lines.append(_corrected_row(name, e.split, row.metrics, ref))
    lines += [
        "",
        f"![few-shot accuracy per split]({FEWSHOT_FIGURE})",
        "",
        f"![one-shot accuracy per split]({ONESHOT_FIGURE})",
        "",
    ]
    if with_curves:
        lines += [
            "Learning curves (each snapshot: seen-class metrics on the first 20 test images of "
            "each seen class, unseen-class metrics on all unseen test images):",
            "",
            f"![learning curves]({CURVES_FIGURE})",
            "",
        ]
    return "\n".join(lines)


def _bar_chart(groups: list[str], series: dict[str, list], title: str, path: str) -> None:
    import numpy as np

    from keras_siamese.evaluation import plots  # matplotlib only when a figure is drawn

    width = 0.8 / len(series)
    plt = plots.plt
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(groups) + 2), 4.2))
    x = np.arange(len(groups))
    for i, (label, values) in enumerate(series.items()):
        heights = [np.nan if v is None else 100 * v for v in values]
        ax.bar(x + (i - (len(series) - 1) / 2) * width, heights, width, label=label)
    ax.set_xticks(x, groups, fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    fig.tight_layout()
    plots.save_figure(fig, path)


def plot_fewshot_by_split(evaluations: list[RunEvaluation], path: str) -> None:
    """The reference's bar chart (few-shot accuracy per split), redrawn with ours."""
    groups, published, ref_ours, always, oneshot = [], [], [], [], []
    for e in evaluations:
        pub, _ = _reference_rows(e)
        unseen = e.metrics.unseen
        fewshot = unseen.fewshot_pairs.reference if unseen else None
        groups.append(f"{e.split}\n{e.name}")
        unbalanced = pub.get("fewshot_unbalanced")
        published.append(unbalanced / 100 if unbalanced else None)
        ref_ours.append(_value(fewshot.accuracy) if fewshot else None)
        always.append(fewshot.always_different if fewshot else None)
        oneshot.append(_value(e.metrics.random_support_accuracy))
    _bar_chart(
        groups,
        {
            "reference, published (few-shot pair test)": published,
            "ours, same test": ref_ours,
            "always 'different' on that test": always,
            "ours, N-way one-shot (random supports)": oneshot,
        },
        "Few-shot accuracy per split",
        path,
    )


def plot_oneshot_by_run(evaluations: list[RunEvaluation], path: str) -> None:
    """N-way one-shot and 5-way 1-shot accuracy per split, ours beside the reference's models."""
    groups, series = [], {k: [] for k in ("ours N-way", "ref. N-way", "ours 5w1s", "ref. 5w1s")}
    for e in evaluations:
        _, ref = _reference_rows(e)
        groups.append(f"{e.split}\n{e.name}")
        series["ours N-way"].append(_value(e.metrics.random_support_accuracy))
        series["ref. N-way"].append(ref.get("oneshot_random"))
        series["ours 5w1s"].append(_value(e.metrics.episode_accuracy(5, 1)))
        series["ref. 5w1s"].append(ref.get("5way_1shot"))
    _bar_chart(groups, series, "One-shot classification of unseen classes", path)


def write_report(runs_dir: str, out_dir: str) -> list[str]:
    """Writes the reports of `runs_dir` to `out_dir`; returns the paths written.

    The runs' eval.json files give results.md and its figures; their training
    records (metrics.json and config.flags, as `table` reads them) give the
    per-split table.

    Raises:
        UserError: when `runs_dir` holds neither, or a file of it is unreadable.
    """
    evaluations = find_evaluations(runs_dir)
    written = table.write_table(runs_dir, out_dir)
    if evaluations:
        written = _write_run_report(evaluations, out_dir) + written
    if not written:
        raise UserError(
            f"--runs_dir={runs_dir} holds no {wd.EVAL_FILE} and no run record "
            f"({wd.METRICS_FILE} beside {wd.CONFIG_FILE}): train a run, or run "
            "eval_main.py --workdir=RUN first."
        )
    return written


def _write_run_report(evaluations: list[RunEvaluation], out_dir: str) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    fewshot = os.path.join(out_dir, FEWSHOT_FIGURE)
    oneshot = os.path.join(out_dir, ONESHOT_FIGURE)
    plot_fewshot_by_split(evaluations, fewshot)
    plot_oneshot_by_run(evaluations, oneshot)
    written = [fewshot, oneshot]
    curves = {e.name: e.curve for e in evaluations if e.curve}
    if curves:
        from keras_siamese.evaluation import plots

        written.append(os.path.join(out_dir, CURVES_FIGURE))
        per_epoch = {e.name: e.images_per_epoch for e in evaluations if e.curve}
        plots.plot_learning_curves(curves, written[-1], per_epoch)
    markdown = os.path.join(out_dir, REPORT_FILE)
    files.write_text_atomic(markdown, results_markdown(evaluations, with_curves=bool(curves)))
    return [markdown, *written]
