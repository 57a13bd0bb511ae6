"""The run folder: its layout, its ownership by one configuration, and resuming.

config.flags        resolved flags; `--flagfile=` it to reproduce the run
versions.json       package versions
.lock               locked by the training process while it runs (one run at a time)
backup/             BackupAndRestore state while training (removed at the end)
checkpoints/        best.weights.h5 (lowest validation loss)
snapshots/          with --snapshot_every: tower weights every N epochs, snapshots.csv
history.csv         per-epoch losses, each epoch exactly once
logs/               TensorBoard (and eval_main.py --projector's embeddings)
metrics.json        the evaluation protocol's metrics at the end of training, and its budget
export/             SavedModel of the tower, tower.keras, metadata.json
eval.json           eval_main.py's evaluation of the export (written after its figures)
learning_curve.json eval_main.py --snapshots: metrics of each snapshot against training time
*.png               eval_main.py's figures (see FIGURES)

A search (`train_main.py --mode=tune`) keeps config.flags and versions.json, and:
search/             keras-tuner's state: the oracle and one folder per trial
trials.csv          one row per trial: its hyperparameters and objective
best.flags          a flagfile that trains with the best trial's settings
"""

from __future__ import annotations

import csv
import dataclasses
import fcntl
import io
import json
import os
import shutil
import tempfile

from keras_siamese import files
from keras_siamese.config import TrainConfig, TuneConfig, flag_lines
from keras_siamese.errors import ConfigError, UserError

CONFIG_FILE = "config.flags"
LOCK_FILE = ".lock"
BACKUP_DIR = "backup"
BEST_WEIGHTS = os.path.join("checkpoints", "best.weights.h5")
SNAPSHOTS_DIR = "snapshots"
HISTORY_FILE = "history.csv"
LOGS_DIR = "logs"
METRICS_FILE = "metrics.json"
EXPORT_DIR = "export"
EVAL_FILE = "eval.json"
PRECISION_FILE = "precision.json"
CURVE_FILE = "learning_curve.json"
CURVE_FIGURE = "learning_curve.png"
DISTANCES_FIGURE = "distances.png"
ROC_FIGURE = "roc.png"
NEAREST_SUPPORTS_FIGURE = "nearest_supports.png"
EMBEDDING_MAP_FIGURE = "embedding_map.png"
# A hyperparameter search: keras-tuner's state, the table of trials, the winner.
SEARCH_DIR = "search"
TRIALS_FILE = "trials.csv"
BEST_FLAGS = "best.flags"
FIGURES = (DISTANCES_FIGURE, ROC_FIGURE, NEAREST_SUPPORTS_FIGURE, EMBEDDING_MAP_FIGURE)
# Everything a run writes; --overwrite removes exactly these and nothing else.
RUN_ENTRIES = (
    CONFIG_FILE,
    "versions.json",
    PRECISION_FILE,
    BACKUP_DIR,
    "checkpoints",
    SNAPSHOTS_DIR,
    HISTORY_FILE,
    LOGS_DIR,
    METRICS_FILE,
    EXPORT_DIR,
    EVAL_FILE,
    *FIGURES,
    CURVE_FILE,
    CURVE_FIGURE,
    SEARCH_DIR,
    TRIALS_FILE,
    BEST_FLAGS,
)

# Settings that do not change what a run computes.
_LOCATION_FLAGS = ("--workdir=", "--data_dir=")
_SETTING_NAMES = {f.name for c in (TrainConfig, TuneConfig) for f in dataclasses.fields(c)}
_DEFAULT_LINES = set(flag_lines(TrainConfig())) | set(flag_lines(TuneConfig()))


def _identity(flagfile_text: str) -> list[str]:
    return [
        line
        for line in flagfile_text.splitlines()
        if line.strip() and not line.startswith(_LOCATION_FLAGS)
    ]


def _flag_name(line: str) -> str:
    body = line.lstrip("-").split("=", 1)[0]
    if "=" not in line and body.startswith("no") and body[2:] in _SETTING_NAMES:
        return body[2:]  # a boolean written as --noNAME
    return body


def _same_run(old_text: str, new_text: str) -> bool:
    """Whether two config.flags describe one run.

    A setting that the old file lacks (it was written before the setting
    existed) counts as equal when the new file has it at its default.
    """
    old, new = _identity(old_text), _identity(new_text)
    old_names = {_flag_name(line) for line in old}
    return old == [
        line for line in new if not (line in _DEFAULT_LINES and _flag_name(line) not in old_names)
    ]


def same_settings(a_text: str, b_text: str) -> bool:
    """Whether two config.flags describe one run, either of them perhaps written before
    a setting existed (it then counts as at its default)."""
    return _same_run(a_text, b_text) or _same_run(b_text, a_text)


def check(workdir: str, flagfile_text: str, overwrite: bool = False) -> None:
    """Raises ConfigError if `workdir` cannot hold the run of `flagfile_text`.

    Reads only: a workdir that is a file, or that holds a run of another
    configuration (unless `overwrite`), is refused before anything is written.
    """
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ConfigError(f"--workdir={workdir} is a file, not a folder.")
    config_path = os.path.join(workdir, CONFIG_FILE)
    if overwrite or not os.path.exists(config_path):
        return
    with open(config_path, encoding="utf-8") as f:
        old_text = f.read()
    if not _same_run(old_text, flagfile_text):
        changed = sorted(set(_identity(flagfile_text)) - set(_identity(old_text)))
        raise ConfigError(
            f"--workdir={workdir} holds a run of another configuration (this one differs in "
            f"{', '.join(changed) or 'its settings'}): choose another workdir or pass "
            "--overwrite to replace that run."
        )


