"""Writing files so that a crash never leaves a truncated one behind."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable


def write_text_atomic(path: str, text: str) -> None:
    """Writes `text` to `path` through a temporary file and an atomic rename."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_atomic(path: str, write: Callable[[str], None]) -> None:
    """Calls `write(tmp)` to fill a temporary file, then renames it to `path`.

    For writers that want a file name (e.g. matplotlib's `savefig`).
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json_atomic(path: str, obj: object) -> None:
    """Writes `obj` as indented JSON to `path`, atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _previous_path(target: str) -> str:
    target = os.path.abspath(target)
    return os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.previous")


def restore_interrupted_replace(target: str) -> None:
    """Puts back the old `target` if a `replace_directory` was killed midway."""
    previous = _previous_path(target)
    if os.path.isdir(previous):
        if os.path.exists(target):
            shutil.rmtree(previous, ignore_errors=True)
        else:
            os.replace(previous, target)


def replace_directory(source: str, target: str) -> None:
    """Moves the complete folder `source` to `target`, replacing any old `target`.

    The old folder is first renamed aside, so at every moment `target` is
    either the old complete folder, the new complete folder, or absent with
    the old one aside, which `restore_interrupted_replace` puts back.
    """
    restore_interrupted_replace(target)
    previous = _previous_path(target)
    had_old = os.path.exists(target)
    if had_old:
        os.replace(target, previous)
    os.replace(source, target)
    if had_old:
        shutil.rmtree(previous, ignore_errors=True)


def write_directory(target: str, fill: Callable[[str], None]) -> None:
    """Calls `fill(staging)` to fill a new folder, then moves it to `target` whole.

    The staging folder sits beside `target`; those of killed writers are
    removed first. A previous `target` stays intact until the new one is
    complete (see `replace_directory`).
    """
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    restore_interrupted_replace(target)
    prefix = f".{os.path.basename(os.path.abspath(target))}-staging-"
    for leftover in os.listdir(parent):
        if leftover.startswith(prefix):
            shutil.rmtree(os.path.join(parent, leftover), ignore_errors=True)
    staging = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        fill(staging)
        replace_directory(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
