"""Trains a run on a class split, evaluates it and exports the tower.

The same program as `keras-siamese train`, with the same flags (`--help` lists them).
"""

from keras_siamese.programs.train import define_flags, main, run  # noqa: F401  (tests call them in process)

if __name__ == "__main__":
    main()