def _holds_same_run(workdir: str, flagfile_text: str) -> bool:
    """Whether `workdir`'s config.flags describes the run of `flagfile_text`."""
    try:
        with open(os.path.join(workdir, CONFIG_FILE), encoding="utf-8") as f:
            return _same_run(f.read(), flagfile_text)
    except OSError:
        return False


def finished(workdir: str, flagfile_text: str) -> bool:
    """Whether `workdir` holds a finished run of `flagfile_text`: its metrics and export
    written, no backup of an epoch in progress left."""
    return (
        _holds_same_run(workdir, flagfile_text)
        and os.path.isfile(os.path.join(workdir, METRICS_FILE))
        and os.path.isfile(os.path.join(workdir, EXPORT_DIR, "saved_model.pb"))
        and not os.path.exists(os.path.join(workdir, BACKUP_DIR))
    )


def recorded_precision(workdir: str, flagfile_text: str) -> str | None:
    """The precision an interrupted run of `flagfile_text` in `workdir` chose when it
    started (`--precision=auto`), or None: no such run to resume, or no record."""
    resuming = os.path.isdir(os.path.join(workdir, BACKUP_DIR))
    if not (resuming and _holds_same_run(workdir, flagfile_text)):
        return None
    try:
        with open(os.path.join(workdir, PRECISION_FILE), encoding="utf-8") as f:
            return str(json.load(f)["precision"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def prepare(
    workdir: str, flagfile_text: str, overwrite: bool = False, exclusive: bool = False
) -> None:
    """Claims `workdir` for the run described by `flagfile_text`.

    After `check`, creates the folder and proves it is writable; with
    `exclusive`, locks it for this process until `release` (or its exit); with
    `overwrite`, removes a run of another configuration (its files, and only
    those). Puts back an export whose replacement was interrupted, and writes
    the run's config.flags.

    Raises:
        ConfigError: for a workdir that is a file, unwritable, taken, or (with
            `exclusive`) in use by another process.
    """
    check(workdir, flagfile_text, overwrite)
    try:
        os.makedirs(workdir, exist_ok=True)
        # A probe of this process's own: the workers of a multi-worker run claim
        # the same folder at the same moment.
        with tempfile.NamedTemporaryFile(dir=workdir, prefix=".write-test-"):
            pass
    except OSError as e:
        raise ConfigError(f"--workdir={workdir} is not writable ({e.strerror}).") from None
    if exclusive:
        _lock(workdir)
    config_path = os.path.join(workdir, CONFIG_FILE)
    if overwrite and os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as f:
            same = _same_run(f.read(), flagfile_text)
        if not same:
            for entry in RUN_ENTRIES:
                path = os.path.join(workdir, entry)
                if os.path.isdir(path):
                    shutil.rmtree(path)
                elif os.path.exists(path):
                    os.remove(path)
    files.restore_interrupted_replace(os.path.join(workdir, EXPORT_DIR))
    files.write_text_atomic(config_path, flagfile_text)


# The open lock files of the workdirs this process holds, by absolute path.
_held: dict[str, io.TextIOWrapper] = {}


def _lock(workdir: str) -> None:
    # Two runs in one folder would each trim, append to and delete the other's history,
    # checkpoints and snapshots. The lock ends with the process, however it ends.
    path = os.path.join(os.path.abspath(workdir), LOCK_FILE)
    if path in _held:
        return
    handle = open(path, "a")  # noqa: SIM115 - held open until `release`
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ConfigError(
            f"--workdir={workdir} is in use by another training run: wait for it to end "
            "or choose another workdir."
        ) from None
    _held[path] = handle


def release(workdir: str) -> None:
    """Gives up this process's lock on `workdir`, if it holds one (see `prepare`)."""
    handle = _held.pop(os.path.join(os.path.abspath(workdir), LOCK_FILE), None)
    if handle is not None:
        handle.close()


def resume_epoch(workdir: str) -> int:
    """The epoch an interrupted run in `workdir` resumes at (0 for a fresh start)."""
    path = os.path.join(workdir, BACKUP_DIR, "training_metadata.json")
    try:
        with open(path, encoding="utf-8") as f:
            return int(json.load(f)["epoch"])
    except FileNotFoundError:
        return 0
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(
            f"The resume point {path} is unreadable ({e}): delete {os.path.dirname(path)} "
            "to start the run afresh."
        ) from None


def trim_history(workdir: str, first_epoch: int) -> None:
    """Keeps only the history rows of epochs before `first_epoch`.

    An epoch's row is written before its backup, so a run killed between the
    two would otherwise log that epoch twice when it resumes.
    """
    path = os.path.join(workdir, HISTORY_FILE)
    if not os.path.exists(path):
        return
    if first_epoch == 0:
        os.remove(path)
        return
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < first_epoch]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(kept)
    files.write_text_atomic(path, out.getvalue())


def append_history(workdir: str, epoch: int, values: dict[str, float]) -> None:
    """Writes `epoch`'s row to history.csv, after the rows of the epochs before it.

    For training loops without Keras's CSVLogger; a resumed run rewrites the
    rows from the epoch it resumed at.
    """
    trim_history(workdir, epoch)
    path = os.path.join(workdir, HISTORY_FILE)
    rows = []
    if os.path.exists(path):
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
    if not rows:
        rows = [["epoch", *values]]
    rows.append([str(epoch), *(repr(float(v)) for v in values.values())])
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    files.write_text_atomic(path, out.getvalue())


SNAPSHOT_TABLE = "snapshots.csv"


def read_snapshots(folder: str) -> list[dict]:
    """The rows of `<folder>/snapshots.csv` (epoch, file, train_seconds), by epoch."""
    path = os.path.join(folder, SNAPSHOT_TABLE)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        {"epoch": int(r["epoch"]), "file": r["file"], "train_seconds": float(r["train_seconds"])}
        for r in rows
    ]
