"""Which Keras backend a run trains on, checked before Keras loads.

TensorFlow is the default and a dependency; JAX (`pip install 'keras-siamese[jax]'`)
trains the same models from numpy batches on a machine without TensorFlow.
"""

from __future__ import annotations

import importlib.util
import json
import os

from keras_siamese.errors import ConfigError

# Backend name -> the package it needs and how to install it.
TRAINING_BACKENDS = {
    "tensorflow": ("tensorflow", "pip install tensorflow"),
    "jax": ("jax", "pip install 'keras-siamese[jax]'"),
}


def configured_backend() -> str:
    """The backend Keras will load: KERAS_BACKEND, else Keras's config file, else tensorflow."""
    name = os.environ.get("KERAS_BACKEND")
    if name:
        return name
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as f:
            return str(json.load(f).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def check_training_backend() -> str:
    """The configured backend if a run can train on it here.

    Raises:
        ConfigError: for a backend this project does not train on, or one whose
            package is not installed.
    """
    name = configured_backend()
    if name not in TRAINING_BACKENDS:
        raise ConfigError(
            f"KERAS_BACKEND={name}: runs train on {' or '.join(TRAINING_BACKENDS)} "
            f"(for jax: {TRAINING_BACKENDS['jax'][1]})."
        )
    package, install = TRAINING_BACKENDS[name]
    try:
        found = importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ConfigError(
            f"KERAS_BACKEND={name} needs {package}, which is not installed: {install}."
        )
    return name


def check_search_backend() -> None:
    """Raises ConfigError unless the search (`--mode=tune`) can run: on TensorFlow only."""
    name = configured_backend()
    if name != "tensorflow":
        raise ConfigError(
            f"--mode=tune runs on Keras's TensorFlow backend (its trials train on tf.data), "
            f"not KERAS_BACKEND={name}."
        )
