"""Serves the similarity canvas for one export (and a gallery index built with it).

The same program as `keras-siamese canvas`, with the same flags (`--help` lists them).
"""

from keras_siamese.programs.canvas import define_flags, main, run  # noqa: F401  (tests call them in process)

if __name__ == "__main__":
    main()
