"""The results report: every run's eval.json in two markdown tables and two bar charts.

Table 1 holds the reference's own metrics (triplet, binary, few-shot pair
test) next to its published numbers; table 2 the corrected ones (calibrated
pair accuracy, AUC, N-way one-shot, episodes, retrieval) next to the
reference's models re-evaluated with the same protocol. Each row states the
run's training budget, so a short run is never read as a reproduction.
"""

from __future__ import annotations

import json
import os

from keras_siamese import files
from keras_siamese import workdir as wd
from keras_siamese.errors import UserError
from keras_siamese.evaluation import reference

REPORT_FILE = "results.md"
FEWSHOT_FIGURE = "fewshot_by_split.png"
ONESHOT_FIGURE = "oneshot_by_split.png"
CURVES_FIGURE = "learning_curves.png"
_DASH = "–"


def find_evaluations(runs_dir: str) -> list[tuple[str, dict]]:
    """Every eval.json under `runs_dir`, as (run name, content), ordered by split.

    Raises:
        UserError: when `runs_dir` is missing, holds no eval.json, or one is unreadable.
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
                content = json.load(f)
            if not isinstance(content["run"]["split"], str) or "seen" not in content:
                raise ValueError("not an eval.json of eval_main.py")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UserError(
                f"{path} is unreadable ({e}): rerun eval_main.py on that run."
            ) from None
        curve_path = os.path.join(folder, wd.CURVE_FILE)
        if os.path.exists(curve_path):
            try:
                with open(curve_path, encoding="utf-8") as f:
                    content["learning_curve"] = json.load(f)["points"]
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise UserError(f"{curve_path} is unreadable ({e}).") from None
        found.append((os.path.relpath(folder, runs_dir), content))
    if not found:
        raise UserError(
            f"--runs_dir={runs_dir} holds no {wd.EVAL_FILE}: run eval_main.py --workdir=RUN first."
        )
    return sorted(found, key=lambda item: (_seen_count(item[1]), item[0]))


def _seen_count(content: dict) -> int:
    try:
        return int(content["run"]["split"].split("_")[0])
    except (ValueError, AttributeError):
        return 0


def _pct(acc: dict | None) -> str:
    if not acc:
        return _DASH
    return f"{100 * acc['value']:.1f} ± {100 * acc['ci95']:.1f}"


def _ref(value: float | None, scale: float = 100.0, digits: int = 1) -> str:
    return _DASH if value is None else f"{scale * value:.{digits}f}"


def _reference_rows(content: dict) -> tuple[dict, dict]:
    run = content["run"]
    if run.get("dataset") != "cifar100":
        return {}, {}
    split = run["split"]
    return reference.PUBLISHED.get(split, {}), reference.REEVALUATED.get(split, {})


def budget_text(run: dict) -> str:
    """`triplet, depth 56, 150 ep × 390 steps × 384 images (100% of the reference's), 31 h`."""
    budget = run.get("budget")
    if not budget:
        return _DASH
    per_step = budget.get("images_per_step", 3 * budget["batch_size"])
    images = budget["epochs"] * budget["steps_per_epoch"] * per_step
    share = 100 * images / reference.REFERENCE_IMAGES
    seconds = budget.get("train_seconds", 0)
    if seconds >= 3600:
        wall = f"{seconds / 3600:.1f} h"
    elif seconds >= 60:
        wall = f"{seconds / 60:.0f} min"
    else:
        wall = f"{seconds:.0f} s"
    return (
        f"{budget.get('objective', 'triplet')}, depth {run.get('depth')}, {budget['epochs']} ep "
        f"× {budget['steps_per_epoch']} steps × {per_step} images ({share:.2g}% of the "
        f"reference's), {wall}"
    )


def _episode(content: dict, ways: int, shots: int) -> dict | None:
    for ep in content.get("unseen", {}).get("episodes", []):
        if ep["ways"] == ways and ep["shots"] == shots:
            return ep["accuracy"]
    return None


def results_markdown(evaluations: list[tuple[str, dict]], with_curves: bool = False) -> str:
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
    for name, c in evaluations:
        published, _ = _reference_rows(c)
        seen, unseen = c["seen"], c.get("unseen", {})
        fewshot = unseen.get("fewshot_pairs", {}).get("reference")
        lines.append(
            f"| {name} | {c['run']['split']} | {budget_text(c['run'])} "
            f"| {_pct(seen['triplet_accuracy'])} | {_ref(published.get('triplet'), 1)} "
            f"| {_pct(seen['pair']['fixed']['accuracy'])} | {_ref(published.get('binary'), 1)} "
            f"| {_pct(fewshot['accuracy'] if fewshot else None)} "
            f"| {_ref(published.get('fewshot'), 1)} "
            f"| {_ref(fewshot['always_different']) if fewshot else _DASH} |"
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
    for name, c in evaluations:
        _, ref = _reference_rows(c)
        pair = c["seen"]["pair"]
        unseen = c.get("unseen", {})
        oneshot = unseen.get("oneshot", {})
        ways = f" ({oneshot['ways']}-way)" if oneshot else ""
        retrieval = unseen.get("retrieval", {})
        lines.append(
            f"| {name} | {c['run']['split']}{ways} "
            f"| {_pct(pair.get('calibrated', {}).get('accuracy'))} "
            f"| {pair['roc_auc']:.3f} | {_ref(ref.get('pair_auc'), 1.0, 3)} "
            f"| {_pct(oneshot.get('first_support'))} | {_ref(ref.get('oneshot_first'))} "
            f"| {_pct(oneshot.get('random_supports'))} | {_ref(ref.get('oneshot_random'))} "
            f"| {_pct(_episode(c, 5, 1))} | {_ref(ref.get('5way_1shot'))} "
            f"| {_pct(_episode(c, 5, 5))} | {_ref(ref.get('5way_5shot'))} "
            f"| {_pct(retrieval.get('recall_at_1'))} | {_ref(ref.get('recall_at_1'))} "
            f"| {_pct(retrieval.get('map_at_r'))} |"
        )
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    width = 0.8 / len(series)
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
    try:
        files.write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    finally:
        plt.close(fig)


def plot_fewshot_by_split(evaluations: list[tuple[str, dict]], path: str) -> None:
    """The reference's bar chart (few-shot accuracy per split), redrawn with ours."""
    groups, published, ref_ours, always, oneshot = [], [], [], [], []
    for name, c in evaluations:
        pub, _ = _reference_rows(c)
        fewshot = c.get("unseen", {}).get("fewshot_pairs", {}).get("reference")
        groups.append(f"{c['run']['split']}\n{name}")
        published.append(pub.get("fewshot") / 100 if pub.get("fewshot") else None)
        ref_ours.append(fewshot["accuracy"]["value"] if fewshot else None)
        always.append(fewshot["always_different"] if fewshot else None)
        oneshot.append(
            c.get("unseen", {}).get("oneshot", {}).get("random_supports", {}).get("value")
        )
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


