"""Every callback of training and search: kept weights, the time budget, the search's score.

Best weights and snapshots are written safely across kills, resumes and NaNs.
"""

from __future__ import annotations

import json
import math
import os
import time

import keras
import keras_tuner
import numpy as np

from keras_siamese import files
from keras_siamese import workdir as wd
from keras_siamese.evaluation import protocol
from keras_siamese.model import test_time
from keras_siamese.training import build

# The log key of the search's score (OneShotObjective).
ONESHOT_LOG = "val_oneshot"


class BestWeights(keras.callbacks.Callback):
    """Saves the weights whenever `monitor` reaches a new finite minimum.

    Unlike ModelCheckpoint, a NaN or infinite value never counts as an
    improvement, the weights are written through a temporary file and a
    rename, and the best value so far is stored beside them (`<path>.json`),
    so a resumed run keeps comparing against it. Epochs before `first_epoch`
    (0-based) are not candidates: a mining warm-up's loss is another loss.
    """

    def __init__(self, path: str, monitor: str, first_epoch: int = 0):
        super().__init__()
        self.path = path
        self.monitor = monitor
        self.first_epoch = first_epoch
        self.record_path = f"{path}.json"
        self.best = math.inf

    def on_train_begin(self, logs=None):
        try:
            with open(self.record_path, encoding="utf-8") as f:
                record = json.load(f)
            # A best value of another monitor (an older run's) is not comparable.
            same = record.get("monitor", self.monitor) == self.monitor
            self.best = float(record["value"]) if same else math.inf
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self.best = math.inf

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if epoch < self.first_epoch or value is None or not math.isfinite(value):
            return
        if value >= self.best:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        tmp = f"{self.path}.tmp.weights.h5"
        self.model.save_weights(tmp, overwrite=True)
        os.replace(tmp, self.path)
        self.best = float(value)
        files.write_json_atomic(
            self.record_path, {"epoch": epoch + 1, "monitor": self.monitor, "value": self.best}
        )


class EpochSnapshots(keras.callbacks.Callback):
    """Saves the tower's weights every `every` epochs, with the training time so far.

    Where the optimizer keeps a weight average, the snapshot holds the average,
    as the export will.

    Snapshots go to `<folder>/epoch_NNNN.weights.h5`, and `<folder>/snapshots.csv`
    lists epoch, file and cumulative training seconds (continued across
    resumes from the last recorded row), so a learning curve of any metric
    against wall time can be computed afterwards, outside the training budget.
    """

    def __init__(self, tower: keras.Model, folder: str, every: int):
        super().__init__()
        self.tower, self.folder, self.every = tower, folder, every
        self.table = os.path.join(folder, wd.SNAPSHOT_TABLE)

    def on_train_begin(self, logs=None):
        os.makedirs(self.folder, exist_ok=True)
        rows = wd.read_snapshots(self.folder)
        self.offset = rows[-1]["train_seconds"] if rows else 0.0
        self.start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        name = f"epoch_{epoch + 1:04d}.weights.h5"
        tmp = os.path.join(self.folder, f".{name}.tmp.weights.h5")
        with build.averaged_weights(self.model):
            self.tower.save_weights(tmp, overwrite=True)
        os.replace(tmp, os.path.join(self.folder, name))
        seconds = self.offset + time.time() - self.start
        rows = [r for r in wd.read_snapshots(self.folder) if r["epoch"] < epoch + 1]
        rows.append({"epoch": epoch + 1, "file": name, "train_seconds": round(seconds, 1)})
        lines = ["epoch,file,train_seconds"] + [
            f"{r['epoch']},{r['file']},{r['train_seconds']}" for r in rows
        ]
        files.write_text_atomic(self.table, "\n".join(lines) + "\n")


class RunEstimate(keras.callbacks.Callback):
    """Prints, once, how long the run's remaining training steps should take.

    Times the steps after the first (which traces and compiles) up to `timed_steps`,
    then prints a line beginning `Estimated` with the remaining time at the measured
    rate and the time of day it should end (validation and export come on top).
    """

    def __init__(self, steps_left: int, images_per_step: int, timed_steps: int = 5):
        super().__init__()
        self.steps_left, self.images_per_step = steps_left, images_per_step
        self.timed_steps = timed_steps
        self.start: float | None = None
        self.steps_done = 0
        self.done = False

    def on_train_batch_end(self, batch, logs=None):
        if self.done:
            return
        self.steps_done += 1
        if self.start is None:  # the end of the compiling step starts the clock
            self.start = time.time()
            return
        timed = self.steps_done - 1
        if timed < min(self.timed_steps, self.steps_left - 1):
            return
        self.done = True
        seconds_per_step = (time.time() - self.start) / timed
        remaining = seconds_per_step * (self.steps_left - self.steps_done)
        finish = time.strftime("%H:%M", time.localtime(time.time() + remaining))
        print(
            f"\nEstimated {format_duration(remaining)} for the {self.steps_left:,} training "
            f"steps left in this run at {self.images_per_step / seconds_per_step:,.0f} images/s "
            f"(timed over {timed} steps): done about {finish}, validation and export aside.",
            flush=True,
        )


def format_duration(seconds: float) -> str:
    """`seconds` as `2 h 05 min`, `7 min` or `40 s`."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class TimeBudget(keras.callbacks.Callback):
    """Stops training at the end of the first epoch that ends past `minutes` of training.

    The clock is this process's: a resumed run gets the whole budget again.
    """

    def __init__(self, minutes: float):
        super().__init__()
        self.seconds = 60.0 * minutes

    def on_train_begin(self, logs=None):
        self.start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        if time.time() - self.start >= self.seconds:
            self.model.stop_training = True


class OneShotObjective(keras.callbacks.Callback):
    """Logs N-way one-shot accuracy on held-out classes as `val_oneshot` after each epoch.

    N is the number of held-out classes; the accuracy is the protocol's mean
    over seeded random choices of one support image per class, on the
    embeddings the trial's export would serve (its test-time options applied;
    with `center="seen"`, centred on the mean of `centring_images`).
    """

    def __init__(
        self,
        tower: keras.Model,
        images: np.ndarray,
        labels: np.ndarray,
        distance: str,
        tta: str = "none",
        center: str = "none",
        centring_images: np.ndarray | None = None,
    ):
        super().__init__()
        self.tower = tower
        self.images = images
        self.labels = labels
        self.distance = distance
        self.tta, self.center = tta, center
        self.centring_images = centring_images

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if not math.isfinite(logs.get("loss", 0.0)):
            raise keras_tuner.errors.FailedTrialError(
                f"the training loss became {logs['loss']} in epoch {epoch + 1}"
            )
        centring = self.centring_images if self.centring_images is not None else self.images[:0]
        model = test_time.with_options(self.tower, self.tta, self.center, centring)
        embeddings = protocol.embed(model, self.images, verbose=0)
        accuracy = protocol.random_support_accuracy(embeddings, self.labels, self.distance)
        logs[ONESHOT_LOG] = accuracy.value
