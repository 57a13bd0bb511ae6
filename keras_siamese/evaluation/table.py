"""The results table: a row per split, the mean of each recipe's seeds beside the reference's.

A run's record is the small part of its folder that a repository can hold:
`metrics.json` (the protocol on the trained tower, with the training budget)
and `config.flags`. Records sit under a runs folder as `RECIPE/NAME/`; the
records of one recipe and split are the seeds of one configuration, so they
must differ in `--seed` alone. `build_table` reads them and averages each
metric over the seeds; `table.json` is that table, and the markdown and the
figure are drawn from it, never typed by hand.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
import sys
from collections.abc import Callable

from keras_siamese import files
from keras_siamese import workdir as wd
from keras_siamese.errors import UserError
from keras_siamese.evaluation import reference
from keras_siamese.evaluation.results import Accuracy, Metrics

TABLE_JSON = "table.json"
TABLE_MARKDOWN = "table.md"
ONESHOT_BY_SPLIT_FIGURE = "oneshot_by_split.png"
MAIN_RECIPE = "fast"
# The reference's splits, by number of seen classes.
SPLITS = tuple(f"{seen}_{100 - seen}" for seen in range(10, 101, 10))
# Flags that say where a run lives, not what it computes (each seed of a distilled
# recipe learns from its own teacher, a folder trained with that seed).
_NOT_CONFIG = ("--workdir=", "--data_dir=", "--seed=", "--distill_from=")
_DASH = "–"


@dataclasses.dataclass(frozen=True)
class Column:
    """One metric of the table: how to read it from a run, and the reference's figures."""

    key: str
    title: str
    read: Callable[[Metrics], Accuracy | float | None]
    reevaluated: str | None = None  # key in reference.REEVALUATED
    published: str | None = None  # key in reference.PUBLISHED (percent)
    digits: int = 1
    percent: bool = True
    # The pair table's heading of the reference models' column; None: no such column.
    reference_title: str | None = "ref."


def _unseen(read):
    return lambda m: read(m.unseen) if m.unseen else None


def _calibrated(m: Metrics) -> Accuracy | None:
    return m.seen.pair.calibrated.accuracy if m.seen.pair.calibrated else None


COLUMNS = (
    Column(
        "oneshot_first",
        "N-way one-shot, first-image supports",
        _unseen(lambda u: u.oneshot.first_support),
        "oneshot_first",
    ),
    Column(
        "oneshot_random",
        "N-way one-shot, random supports",
        _unseen(lambda u: u.oneshot.random_supports),
        "oneshot_random",
    ),
    Column("5way_1shot", "5-way 1-shot", lambda m: m.episode_accuracy(5, 1), "5way_1shot"),
    Column("5way_5shot", "5-way 5-shot", lambda m: m.episode_accuracy(5, 5), "5way_5shot"),
    Column(
        "recall_at_1",
        "recall@1 (unseen)",
        _unseen(lambda u: u.retrieval.recall_at_1),
        "recall_at_1",
    ),
    Column("map_at_r", "MAP@R (unseen)", _unseen(lambda u: u.retrieval.map_at_r)),
    Column(
        "triplet",
        "triplet accuracy (seen)",
        lambda m: m.seen.triplet_accuracy,
        "triplet",
        published="triplet",
    ),
    Column(
        "roc_auc",
        "ROC AUC (seen pairs)",
        lambda m: m.seen.pair.roc_auc,
        "pair_auc",
        digits=3,
        percent=False,
    ),
    Column(
        "pair_calibrated",
        "pair accuracy, calibrated threshold (seen)",
        _calibrated,
        "pair_fixed",
        published="pair_fixed",
        reference_title="ref. at similarity 0.2",
    ),
    Column(
        "unseen_pairs_calibrated",
        "unseen pairs, balanced, calibrated threshold",
        _unseen(lambda u: u.fewshot_pairs.balanced_calibrated),
        published="fewshot_unbalanced",
    ),
    Column(
        "always_different",
        "the reference's few-shot pair test: answering 'different'",
        _unseen(lambda u: u.fewshot_pairs.reference.always_different),
        "always_different",  # the split's share of 'different' pairs, the same for any model
        reference_title=None,
    ),
)


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One trained run's record: where it is, what it trained, and its metrics."""

    path: str
    recipe: str
    split: str
    seed: int
    config: tuple[str, ...]  # its config.flags lines but where it ran and its seed
    metrics: Metrics

    @property
    def images(self) -> int | None:
        """Images through the tower in training, when the record holds its budget."""
        return self.metrics.budget.images if self.metrics.budget else None

    @property
    def teacher_images(self) -> int | None:
        """A distilled run's teacher's training images, where the record holds them."""
        return self.metrics.budget.teacher_images if self.metrics.budget else None


