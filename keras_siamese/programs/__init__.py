"""The command-line programs: `keras-siamese SUBCOMMAND` and the `*_main.py` scripts.

Each program module defines its flags (`define_flags`), runs on parsed flags
(`run`, which tests call in process) and has an entry point (`main`); `console`
is the `keras-siamese` command. Only these modules read flags; the library takes
explicit arguments.
"""
