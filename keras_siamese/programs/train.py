"""Trains the embedding tower on a class split with one of the objectives, evaluates, exports.

The fast recipe (a cosine classifier, 10 epochs) first; then the reference's
150-epoch triplet network, and any setting on the command line:

    keras-siamese train --flagfile=flags/fast.flags --split=90_10 --data_dir=DIR --workdir=runs/fast
    keras-siamese train --flagfile=flags/90_10.flags --data_dir=DIR --workdir=runs/90_10
    keras-siamese train --split=80_20 --distance=cosine --data_dir=DIR --workdir=runs/80_20

With --mode=tune it searches margin and learning rate instead, scored on
classes held out of the seen ones, and writes best.flags:

    keras-siamese train --mode=tune --flagfile=flags/tune.flags --data_dir=DIR --workdir=runs/tune
    keras-siamese train --flagfile=runs/tune/best.flags --data_dir=DIR --workdir=runs/best

Rerunning the same command after an interruption resumes the run or the search.
"""

from __future__ import annotations

import os
import sys

from absl import flags, logging

from keras_siamese import cli, keras_backend, workdir
from keras_siamese.config import TrainConfig, TuneConfig
from keras_siamese.data.sources import load_dataset
from keras_siamese.errors import UserError


def define_flags(flag_values: flags.FlagValues) -> None:
    """Defines this program's flags: every setting of a run and of a search (declared
    once in keras_siamese.config), and two about the program itself."""
    cli.define_flags(TrainConfig, flag_values)
    cli.define_flags(TuneConfig, flag_values)
    flags.DEFINE_enum(
        "mode",
        "train",
        ["train", "tune"],
        "train: one run; tune: a hyperparameter search (see --tuner).",
        flag_values=flag_values,
    )
    flags.DEFINE_boolean(
        "overwrite",
        False,
        "Replace a run of another configuration found in --workdir, or train a finished one again.",
        flag_values=flag_values,
    )


def tune(config: TrainConfig, flag_values: flags.FlagValues) -> int:
    """Runs the search of the flags; prints its table of trials."""
    overwrite = flag_values.overwrite
    try:
        tune_config = cli.config_from_flags(TuneConfig, flag_values)
        keras_backend.check_search_backend()
        config.validate()
        tune_config.validate(config)
        flagfile = config.to_flagfile() + tune_config.to_flagfile()
        workdir.check(config.workdir, flagfile, overwrite=overwrite)
        dataset = load_dataset(
            config.dataset, config.data_dir, config.data_source, config.folder_options()
        )
        logging.set_verbosity(logging.WARNING)
        from keras_siamese.training import tuning

        result = tuning.run_search(config, tune_config, dataset, overwrite=overwrite)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if tuning.is_distributed_worker():
        print("This worker's trials are done; the chief writes the table of trials.")
        return 0
    print(tuning.format_table(result.rows))
    print(f"Trials: {os.path.join(config.workdir, workdir.TRIALS_FILE)}")
    if result.best_flags is None:
        print("No trial finished with a score: nothing to recommend.")
        return 1
    print(f"Best settings: {result.best_flags}")
    return 0


def run(flag_values: flags.FlagValues, summary: bool = True) -> int:
    """Trains (or searches) as the parsed `flag_values` say; returns the exit code.

    `summary`: print the run's metrics (the demo leaves them to its evaluation).
    """
    overwrite = flag_values.overwrite
    try:
        config = cli.config_from_flags(TrainConfig, flag_values)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if flag_values.mode == "tune":
        return tune(config, flag_values)
    try:
        # Settings and data are checked before TensorFlow loads: a typo fails at once.
        keras_backend.check_training_backend()
        config.validate()
        workdir.check(config.workdir, config.to_flagfile(), overwrite=overwrite)
        if not overwrite and workdir.finished(config.workdir, config.to_flagfile()):
            print(
                f"The run in {config.workdir} is finished: its metrics are in "
                f"{os.path.join(config.workdir, workdir.METRICS_FILE)} and its export in "
                f"{os.path.join(config.workdir, workdir.EXPORT_DIR)}; pass --overwrite to "
                "train it again."
            )
            return 0
        dataset = load_dataset(
            config.dataset, config.data_dir, config.data_source, config.folder_options()
        )
        logging.set_verbosity(logging.WARNING)
        from keras_siamese.evaluation import protocol
        from keras_siamese.training import trainer

        result = trainer.train_and_evaluate(config, dataset, overwrite=overwrite)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not result.is_chief:
        print("This worker's part is done; the chief evaluates and exports.")
        return 0
    if summary:
        for line in protocol.summary_lines(result.metrics):
            print(line)
    print(f"Metrics: {os.path.join(config.workdir, 'metrics.json')}")
    print(f"Export: {result.export_dir}")
    return 0


def main() -> None:
    """The program's entry point: `keras-siamese train` and `train_main.py`."""
    cli.run_program(define_flags, run, flags.FLAGS, doc=__doc__)
