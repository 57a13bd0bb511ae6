"""Evaluates a trained run's export, or collects every evaluation into a report.

    keras-siamese eval --workdir=runs/90_10 --data_dir=DIR     # eval.json + figures
    keras-siamese eval --workdir=runs/90_10 --snapshots        # + learning_curve.json
    keras-siamese eval --report --runs_dir=runs --out=docs/results

The split, distance and data set come from the export's metadata.json.
"""

from __future__ import annotations

import os
import sys

from absl import flags, logging

from keras_siamese import cli
from keras_siamese import workdir as wd
from keras_siamese.config import TrainConfig
from keras_siamese.data.sources import load_dataset
from keras_siamese.errors import UserError
from keras_siamese.evaluation.settings import EvalConfig


def define_flags(flag_values: flags.FlagValues) -> None:
    """Defines this program's flags: every setting, declared once in keras_siamese.config."""
    cli.define_flags(EvalConfig, flag_values)


def _report(config: EvalConfig) -> None:
    from keras_siamese.evaluation import report

    for path in report.write_report(config.runs_dir, config.out):
        print(f"Wrote {path}")


def _evaluate(config: EvalConfig) -> None:
    if not os.path.isdir(config.workdir):
        raise UserError(f"--workdir={config.workdir} is not a folder.")
    export_dir = config.export or os.path.join(config.workdir, wd.EXPORT_DIR)
    from keras_siamese.evaluation import export_eval, protocol
    from keras_siamese.serving import metadata as export_metadata

    metadata = export_metadata.read(export_dir)
    if config.snapshots:
        export_eval.snapshot_rows(config.workdir)
    dataset = load_dataset(
        metadata.dataset,
        config.data_dir or metadata.config.get("data_dir"),
        config.data_source or metadata.config.get("data_source", "auto"),
        TrainConfig.from_recorded(metadata.config).folder_options(),
    )
    logging.set_verbosity(logging.WARNING)
    result = export_eval.evaluate_export(
        export_dir,
        dataset,
        config.workdir,
        seed=config.seed,
        ways=config.ways,
        shots=config.shots,
        batch_size=config.batch_size,
        verbose=1 if sys.stdout.isatty() else 2,
        tta=config.tta,
        center=config.center,
        projector=("all" if config.projector_seen else "unseen") if config.projector else "none",
    )
    print(f"Evaluated {export_dir} ({result.run.dataset} split {result.run.split}):")
    for line in protocol.summary_lines(result.metrics):
        print(f"  {line}")
    for name in result.figures:
        print(f"Figure: {os.path.join(config.workdir, name)}")
    print(f"Metrics: {os.path.join(config.workdir, wd.EVAL_FILE)}")
    if config.projector:
        logs = os.path.join(config.workdir, wd.LOGS_DIR)
        print(f"Projector: tensorboard --logdir {logs} (the Projector tab)")
    if config.snapshots:
        export_eval.evaluate_snapshots(
            export_dir, dataset, config.workdir, seed=config.seed, batch_size=config.batch_size
        )
        print(f"Learning curve: {os.path.join(config.workdir, wd.CURVE_FILE)}")


def run(flag_values: flags.FlagValues) -> int:
    """Evaluates (or reports) as the parsed `flag_values` say; returns the exit code."""
    try:
        config = cli.config_from_flags(EvalConfig, flag_values)
        config.validate()
        if config.report:
            _report(config)
        else:
            _evaluate(config)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def main() -> None:
    """The program's entry point: `keras-siamese eval` and `eval_main.py`."""
    cli.run_program(define_flags, run, flags.FLAGS, doc=__doc__)
