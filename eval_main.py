"""Evaluates a trained run's export, or collects every evaluation into a report.

    python eval_main.py --workdir=runs/90_10 --data_dir=DIR     # eval.json + figures
    python eval_main.py --workdir=runs/90_10 --snapshots        # + learning_curve.json
    python eval_main.py --report --runs_dir=runs --out=docs/results

The split, distance and data set come from the export's metadata.json.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from keras_siamese import cli  # noqa: E402
from keras_siamese import workdir as wd  # noqa: E402
from keras_siamese.data.datasets import SOURCES, load_dataset  # noqa: E402
from keras_siamese.errors import UserError  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder whose export/ is evaluated.")
_EXPORT = flags.DEFINE_string("export", None, "Export folder to evaluate; default WORKDIR/export.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir",
    None,
    "Folder with the data set the run was trained on (or its parent); default: training's.",
)
_DATA_SOURCE = flags.DEFINE_enum(
    "data_source", None, list(SOURCES), "Where the images come from; default: as in training."
)
_SEED = flags.DEFINE_integer(
    "seed", 0, "Seed of the sampled triplets, pairs, supports and episodes."
)
_WAYS = flags.DEFINE_integer("ways", 5, "Classes per episode of the episodic evaluation.")
_SHOTS = flags.DEFINE_list("shots", ["1", "5"], "Support images per class, one result each.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 500, "Images per forward pass.")
_SNAPSHOTS = flags.DEFINE_boolean(
    "snapshots",
    False,
    "Also evaluate every snapshot of the run (--snapshot_every in training): learning_curve.json.",
)
_REPORT = flags.DEFINE_boolean("report", False, "Write the results report of every run instead.")
_RUNS_DIR = flags.DEFINE_string("runs_dir", "runs", "With --report: folder searched for eval.json.")
_OUT = flags.DEFINE_string("out", "docs/results", "With --report: folder of the report.")


def _shots() -> list[int]:
    try:
        shots = [int(s) for s in _SHOTS.value]
    except ValueError:
        raise UserError(f"--shots={','.join(_SHOTS.value)} must be whole numbers.") from None
    if not shots or min(shots) < 1:
        raise UserError(f"--shots={','.join(_SHOTS.value)} must be at least 1 each.")
    return shots


def _report() -> None:
    from keras_siamese.evaluation import report

    for path in report.write_report(_RUNS_DIR.value, _OUT.value):
        print(f"Wrote {path}")


def _evaluate() -> None:
    if not _WORKDIR.value:
        raise UserError("--workdir is required (or --report to collect evaluations).")
    if _WAYS.value < 2:
        raise UserError(f"--ways={_WAYS.value} must be at least 2.")
    shots = _shots()
    if not os.path.isdir(_WORKDIR.value):
        raise UserError(f"--workdir={_WORKDIR.value} is not a folder.")
    export_dir = _EXPORT.value or os.path.join(_WORKDIR.value, wd.EXPORT_DIR)
    from keras_siamese.evaluation import export_eval, protocol

    metadata = export_eval.read_metadata(export_dir)
    if _SNAPSHOTS.value:
        export_eval.snapshot_rows(_WORKDIR.value)
    trained_with = metadata.get("config", {})
    source = _DATA_SOURCE.value or trained_with.get("data_source", "auto")
    dataset = load_dataset(
        metadata["dataset"], _DATA_DIR.value or trained_with.get("data_dir"), source
    )
    logging.set_verbosity(logging.WARNING)
    result = export_eval.evaluate_export(
        export_dir,
        dataset,
        _WORKDIR.value,
        seed=_SEED.value,
        ways=_WAYS.value,
        shots=shots,
        batch_size=_BATCH_SIZE.value,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    print(f"Evaluated {export_dir} ({result['run']['dataset']} split {result['run']['split']}):")
    for line in protocol.summary_lines(result):
        print(f"  {line}")
    for name in result["figures"]:
        print(f"Figure: {os.path.join(_WORKDIR.value, name)}")
    print(f"Metrics: {os.path.join(_WORKDIR.value, wd.EVAL_FILE)}")
    if _SNAPSHOTS.value:
        export_eval.evaluate_snapshots(
            export_dir, dataset, _WORKDIR.value, seed=_SEED.value, batch_size=_BATCH_SIZE.value
        )
        print(f"Learning curve: {os.path.join(_WORKDIR.value, wd.CURVE_FILE)}")


def main(argv: list[str]) -> int:
    del argv  # cli.parse_flags has refused any stray argument
    try:
        if _REPORT.value:
            _report()
        else:
            _evaluate()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=lambda argv: cli.parse_flags(argv, flags.FLAGS))
