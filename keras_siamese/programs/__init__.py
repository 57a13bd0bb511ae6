"""The command-line programs: `keras-siamese SUBCOMMAND` and the `*_main.py` scripts.

Each program module defines its flags (`define_flags`), runs on parsed flags
(`run`, which tests call in process) and has an entry point (`main`). Only these
modules read flags; the library takes explicit arguments.
"""

from keras_siamese.programs import canvas, evaluate, search, train

# Subcommand name -> program module, in the order the command lists them.
PROGRAMS = {"train": train, "eval": evaluate, "search": search, "canvas": canvas}