def plot_oneshot_by_split(evaluations: list[tuple[str, dict]], path: str) -> None:
    """N-way one-shot and 5-way 1-shot accuracy per split, ours beside the reference's models."""
    groups, series = [], {k: [] for k in ("ours N-way", "ref. N-way", "ours 5w1s", "ref. 5w1s")}
    for name, c in evaluations:
        _, ref = _reference_rows(c)
        oneshot = c.get("unseen", {}).get("oneshot", {})
        episode = _episode(c, 5, 1)
        groups.append(f"{c['run']['split']}\n{name}")
        series["ours N-way"].append(oneshot.get("random_supports", {}).get("value"))
        series["ref. N-way"].append(ref.get("oneshot_random"))
        series["ours 5w1s"].append(episode["value"] if episode else None)
        series["ref. 5w1s"].append(ref.get("5way_1shot"))
    _bar_chart(groups, series, "One-shot classification of unseen classes", path)


def write_report(runs_dir: str, out_dir: str) -> list[str]:
    """Writes results.md and its two figures to `out_dir`; returns their paths."""
    evaluations = find_evaluations(runs_dir)
    os.makedirs(out_dir, exist_ok=True)
    fewshot = os.path.join(out_dir, FEWSHOT_FIGURE)
    oneshot = os.path.join(out_dir, ONESHOT_FIGURE)
    plot_fewshot_by_split(evaluations, fewshot)
    plot_oneshot_by_split(evaluations, oneshot)
    written = [fewshot, oneshot]
    curves = {name: c["learning_curve"] for name, c in evaluations if "learning_curve" in c}
    if curves:
        from keras_siamese.evaluation import plots

        written.append(os.path.join(out_dir, CURVES_FIGURE))
        plots.plot_learning_curves(curves, written[-1])
    table = os.path.join(out_dir, REPORT_FILE)
    files.write_text_atomic(table, results_markdown(evaluations, with_curves=bool(curves)))
    return [table, *written]
