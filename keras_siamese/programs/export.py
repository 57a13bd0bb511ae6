"""Adds the SavedModel to an export written without TensorFlow.

    keras-siamese export --export_dir=runs/90_10/export

A run trained under Keras's JAX backend on a machine without TensorFlow exports
the tower's .keras file and metadata.json; the SavedModel that `eval`, `search`
and `canvas` serve is written here, where TensorFlow is installed.
"""

from __future__ import annotations

import sys

from absl import flags, logging

from keras_siamese import cli
from keras_siamese.errors import UserError


def define_flags(flag_values: flags.FlagValues) -> None:
    """Defines this program's one flag."""
    flags.DEFINE_string(
        "export_dir", None, "The export folder of a run (RUN/export).", flag_values=flag_values
    )


def run(flag_values: flags.FlagValues) -> int:
    """Writes the SavedModel of `--export_dir`; returns the exit code."""
    export_dir = flag_values.export_dir
    if not export_dir:
        print("error: --export_dir is required: the export folder of a run.", file=sys.stderr)
        return 1
    logging.set_verbosity(logging.WARNING)  # TensorFlow's saver logs each step at INFO
    from keras_siamese.serving import export

    try:
        written = export.add_saved_model(export_dir)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        f"SavedModel written in {export_dir}." if written else f"{export_dir} has its SavedModel."
    )
    return 0


def main() -> None:
    """The program's entry point: `keras-siamese export`."""
    cli.run_program(define_flags, run, flags.FLAGS, doc=__doc__)
