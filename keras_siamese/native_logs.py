"""Keeps the native libraries' start-up lines out of a program's output.

TensorFlow's C++ code writes its start-up notices (oneDNN, CUDA stubs, cuInit,
CPU features) straight to file descriptor 2 while it loads, before Python's
logging exists and whatever `TF_CPP_MIN_LOG_LEVEL` says. (FAISS's loader logs
through Python's logging, and is quietened where FAISS is imported:
`keras_siamese.serving.vector_search`.) `filter_stderr` routes descriptor 2
through a small forked process that drops exactly those lines and passes every
other byte on: the program's own `error:` lines, a genuine TensorFlow error, a
crash's last words. The filter outlives a crashing parent and ends when the
last writer closes, so nothing written is lost.

Set `KERAS_SIAMESE_VERBOSE=1` (or give a program `--verbose`) to see TensorFlow's.
"""

from __future__ import annotations

import os
import re
import signal
import sys

VERBOSE_ENV = "KERAS_SIAMESE_VERBOSE"

# glog lines of the files whose notices are start-up noise on CPU machines; a fatal (F)
# line or a line of any other file passes.
_GLOG_NOISE = re.compile(
    rb"^[IWE]\d{4} [\d:.]+\s+\d+ "
    rb"(port|cudart_stub|cpu_feature_guard|cuda_\w+|dso_loader|gpu_device|"
    rb"stream_executor_pimpl)\.cc:\d+\]"
)
_NOISE = (
    re.compile(rb"^WARNING: All log messages before absl::InitializeLog\(\) is called"),
    re.compile(rb"^To enable the following instructions: .* rebuild TensorFlow"),
    re.compile(rb"^This TensorFlow binary is optimized to use available CPU instructions"),
    _GLOG_NOISE,
)

_installed = False


def is_noise(line: bytes) -> bool:
    """Whether `line` is one of the native start-up notices that programs hide."""
    return any(pattern.search(line) for pattern in _NOISE)


def verbose_requested(argv: list[str]) -> bool:
    """Whether the command line (`--verbose`) or the environment asks for native logs."""
    if os.environ.get(VERBOSE_ENV, "").lower() in ("1", "true", "yes"):
        return True
    return "--verbose" in argv[1:]


def filter_stderr(argv: list[str] | None = None) -> None:
    """Routes this process's file descriptor 2 through a filter of the start-up notices.

    Call it at a program's start, before TensorFlow or FAISS loads and before any
    thread starts (it forks). Does nothing when verbose output is asked for,
    when called twice, or where there is no `fork`.
    """
    global _installed
    if _installed or verbose_requested(argv or sys.argv):
        return
    # Python-side TensorFlow logs below warnings stay quiet too (the C++ ones ignore it).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not hasattr(os, "fork"):
        return
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the filter: reads until every writer has closed the pipe
        os.close(write_end)
        code = 0
        try:
            # Ctrl-C goes to the program; the filter must stay to pass on its last lines.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            _copy_lines(read_end, 2)
        except BaseException:  # noqa: BLE001 - a filter that fails must still exit quietly
            code = 1
        finally:
            os._exit(code)
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    _installed = True


def _copy_lines(source: int, target: int) -> None:
    """Copies `source` to `target` line by line, leaving out the noise lines."""
    pending = b""
    while True:
        chunk = os.read(source, 65536)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        kept = b"".join(line + b"\n" for line in lines if not is_noise(line))
        if kept:
            _write_all(target, kept)
        # A partial line with no newline yet (a prompt, a progress bar) waits for one,
        # unless it grows long: then it is passed on as it is.
        if len(pending) > 65536:
            _write_all(target, pending)
            pending = b""
    if pending and not is_noise(pending):
        _write_all(target, pending)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]
