"""Builds, grows and queries a searchable gallery of images with a trained export.

The same program as `keras-siamese search`, with the same flags (`--help` lists them).
"""

from keras_siamese.programs.search import COMMANDS, define_flags, main, run  # noqa: F401  (tests call them in process)

if __name__ == "__main__":
    main()
