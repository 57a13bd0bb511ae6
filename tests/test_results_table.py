"""The results table: seeds averaged by hand-checked rules, and the committed copies in step."""

from __future__ import annotations

import json
import math
import os
import shutil

import pytest

from keras_siamese.errors import UserError
from keras_siamese.evaluation import table
from tests.conftest import ROOT, program_error, program_output

RUNS = os.path.join(ROOT, "docs", "results", "runs")
CONTROL = os.path.join(RUNS, "screening_90_10", "control", "seed_0")


def _record(folder, seed: int, five_way: tuple[float, float], split="90_10", extra=()) -> None:
    """A copy of a committed record with its seed, split and 5-way 1-shot (value, CI) set."""
    os.makedirs(folder)
    with open(os.path.join(CONTROL, "metrics.json")) as f:
        metrics = json.load(f)
    episode = metrics["unseen"]["episodes"][0]
    assert (episode["ways"], episode["shots"]) == (5, 1)
    episode["accuracy"].update(value=five_way[0], ci95=five_way[1])
    with open(os.path.join(folder, "metrics.json"), "w") as f:
        json.dump(metrics, f)
    with open(os.path.join(CONTROL, "config.flags")) as f:
        lines = [line.strip() for line in f if line.strip()]
    lines = [
        f"--seed={seed}"
        if x.startswith("--seed=")
        else f"--split={split}"
        if x.startswith("--split=")
        else x
        for x in lines
    ]
    with open(os.path.join(folder, "config.flags"), "w") as f:
        f.write("\n".join([*lines, *extra]) + "\n")


def test_two_seeds_give_their_mean_range_and_the_ci_of_the_mean(tmp_path):
    _record(tmp_path / "fast" / "a", 0, (0.60, 0.03))
    _record(tmp_path / "fast" / "b", 1, (0.70, 0.04))
    _record(tmp_path / "fast" / "c", 0, (0.40, 0.02), split="50_50")
    result = table.build_table(table.find_records(str(tmp_path)))
    row = result["recipes"]["fast"]["90_10"]
    assert row["seeds"] == [0, 1] and row["runs"] == ["a", "b"]
    assert row["images"] == 3 * 344 * 128
    entry = row["metrics"]["5way_1shot"]
    assert entry["value"] == pytest.approx(0.65)
    assert entry["ci95"] == pytest.approx(math.sqrt(0.03**2 + 0.04**2) / 2)  # 0.025
    assert entry["seeds"] == [0.60, 0.70]
    # The seeds agree on everything else: their mean is that value.
    assert row["metrics"]["triplet"]["value"] == pytest.approx(0.837)
    markdown = table.markdown_table(result)
    (line,) = [x for x in markdown.splitlines() if x.startswith("| 90_10 | 132,096 | 0, 1 |")]
    assert "| 65.0 (60.0–70.0) | 62.9 |" in line  # ours, then the reference's models
    (line,) = [x for x in markdown.splitlines() if x.startswith("| 50_50 | 132,096 | 0 |")]
    assert "| 40.0 ± 2.0 | 47.1 |" in line
    assert "| 30_70 | not trained yet |" in markdown
    # The pair table: ours, the reference's models at similarity 0.2 and its published figure.
    (pairs,) = [x for x in markdown.splitlines()[13:] if x.startswith("| 90_10 |")]
    assert "| 76.6 | 81.0 | 81.0 |" in pairs  # the seeds agree: one value
    assert pairs.endswith("| 90.0 |")  # answering 'different' to the reference's pair test


def test_records_of_one_split_that_differ_beyond_their_seed_are_refused(tmp_path):
    _record(tmp_path / "fast" / "a", 0, (0.6, 0.03))
    _record(tmp_path / "fast" / "b", 1, (0.7, 0.03), extra=("--crop",))
    with pytest.raises(UserError, match=r"differ in more than their seed: --crop"):
        table.build_table(table.find_records(str(tmp_path)))
    # A setting written only by a later version counts as at its default.
    shutil.rmtree(tmp_path / "fast" / "b")
    _record(tmp_path / "fast" / "b", 1, (0.7, 0.03), extra=("--fused_batch_norm",))
    assert table.build_table(table.find_records(str(tmp_path)))["recipes"]["fast"]["90_10"]


