"""Snapshots and the time budget on a tiny model."""

import os

import keras
import numpy as np

from keras_siamese import workdir as wd
from keras_siamese.training import callbacks
from keras_siamese.training.callbacks import TimeBudget


def _tiny_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    tower = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model = keras.Model(inputs, tower(inputs))
    model.compile(optimizer="sgd", loss="mse")
    return tower, model


def test_snapshots_every_n_epochs_with_time_continued_across_a_resume(tmp_path):
    tower, model = _tiny_model()
    x, y = np.ones((8, 3), np.float32), np.zeros((8, 2), np.float32)
    folder = str(tmp_path / "snapshots")
    model.fit(x, y, epochs=4, verbose=0, callbacks=[callbacks.EpochSnapshots(tower, folder, 2)])
    rows = wd.read_snapshots(folder)
    assert [r["epoch"] for r in rows] == [2, 4]
    assert rows[0]["train_seconds"] <= rows[1]["train_seconds"]
    for r in rows:
        assert os.path.exists(os.path.join(folder, r["file"]))
    # A resumed run appends, and its clock starts where the last row left off.
    model.fit(
        x,
        y,
        initial_epoch=4,
        epochs=6,
        verbose=0,
        callbacks=[callbacks.EpochSnapshots(tower, folder, 2)],
    )
    rows = wd.read_snapshots(folder)
    assert [r["epoch"] for r in rows] == [2, 4, 6]
    assert rows[2]["train_seconds"] >= rows[1]["train_seconds"]
    restored, _ = _tiny_model()
    restored.load_weights(os.path.join(folder, rows[2]["file"]))
    for a, b in zip(restored.get_weights(), tower.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_time_budget_stops_at_the_end_of_the_epoch_that_passes_it():
    _, model = _tiny_model()
    x, y = np.ones((8, 3), np.float32), np.zeros((8, 2), np.float32)
    spent = model.fit(x, y, epochs=5, verbose=0, callbacks=[TimeBudget(0.0)])
    assert len(spent.history["loss"]) == 1
    generous = model.fit(x, y, epochs=3, verbose=0, callbacks=[TimeBudget(60.0)])
    assert len(generous.history["loss"]) == 3


def test_durations_read_as_a_person_would_say_them():
    from keras_siamese.training.callbacks import format_duration

    assert format_duration(40.4) == "40 s"
    assert format_duration(7 * 60 + 29) == "7 min"
    assert format_duration(25 * 3600 + 5 * 60) == "25 h 05 min"
