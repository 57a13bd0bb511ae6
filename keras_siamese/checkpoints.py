"""Keeping the best weights of a run, safely across kills, resumes and NaNs."""

from __future__ import annotations

import json
import math
import os

import keras

from keras_siamese import files


class BestWeights(keras.callbacks.Callback):
    """Saves the weights whenever `monitor` reaches a new finite minimum.

    Unlike ModelCheckpoint, a NaN or infinite value never counts as an
    improvement, the weights are written through a temporary file and a
    rename, and the best value so far is stored beside them (`<path>.json`),
    so a resumed run keeps comparing against it.
    """

    def __init__(self, path: str, monitor: str):
        super().__init__()
        self.path = path
        self.monitor = monitor
        self.record_path = f"{path}.json"
        self.best = math.inf

    def on_train_begin(self, logs=None):
        try:
            with open(self.record_path, encoding="utf-8") as f:
                self.best = float(json.load(f)["value"])
        except (OSError, ValueError, KeyError, TypeError):
            self.best = math.inf

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(value) or value >= self.best:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        tmp = f"{self.path}.tmp.weights.h5"
        self.model.save_weights(tmp, overwrite=True)
        os.replace(tmp, self.path)
        self.best = float(value)
        files.write_json_atomic(
            self.record_path, {"epoch": epoch + 1, "monitor": self.monitor, "value": self.best}
        )
