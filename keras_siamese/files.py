"""Writing files so that a crash never leaves a truncated one behind."""

from __future__ import annotations

import json
import os
import shutil
import tempfile


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


def write_json_atomic(path: str, obj: object) -> None:
    """Writes `obj` as indented JSON to `path`, atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def replace_directory(source: str, target: str) -> None:
    """Moves the complete folder `source` to `target`, replacing any old `target`.

    The old folder is first renamed aside, so at every moment `target` is
    either the old complete folder, absent, or the new complete folder.
    """
    old = None
    if os.path.exists(target):
        old = tempfile.mkdtemp(
            prefix=f".{os.path.basename(target)}.old-", dir=os.path.dirname(os.path.abspath(target))
        )
        os.rmdir(old)
        os.replace(target, old)
    os.replace(source, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
