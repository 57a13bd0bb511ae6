"""The native libraries' start-up lines stay out of a program's output; nothing else does."""

import os
import subprocess
import sys
import textwrap

from keras_siamese import native_logs
from tests.conftest import ROOT

# Lines as TensorFlow 2.21 and FAISS print them on a CPU machine.
NOISE = [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    b"I0000 00:00:1796524611.373896    5009 port.cc:153] oneDNN custom operations are on.",
    b"I0000 00:00:1796524611.374518    5009 cudart_stub.cc:31] Could not find cuda drivers",
    b"E0000 00:00:1796524613.454118    5009 cuda_platform.cc:52] failed call to cuInit: "
    b"INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    b"To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild "
    b"TensorFlow with the appropriate compiler flags.",
]
KEPT = [
    b"error: the data directory /x does not exist.",
    b"E0000 00:00:1796524613.454118    5009 op_kernel.cc:1830] OP_REQUIRES failed: bad shape",
    b"F0000 00:00:1796524613.454118    5009 cuda_platform.cc:52] Check failed: fatal",
    b"Traceback (most recent call last):",
]


def test_the_noise_patterns_match_the_start_up_lines_only():
    assert all(native_logs.is_noise(line) for line in NOISE)
    assert not any(native_logs.is_noise(line) for line in KEPT)


_CHILD = textwrap.dedent(
    """
    import os, sys
    from keras_siamese import native_logs
    native_logs.filter_stderr(sys.argv)
    lines = {lines!r}
    for line in lines:
        os.write(2, line + b"\\n")
    if "--no_tensorflow" not in sys.argv:
        import tensorflow as tf
        tf.constant(1.0) + 1.0  # the first op, where TensorFlow prints its CUDA lines
    print("done", flush=True)
    sys.stderr.write("error: the last line before a crash\\n")
    sys.stderr.flush()
    os.kill(os.getpid(), 9)
    """
)


def _run_child(*args, env=None):
    code = _CHILD.format(lines=NOISE + KEPT)
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_a_program_prints_no_start_up_line_but_every_other_even_when_it_dies():
    result = _run_child(env={"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert result.returncode == -9
    err = result.stderr.splitlines()
    assert not [line for line in err if native_logs.is_noise(line)], result.stderr
    for line in KEPT:
        assert line in err
    assert err[-1] == b"error: the last line before a crash"
    assert result.stdout == b"done\n"


def test_verbose_shows_the_start_up_lines():
    result = _run_child("--verbose", "--no_tensorflow")  # the lines above suffice here
    err = result.stderr.splitlines()
    assert all(line in err for line in NOISE + KEPT)