def test_seeds_of_a_distilled_recipe_may_have_their_own_teachers(tmp_path):
    _record(tmp_path / "distill" / "a", 0, (0.6, 0.03), extra=("--distill_from=/t/seed0",))
    _record(tmp_path / "distill" / "b", 1, (0.7, 0.03), extra=("--distill_from=/t/seed1",))
    row = table.build_table(table.find_records(str(tmp_path)))["recipes"]["distill"]["90_10"]
    assert row["seeds"] == [0, 1]
    # A teacher's temperature is a setting: seeds that differ in it are refused.
    shutil.rmtree(tmp_path / "distill" / "b")
    _record(
        tmp_path / "distill" / "b",
        1,
        (0.7, 0.03),
        extra=("--distill_from=/t/seed1", "--distill_temperature=2"),
    )
    with pytest.raises(UserError, match=r"differ in more than their seed"):
        table.build_table(table.find_records(str(tmp_path)))


def test_two_runs_of_one_seed_are_rows_of_their_own_never_averaged(tmp_path):
    _record(tmp_path / "fast" / "a", 0, (0.6, 0.03))
    _record(tmp_path / "fast" / "again", 0, (0.7, 0.02))
    _record(tmp_path / "fast" / "c", 1, (0.5, 0.01))
    result = table.build_table(table.find_records(str(tmp_path)))
    runs = result["recipes"]["fast"]
    assert sorted(runs) == ["90_10 (a)", "90_10 (again)", "90_10 (c)"]
    assert runs["90_10 (again)"]["metrics"]["5way_1shot"]["value"] == pytest.approx(0.7)
    assert runs["90_10 (a)"]["seeds"] == [0] and runs["90_10 (c)"]["seeds"] == [1]
    lines = table.markdown_table(result)
    rows = [x for x in lines.splitlines() if x.startswith("| 90_10 (")]
    assert len(rows) == 6  # three in each of the two tables
    assert rows[0].startswith("| 90_10 (a) | 132,096 | 0 | ") and "| 60.0 ± 3.0 | 62.9 |" in rows[0]
    assert "| 70.0 ± 2.0 | 62.9 |" in rows[1]
    assert "| 90_10 |" not in lines  # no averaged row beside them


def test_the_recipes_table_holds_the_splits_where_both_recipes_ran(tmp_path):
    _record(tmp_path / "fast" / "a", 0, (0.40, 0.02), split="10_90")
    _record(tmp_path / "fast" / "b", 0, (0.70, 0.02))
    _record(tmp_path / "reference_protocol" / "c", 0, (0.35, 0.03), split="10_90")
    result = table.build_table(table.find_records(str(tmp_path)))
    rows = table.recipes_markdown(result).splitlines()[2:]
    assert [r.split(" | ")[:2] for r in rows] == [
        ["| 10_90", "fast"],
        ["| 10_90", "reference_protocol"],
        ["| 10_90", "reference's models"],
    ]  # 90_10: no run of the reference protocol, no rows
    assert "| 40.0 ± 2.0 |" in rows[0] and "| 35.0 ± 3.0 |" in rows[1]
    assert "| 22,500,000 | – | 31.2 |" in rows[2]  # 150 epochs of 50,000 triplets


def test_a_distilled_row_counts_its_teachers_images_beside_its_own(tmp_path):
    _record(tmp_path / "fast" / "a", 0, (0.70, 0.02))
    _record(tmp_path / "distill" / "b", 0, (0.73, 0.02))
    path = tmp_path / "distill" / "b" / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["budget"]["teacher_images"] = 132_096
    path.write_text(json.dumps(metrics))
    rows = table.recipes_markdown(table.build_table(table.find_records(str(tmp_path))))
    rows = rows.splitlines()[2:]
    assert [r.split(" | ")[:3] for r in rows] == [
        ["| 90_10", "fast", "132,096"],
        ["| 90_10", "distill", "132,096 + 132,096 (teacher)"],
        ["| 90_10", "reference's models", "22,500,000"],
    ]


def test_the_gains_table_subtracts_the_reference_models_figures(tmp_path):
    _record(tmp_path / "fast" / "a", 0, (0.60, 0.03))
    _record(tmp_path / "fast" / "b", 1, (0.70, 0.04))
    result = table.build_table(table.find_records(str(tmp_path)))
    rows = {r.split(" | ")[0]: r for r in table.gains_markdown(result).splitlines()[2:]}
    # 5-way 1-shot: the mean 65.0 against the reference's 62.9; triplet accuracy 83.7
    # (both seeds) against 88.1.
    assert rows["| 90_10"].endswith("| 65.0 (60.0–70.0) | 62.9 | +2.1 | 83.7 | 88.1 | -4.4 |")
    assert rows["| 50_50"] == "| 50_50 | not trained yet | – | – | 47.1 | – | – | 86.8 | – |"
    assert rows["| 100_0"].endswith("| – | – | – | – | 88.9 | – |")


