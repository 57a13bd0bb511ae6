"""Runs a program as a machine without TensorFlow would: its import fails.

KERAS_BACKEND=jax python tests/without_tensorflow.py train_main.py FLAGS...
"""

from __future__ import annotations

import importlib.abc
import runpy
import sys


class _NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tensorflow_datasets", "tf_keras"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


if __name__ == "__main__":
    sys.meta_path.insert(0, _NoTensorFlow())
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
