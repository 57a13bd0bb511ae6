"""Evaluates a trained run's export, or collects every evaluation into a report.

The same program as `keras-siamese eval`, with the same flags (`--help` lists them).
"""

from keras_siamese.programs.evaluate import define_flags, main, run  # noqa: F401  (tests call them in process)

if __name__ == "__main__":
    main()