def test_an_unreadable_record_is_one_line(capsys, tmp_path):
    _record(tmp_path / "fast" / "a", 0, (0.6, 0.03))
    (tmp_path / "fast" / "a" / "metrics.json").write_text("{")
    error = program_error(capsys, "eval_main", "--report", f"--runs_dir={tmp_path}", "--out=x")
    assert "fast/a is unreadable" in error and "\n" not in error.strip()
    assert not os.path.exists("x")


def test_the_report_writes_the_table_and_its_figure(tmp_path):
    _record(tmp_path / "runs" / "fast" / "a", 0, (0.6, 0.03))
    _record(tmp_path / "runs" / "reference_protocol" / "b", 0, (0.5, 0.03))  # a marker
    out = tmp_path / "out"
    output = program_output(
        "eval_main", "--report", f"--runs_dir={tmp_path / 'runs'}", f"--out={out}"
    )
    assert f"Wrote {out / table.TABLE_JSON}" in output
    with open(out / table.TABLE_JSON) as f:
        written = json.load(f)
    assert written["recipes"]["fast"]["90_10"]["metrics"]["5way_1shot"]["value"] == 0.6
    assert (out / table.TABLE_MARKDOWN).read_text() == table.markdown_table(written)
    with open(out / table.ONESHOT_BY_SPLIT_FIGURE, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_runs_block_draws_the_recipes_it_names_a_folders_control_first(tmp_path):
    _record(tmp_path / "race" / "supcon" / "seed_0", 0, (0.50, 0.03))
    _record(tmp_path / "race" / "control" / "seed_0", 0, (0.60, 0.02))
    _record(tmp_path / "race" / "control" / "seed_1", 1, (0.64, 0.02))
    _record(tmp_path / "fast" / "a", 0, (0.70, 0.01))
    _record(tmp_path / "fast" / "b", 0, (0.40, 0.01), split="50_50")
    result = table.build_table(table.find_records(str(tmp_path)))
    name = "runs-table: race/*,fast@90_10"
    text = f"a\n<!-- {name} -->\nold\n<!-- /{name} -->\nb\n"
    lines = table.splice(text, result).splitlines()
    assert lines[0] == "a" and lines[-1] == "b" and "old" not in lines
    rows = [x for x in lines if x.startswith("| ") and not x.startswith("| runs")][1:]
    assert [r.split(" | ")[:2] for r in rows] == [
        ["| race/control", "90_10"],
        ["| race/supcon", "90_10"],
        ["| fast", "90_10"],
    ]  # fast's 50_50 row left out
    assert rows[0].startswith("| race/control | 90_10 | 132,096 | 0, 1 | 62.0 (60.0–64.0) |")
    assert rows[1].startswith("| race/supcon | 90_10 | 132,096 | 0 | 50.0 ± 3.0 |")
    for entry, message in [("nothing/*", "No runs under nothing/"), ("fast@10_90", "at split")]:
        with pytest.raises(UserError, match=message):
            table.splice(f"<!-- runs-table: {entry} -->\n<!-- /runs-table: {entry} -->", result)


def test_splice_redraws_only_the_marked_block():
    result = {"recipes": {}, "reference": table.build_table([])["reference"]}
    text = "before\n<!-- headline-table -->\nstale\n<!-- /headline-table -->\nafter\n"
    new = table.splice(text, result)
    assert new.startswith("before\n<!-- headline-table -->\n| split |")
    assert new.endswith("<!-- /headline-table -->\nafter\n") and "stale" not in new
    assert table.splice(new, result) == new
    with pytest.raises(UserError, match="no closing"):
        table.splice("<!-- results-table -->\n", result)


def test_the_committed_table_is_the_records_table():
    with open(os.path.join(ROOT, "docs", "results", table.TABLE_JSON)) as f:
        committed = json.load(f)
    rebuilt = json.loads(json.dumps(table.build_table(table.find_records(RUNS))))
    assert committed == rebuilt, "docs/results/table.json is stale: run `make results`"


@pytest.mark.parametrize("document", ["README.md", os.path.join("docs", "results.md")])
def test_the_documents_tables_are_drawn_from_table_json(document):
    with open(os.path.join(ROOT, "docs", "results", table.TABLE_JSON)) as f:
        committed = json.load(f)
    with open(os.path.join(ROOT, document)) as f:
        text = f.read()
    assert "-table -->" in text
    assert table.splice(text, committed) == text, f"{document}'s table is stale: `make results`"
