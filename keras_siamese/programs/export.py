"""Completes an export: adds its SavedModel, or writes a copy that computes in float32.

    keras-siamese export --export_dir=runs/90_10/export
    keras-siamese export --export_dir=runs/90_10/export --float32_copy=runs/90_10/export_f32

A run trained under Keras's JAX backend on a machine without TensorFlow exports
the tower's .keras file and metadata.json; the SavedModel that `eval`, `search`
and `canvas` serve is written here, where TensorFlow is installed. An export
that computes in bfloat16 or float16 (`--export_precision`, or any export of a
16-bit run written before float32 became the default) is slow on a CPU without
16-bit units; `--float32_copy` writes the same weights computing in float32.
"""

from __future__ import annotations

import sys

from absl import flags, logging

from keras_siamese import cli
from keras_siamese.errors import UserError


def define_flags(flag_values: flags.FlagValues) -> None:
    """Defines this program's flags."""
    flags.DEFINE_string(
        "export_dir", None, "The export folder of a run (RUN/export).", flag_values=flag_values
    )
    flags.DEFINE_string(
        "float32_copy",
        None,
        "A new folder for a copy of the export whose tower computes in float32 (same "
        "weights; its metadata keeps the source's metrics).",
        flag_values=flag_values,
    )


def run(flag_values: flags.FlagValues) -> int:
    """Writes the SavedModel of `--export_dir`, or its float32 copy; returns the exit code."""
    export_dir = flag_values.export_dir
    if not export_dir:
        print("error: --export_dir is required: the export folder of a run.", file=sys.stderr)
        return 1
    logging.set_verbosity(logging.WARNING)  # TensorFlow's saver logs each step at INFO
    from keras_siamese.serving import export

    copy_dir = flag_values.float32_copy
    try:
        if copy_dir:
            policy = export.write_float32_copy(export_dir, copy_dir)
            done = (
                f"Wrote {copy_dir}: the tower of {export_dir} ({policy}) computing in float32. "
                f"Its metrics are the source's; keras-siamese eval --export={copy_dir} measures it."
            )
        elif export.add_saved_model(export_dir):
            done = f"SavedModel written in {export_dir}."
        else:
            done = f"{export_dir} has its SavedModel."
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(done)
    return 0


def main() -> None:
    """The program's entry point: `keras-siamese export`."""
    cli.run_program(define_flags, run, flags.FLAGS, doc=__doc__)