def _flag(lines: list[str], name: str) -> str | None:
    prefix = f"--{name}="
    values = [line[len(prefix) :] for line in lines if line.startswith(prefix)]
    return values[-1] if values else None


def read_record(folder: str, recipe: str) -> RunRecord:
    """The record in `folder` (metrics.json and config.flags).

    Raises:
        UserError: when either file is missing or unreadable.
    """
    try:
        with open(os.path.join(folder, wd.CONFIG_FILE), encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip()]
        with open(os.path.join(folder, wd.METRICS_FILE), encoding="utf-8") as f:
            metrics = Metrics.from_json(json.load(f))
        split, seed = _flag(lines, "split"), int(_flag(lines, "seed") or 0)
        if not split:
            raise ValueError(f"{wd.CONFIG_FILE} names no --split")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"The run record {folder} is unreadable ({e}).") from None
    config = tuple(line for line in lines if not line.startswith(_NOT_CONFIG))
    return RunRecord(folder, recipe, split, seed, config, metrics)


def find_records(runs_dir: str) -> list[RunRecord]:
    """Every record in a recipe's folder under `runs_dir` (`RECIPE/RUN/`, the recipe the
    path of the run's parent); runs directly in `runs_dir` belong to no recipe."""
    if not os.path.isdir(runs_dir):
        raise UserError(f"--runs_dir={runs_dir} is not a folder.")
    records = []
    for folder, dirs, names in os.walk(runs_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        parent = os.path.relpath(os.path.dirname(folder), runs_dir)
        if wd.METRICS_FILE in names and wd.CONFIG_FILE in names and not parent.startswith("."):
            records.append(read_record(folder, parent))
    return records


def _mean_of_seeds(values: list[Accuracy | float]) -> dict:
    """The seeds' mean; the CI of that mean from each run's own CI; each seed's value."""
    if all(isinstance(v, Accuracy) for v in values):
        means = [v.value for v in values]
        ci = math.sqrt(sum(v.ci95**2 for v in values)) / len(values)
        return {"value": sum(means) / len(means), "ci95": ci, "seeds": means}
    means = [float(v) for v in values]
    return {"value": sum(means) / len(means), "ci95": None, "seeds": means}


def _reference_row(split: str) -> dict:
    published = reference.PUBLISHED.get(split, {})
    reevaluated = reference.REEVALUATED.get(split, {})
    return {
        "reference_models": {
            c.reevaluated: reevaluated.get(c.reevaluated)
            for c in COLUMNS
            if c.reevaluated and reevaluated.get(c.reevaluated) is not None
        },
        "published": {
            c.published: published[c.published] / 100
            for c in COLUMNS
            if c.published and published.get(c.published) is not None
        },
    }


def build_table(records: list[RunRecord]) -> dict:
    """table.json's content: recipe → split → metric → mean, CI and each seed's value.

    Records of one recipe and split that share a seed are not averaged: each is a row of
    its own, keyed `SPLIT (FOLDER)`.

    Raises:
        UserError: when two records of one recipe and split differ in more than their seed.
    """
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for record in records:
        groups.setdefault((record.recipe, record.split), []).append(record)
    recipes: dict[str, dict] = {}
    for (recipe, split), group in sorted(groups.items(), key=lambda kv: _split_order(kv[0])):
        group.sort(key=lambda r: (r.seed, r.path))
        _check_seeds_of_one_run(group)
        if len({r.seed for r in group}) == len(group):
            rows = [(split, group)]
        else:
            rows = [(f"{split} ({os.path.basename(r.path)})", [r]) for r in group]
        for key, runs in rows:
            recipes.setdefault(recipe, {})[key] = _row(runs)
    return {
        "recipes": recipes,
        "reference": {split: _reference_row(split) for split in SPLITS},
    }


def _row(group: list[RunRecord]) -> dict:
    metrics = {}
    for column in COLUMNS:
        values = [column.read(r.metrics) for r in group]
        if all(v is not None for v in values):
            metrics[column.key] = _mean_of_seeds(values)
    return {
        "seeds": [r.seed for r in group],
        "runs": [os.path.basename(r.path) for r in group],
        "images": group[0].images,
        "teacher_images": group[0].teacher_images,
        "metrics": metrics,
    }


def row_keys(runs: dict, splits) -> list[str]:
    """The rows to draw for `splits`: each split, or where its runs share a seed, each of
    those runs' rows (`SPLIT (FOLDER)`)."""
    keys = []
    for split in splits:
        apart = sorted(k for k in runs if k.startswith(f"{split} ("))
        keys += apart or [split]
    return keys


def seen_classes(split: str) -> int:
    """The seen classes a split's name gives (`90_10`: 90); 0 for another name."""
    seen = split.split("_")[0]
    return int(seen) if seen.isdigit() else 0


def _split_order(key: tuple[str, str]) -> tuple:
    recipe, split = key
    return (recipe, seen_classes(split), split)


def _check_seeds_of_one_run(group: list[RunRecord]) -> None:
    first = group[0]
    for other in group[1:]:
        if not wd.same_settings("\n".join(first.config), "\n".join(other.config)):
            differs = sorted(set(other.config) ^ set(first.config))
            raise UserError(
                f"{first.path} and {other.path} (recipe {first.recipe or '.'}, split "
                f"{first.split}) differ in more than their seed: {', '.join(differs)}."
            )


def _percent(value: float | None, column: Column) -> str:
    if value is None:
        return _DASH
    return f"{(100 if column.percent else 1) * value:.{column.digits}f}"


def _cell(entry: dict | None, column: Column) -> str:
    """`69.8 (68.9–70.7)`: the mean of the seeds and their range; one seed: `68.9 ± 0.7`;
    seeds that agree exactly: their value."""
    if entry is None:
        return _DASH
    seeds = entry["seeds"]
    if len(set(seeds)) == 1 and len(seeds) > 1:  # e.g. the split's share of 'different' pairs
        return _percent(entry["value"], column)
    if len(seeds) > 1:
        low, high = _percent(min(seeds), column), _percent(max(seeds), column)
        return f"{_percent(entry['value'], column)} ({low}–{high})"
    if entry["ci95"] is None:
        return _percent(entry["value"], column)
    return f"{_percent(entry['value'], column)} ± {_percent(entry['ci95'], column)}"


_ONESHOT = ("oneshot_first", "oneshot_random", "5way_1shot", "5way_5shot", "recall_at_1")
_PAIRS = ("triplet", "roc_auc", "pair_calibrated", "unseen_pairs_calibrated", "always_different")


def _columns(keys: tuple[str, ...]) -> list[Column]:
    by_key = {c.key: c for c in COLUMNS}
    return [by_key[k] for k in keys]


def _images(images: int | None, teacher_images: int | None = None) -> str:
    if images is None:
        return _DASH
    return f"{images:,}" + (f" + {teacher_images:,} (teacher)" if teacher_images else "")


def _run_cells(key: str, row: dict | None) -> list[str]:
    """A row's first cells: its split (or `SPLIT (FOLDER)`), images and seeds."""
    if row is None:
        return [key, "not trained yet", _DASH]
    images = _images(row["images"], row.get("teacher_images"))
    return [key, images, ", ".join(str(s) for s in row["seeds"])]


def markdown_table(table: dict, recipe: str = MAIN_RECIPE, splits=SPLITS) -> str:
    """The two markdown tables of `recipe`, a row per split, ours beside the reference's.

    The first holds the one-shot metrics of the unseen classes, the second the pair
    metrics with the reference's published columns beside the figures that correct them.
    """
    runs = table["recipes"].get(recipe, {})
    refs = table["reference"]
    lines = _beside_reference(table, recipe, splits, _ONESHOT, with_gain=False).splitlines()
    pairs = _columns(_PAIRS)
    head = _pair_head(pairs)
    lines += ["", head, "|" + " --- |" * (head.count("|") - 1)]
    for key in row_keys(runs, splits):
        row, split = runs.get(key), key.split(" ")[0]
        ours = row["metrics"] if row else {}
        models = refs.get(split, {}).get("reference_models", {})
        published = refs.get(split, {}).get("published", {})
        cells = [key]
        for c in pairs:
            if c.key == "always_different" and c.key not in ours:
                cells.append(_percent(models.get(c.reevaluated), c))  # the split's, not a model's
                continue
            cells.append(_cell(ours.get(c.key), c))
            if c.reevaluated and c.reference_title:
                cells.append(_percent(models.get(c.reevaluated), c))
            if c.published:
                cells.append(_percent(published.get(c.published), c))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


HEADLINE_SPLITS = ("90_10", "50_50")
_HEADLINE = ("5way_1shot", "oneshot_random", "recall_at_1")


def headline_markdown(table: dict, recipe: str = MAIN_RECIPE) -> str:
    """The README's rows: the headline splits' one-shot metrics, ours beside the reference's."""
    return _beside_reference(table, recipe, HEADLINE_SPLITS, _HEADLINE, with_gain=False)


_GAINS = ("5way_1shot", "triplet")


def gains_markdown(table: dict, recipe: str = MAIN_RECIPE, splits=SPLITS) -> str:
    """Every split in one short table: 5-way 1-shot on the unseen classes and triplet
    accuracy on the seen ones, ours beside the reference's models and the difference in
    points."""
    return _beside_reference(table, recipe, splits, _GAINS, with_gain=True)


def _beside_reference(
    table: dict, recipe: str, splits, keys: tuple[str, ...], with_gain: bool
) -> str:
    """A row per split: `recipe`'s metrics `keys`, each beside the reference's models'
    figure and, `with_gain`, the difference in points."""
    columns = _columns(keys)
    runs = table["recipes"].get(recipe, {})
    extra = ("ref.", "gain") if with_gain else ("ref.",)
    titles = ["split", "images", "seeds"] + [t for c in columns for t in (c.title, *extra)]
    lines = ["| " + " | ".join(titles) + " |", "|" + " --- |" * len(titles)]
    for key in row_keys(runs, splits):
        row, split = runs.get(key), key.split(" ")[0]
        models = table["reference"].get(split, {}).get("reference_models", {})
        cells = _run_cells(key, row)
        for c in columns:
            entry = row["metrics"].get(c.key) if row else None
            cells += [_cell(entry, c), _percent(models.get(c.reevaluated), c)]
            if with_gain:
                cells += [_gain(entry, models.get(c.reevaluated), c)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _gain(entry: dict | None, reference_value: float | None, column: Column) -> str:
    if entry is None or reference_value is None:
        return _DASH
    points = (100 if column.percent else 1) * (entry["value"] - reference_value)
    return f"{points:+.{column.digits}f}"


# The reference's own protocol (flags/SPLIT.flags: triplets) trained at a split's fast budget.
REFERENCE_PROTOCOL = "reference_protocol"
# The fast recipe in two generations, the second distilled from the first (flags/distilled.flags).
DISTILLED = "distill"
_RECIPES = ("5way_1shot", "oneshot_random", "recall_at_1", "triplet", "roc_auc")


def recipes_markdown(
    table: dict, recipes: tuple[str, ...] = (MAIN_RECIPE, DISTILLED, REFERENCE_PROTOCOL)
) -> str:
    """The recipes side by side at each split where one beside the first has a run: a row
    a recipe that ran there, with its images, and the reference's 150-epoch models."""
    columns = _columns(_RECIPES)
    titles = ["split", "recipe", "images", "seeds"] + [c.title for c in columns]
    lines = ["| " + " | ".join(titles) + " |", "|" + " --- |" * len(titles)]
    for split in SPLITS:
        ran = [
            recipe
            for recipe in recipes
            if any(k in table["recipes"].get(recipe, {}) for k in row_keys({}, [split]))
            or any(k.startswith(f"{split} (") for k in table["recipes"].get(recipe, {}))
        ]
        if not set(ran) - {recipes[0]}:
            continue
        for recipe in ran:
            runs = table["recipes"][recipe]
            for key in row_keys(runs, [split]):
                row = runs.get(key)
                cells = _run_cells(key, row)
                cells.insert(1, recipe)
                cells += [_cell(row["metrics"].get(c.key) if row else None, c) for c in columns]
                lines.append("| " + " | ".join(cells) + " |")
        models = table["reference"][split]["reference_models"]
        cells = [split, "reference's models", f"{reference.REFERENCE_IMAGES:,}", _DASH]
        cells += [_percent(models.get(c.reevaluated), c) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# Compared runs: `<!-- runs-table: ENTRY,ENTRY,... -->`, each entry a recipe (the folder of
# its runs under docs/results/runs), `RECIPE@SPLIT` for one split of it, or `FOLDER/*` for
# every recipe in a folder, its CONTROL first.
CONTROL = "control"
_COMPARED = ("5way_1shot", "oneshot_random", "recall_at_1", "map_at_r", "triplet")


def _compared_rows(table: dict, entry: str) -> list[tuple[str, str]]:
    """The (recipe, row key) pairs an entry of a runs-table names, in the table's order."""
    recipes = table["recipes"]
    if entry.endswith("/*"):
        folder = entry[:-1]
        names = sorted(
            (r for r in recipes if r.startswith(folder)),
            key=lambda r: (r != folder + CONTROL, r),
        )
    else:
        names = [entry.split("@")[0]]
    split = entry.split("@")[1] if "@" in entry else None
    rows = []
    for name in names:
        if name not in recipes:
            raise UserError(f"No runs of the recipe {name} in the table.")
        keys = sorted(recipes[name], key=lambda k: _split_order(("", k)))
        if split is not None:
            keys = row_keys(recipes[name], [split])
            if not any(k in recipes[name] for k in keys):
                raise UserError(f"No runs of the recipe {name} at split {split} in the table.")
        rows += [(name, key) for key in keys]
    if not rows:
        raise UserError(f"No runs under {entry} in the table.")
    return rows


def runs_markdown(table: dict, entries: list[str]) -> str:
    """A row per recipe and split that `entries` name (see `_compared_rows`): images,
    seeds and the compared metrics."""
    columns = _columns(_COMPARED)
    titles = ["runs", "split", "images", "seeds"] + [c.title for c in columns]
    lines = ["| " + " | ".join(titles) + " |", "|" + " --- |" * len(titles)]
    for entry in entries:
        for recipe, key in _compared_rows(table, entry):
            row = table["recipes"][recipe][key]
            cells = [recipe, *_run_cells(key, row)]
            cells += [_cell(row["metrics"].get(c.key), c) for c in columns]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _pair_head(columns: list[Column]) -> str:
    titles = ["split"]
    for c in columns:
        titles.append(c.title)
        if c.reevaluated and c.reference_title:
            titles.append(c.reference_title)
        if c.published:
            titles.append("pub.")
    return "| " + " | ".join(titles) + " |"


def plot_oneshot_by_split(table: dict, path: str, recipe: str = MAIN_RECIPE) -> None:
    """5-way 1-shot and N-way one-shot against the number of seen classes, ours and the
    reference's models; our bars span the seeds' CI of the mean, or their range if wider."""
    from keras_siamese.evaluation import plots  # matplotlib only when a figure is drawn

    plt = plots.plt
    runs = table["recipes"].get(recipe, {})
    panels = (
        ("5way_1shot", "5-way 1-shot"),
        ("oneshot_random", "N-way one-shot, random supports (N: unseen classes)"),
    )
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (key, title) in zip(axes, panels, strict=True):
        ref_x, ref_y = [], []
        for split in SPLITS:
            value = table["reference"][split]["reference_models"].get(key)
            if value is not None:
                ref_x.append(seen_classes(split))
                ref_y.append(100 * value)
        ax.plot(ref_x, ref_y, "s--", color="tab:gray", label="reference's models, 150 epochs")
        xs, ys, lows, highs = [], [], [], []
        for split in SPLITS:
            entry = runs.get(split, {}).get("metrics", {}).get(key)
            if entry is None:
                continue
            mean = 100 * entry["value"]
            half = 100 * max(entry["ci95"] or 0.0, (max(entry["seeds"]) - min(entry["seeds"])) / 2)
            xs.append(seen_classes(split))
            ys.append(mean)
            lows.append(half)
            highs.append(half)
        ax.errorbar(
            xs, ys, yerr=[lows, highs], fmt="o-", color="tab:blue", capsize=3,
            label=f"{recipe} recipe, 10 epochs (mean of seeds)",
        )  # fmt: skip
        protocol = table["recipes"].get(REFERENCE_PROTOCOL, {})
        points = [
            (seen_classes(split), 100 * protocol[split]["metrics"][key]["value"])
            for split in SPLITS
            if key in protocol.get(split, {}).get("metrics", {})
        ]
        if points:
            ax.plot(
                *zip(*points, strict=True), "^", color="tab:orange", markersize=8,
                label="reference protocol at the fast recipe's images",
            )  # fmt: skip
        ax.set_xlabel("seen classes (of 100)")
        ax.set_ylabel("accuracy on unseen classes (%)")
        ax.set_title(title)
        ax.set_xticks(range(10, 100, 10))
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    plots.save_figure(fig, path)


def write_table(runs_dir: str, out_dir: str) -> list[str]:
    """Writes table.json, table.md and the one-shot figure from the records in `runs_dir`.

    Returns:
        The paths written; none when `runs_dir` holds no record.
    """
    records = find_records(runs_dir)
    if not records:
        return []
    table = build_table(records)
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, name) for name in (TABLE_JSON, TABLE_MARKDOWN)]
    plot_oneshot_by_split(table, os.path.join(out_dir, ONESHOT_BY_SPLIT_FIGURE))
    files.write_text_atomic(paths[1], markdown_table(table))
    files.write_json_atomic(paths[0], table)
    return [*paths, os.path.join(out_dir, ONESHOT_BY_SPLIT_FIGURE)]


# Markers around the generated tables in markdown files (docs/results.md, README.md).
BLOCKS = {
    "results-table": markdown_table,
    "headline-table": headline_markdown,
    "gains-table": gains_markdown,
    "recipes-table": recipes_markdown,
}


# A block of compared runs: <!-- runs-table: ENTRIES --> ... <!-- /runs-table: ENTRIES -->
_RUNS_BLOCK = re.compile(r"<!-- (runs-table: [^ ]+) -->\n")


def splice(text: str, table: dict) -> str:
    """`text` with each block between `<!-- NAME -->` and `<!-- /NAME -->` redrawn from `table`
    (a `runs-table: ENTRIES` block: `runs_markdown` of those entries)."""
    renders = dict(BLOCKS)
    for name in _RUNS_BLOCK.findall(text):
        entries = name.split(": ", 1)[1].split(",")
        renders[name] = functools.partial(runs_markdown, entries=entries)
    for name, render in renders.items():
        start, end = f"<!-- {name} -->\n", f"<!-- /{name} -->"
        first = text.find(start)
        if first < 0:
            continue
        last = text.find(end, first)
        if last < 0:
            raise UserError(f"The block <!-- {name} --> has no closing <!-- /{name} -->.")
        text = text[: first + len(start)] + render(table) + text[last:]
    return text


def main(argv: list[str]) -> int:
    """`python -m keras_siamese.evaluation.table TABLE_JSON FILE...`: redraws FILEs' blocks."""
    if len(argv) < 2:
        print("usage: python -m keras_siamese.evaluation.table TABLE_JSON FILE...", file=sys.stderr)
        return 2
    try:
        with open(argv[0], encoding="utf-8") as f:
            table = json.load(f)
        for path in argv[1:]:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            new = splice(text, table)
            if new != text:
                files.write_text_atomic(path, new)
                print(f"Updated {path}")
    except (OSError, ValueError, KeyError, UserError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
