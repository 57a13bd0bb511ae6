"""The canvas server under fire: hostile requests, then a load of concurrent clients.

    python canvas_main.py --export=runs/demo/export --port=8765 &
    python bench/server.py --port=8765 [--fuzz_requests=10000] [--clients=8] [--seconds=30]

Fuzzing sends `--fuzz_requests` seeded random requests, most of them malformed
or hostile (bad JSON, wrong types, huge or negative numbers, nested lists,
truncated and oversized bodies, lying Content-Length headers, odd methods and
paths, broken data URLs), and checks that every one is answered, none with a
5xx status, each error as JSON with a one-line reason and no traceback, and
that the server still compares two images correctly afterwards. The server's
resident memory (read from /proc, so on this machine only) is printed before
and after. The load run then has `--clients` threads post real comparisons for
`--seconds` and prints requests per second and latency percentiles.

Prints two JSON lines, `fuzz` and `load`; exits 1 if fuzzing found a failure.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import random
import statistics
import sys
import threading
import time

import numpy as np
from absl import app, flags

_HOST = flags.DEFINE_string("host", "127.0.0.1", "The server's address.")
_PORT = flags.DEFINE_integer("port", 8000, "The server's port.")
_PID = flags.DEFINE_integer("pid", 0, "The server's process id, to read its memory (0: skip).")
_FUZZ = flags.DEFINE_integer("fuzz_requests", 10_000, "Hostile requests to send.")
_CLIENTS = flags.DEFINE_integer("clients", 8, "Concurrent clients of the load run.")
_SECONDS = flags.DEFINE_float("seconds", 30.0, "Length of the load run.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the hostile requests.")


def _png_data_url(pixels: np.ndarray) -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def _hostile_value(rng: random.Random, depth: int = 0):
    choices = [
        lambda: None,
        lambda: rng.choice([True, False]),
        lambda: rng.randint(-(2**70), 2**70),
        lambda: rng.choice([float("1e308"), -0.0, 3.5]),
        lambda: "".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(0, 40))),
        lambda: "data:image/png;base64," + "".join(rng.choice("A/+=z9") for _ in range(30)),
        lambda: (
            "data:image/png;base64,"
            + base64.b64encode(
                b"\x89PNG\r\n\x1a\n" + bytes(rng.randint(0, 255) for _ in range(40))
            ).decode()
        ),
        lambda: [[rng.randint(-300, 300) for _ in range(rng.randint(0, 5))] for _ in range(3)],
        lambda: [[[rng.random()] * 3] * 2] * 2,
    ]
    if depth < 3:
        choices.append(lambda: [_hostile_value(rng, depth + 1) for _ in range(rng.randint(0, 4))])
        choices.append(
            lambda: {
                rng.choice(["image", "left", "right", "k", "label", "supports", "x"]): (
                    _hostile_value(rng, depth + 1)
                )
                for _ in range(rng.randint(0, 4))
            }
        )
    return rng.choice(choices)()


def _hostile_request(rng: random.Random, good_image: str) -> tuple[str, str, bytes, dict]:
    """A method, path, body and headers, most of them wrong in some way."""
    method = rng.choice(["POST"] * 6 + ["GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"])
    path = rng.choice(
        ["/api/compare", "/api/classify", "/api/search", "/api/info", "/", "/static/canvas.js"]
        + ["/api/" + "x" * rng.randint(0, 300), "/static/../server.py", "/%00", "/static/%2e%2e"]
    )
    kind = rng.randrange(6)
    if kind == 0:  # a well-formed request around one hostile value
        body = json.dumps(
            {
                "left": good_image,
                "right": _hostile_value(rng),
                "image": _hostile_value(rng),
                "supports": [{"label": "a", "image": _hostile_value(rng)}],
                "k": _hostile_value(rng),
            }
        ).encode()
    elif kind == 1:
        body = json.dumps(_hostile_value(rng)).encode()
    elif kind == 2:  # not JSON, or not UTF-8
        body = bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 200)))
    elif kind == 3:  # truncated JSON
        body = json.dumps({"left": good_image, "right": good_image}).encode()
        body = body[: rng.randint(0, len(body))]
    elif kind == 4:  # deep nesting
        depth = rng.randint(10, 5000)
        body = (b"[" * depth) + (b"]" * depth)
    else:
        body = json.dumps({"left": good_image, "right": good_image}).encode()
    headers = {"Content-Type": rng.choice(["application/json", "text/plain", "x/y"])}
    lie = rng.randrange(5)
    if lie == 0:
        headers["Content-Length"] = str(rng.choice([-1, 10**12, 3 << 20]))
    elif lie == 1:
        headers["Content-Length"] = "abc"
    return method, path, body, headers


def _send(method: str, path: str, body: bytes, headers: dict, timeout: float = 30.0):
    conn = http.client.HTTPConnection(_HOST.value, _PORT.value, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for key, value in headers.items():
            conn.putheader(key, value)
        lying = "Content-Length" in headers  # then the body is never sent
        if not lying:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if body and not lying:
            conn.send(body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _rss_mib(pid: int) -> float | None:
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _same_pair_ok(image: str) -> bool:
    status, data = _send(
        "POST", "/api/compare", json.dumps({"left": image, "right": image}).encode(), {}
    )
    return status == 200 and json.loads(data)["verdict"] == "same"


def fuzz(count: int, seed: int, good_image: str) -> dict:
    """Sends `count` hostile requests; returns the figures and the failures found."""
    rng = random.Random(seed)
    failures, statuses = [], {}
    before = _rss_mib(_PID.value)
    start = time.perf_counter()
    for i in range(count):
        method, path, body, headers = _hostile_request(rng, good_image)
        try:
            status, data = _send(method, path, body, headers)
        except (OSError, http.client.HTTPException) as e:
            failures.append(f"request {i} ({method} {path}): no answer ({e!r})")
            continue
        statuses[status] = statuses.get(status, 0) + 1
        if status >= 500:
            failures.append(f"request {i} ({method} {path}): status {status}")
        elif status >= 400 and method != "HEAD":
            try:
                reason = json.loads(data)["error"]
            except (ValueError, KeyError, TypeError):
                failures.append(f"request {i} ({method} {path}): error body is not JSON")
                continue
            if "\n" in reason or "Traceback" in reason:
                failures.append(f"request {i} ({method} {path}): reason {reason!r}")
    seconds = time.perf_counter() - start
    if not _same_pair_ok(good_image):
        failures.append("after fuzzing, the server no longer compares an image with itself")
    return {
        "bench": "fuzz",
        "requests": count,
        "seconds": round(seconds, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "rss_mib_before": before,
        "rss_mib_after": _rss_mib(_PID.value),
        "failures": len(failures),
        "first_failures": failures[:5],
    }


def load(clients: int, seconds: float, images: list[str]) -> dict:
    """`clients` threads posting comparisons for `seconds`: the rate and latencies."""
    latencies, errors, lock = [], [], threading.Lock()
    stop = time.perf_counter() + seconds

    def client(index: int) -> None:
        body = json.dumps({"left": images[index % len(images)], "right": images[0]}).encode()
        while time.perf_counter() < stop:
            begin = time.perf_counter()
            try:
                status, _ = _send("POST", "/api/compare", body, {})
            except (TimeoutError, OSError, http.client.HTTPException) as e:
                status = repr(e)
            elapsed = time.perf_counter() - begin
            with lock:
                latencies.append(elapsed)
                if status != 200:
                    errors.append(status)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    ms = sorted(1000 * x for x in latencies)
    return {
        "bench": "load",
        "clients": clients,
        "seconds": round(wall, 1),
        "requests": len(latencies),
        "requests_per_second": round(len(latencies) / wall, 1),
        "p50_ms": round(statistics.median(ms), 1) if ms else None,
        "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 1) if ms else None,
        "errors": len(errors),
    }


def main(argv: list[str]) -> int:
    del argv
    status, data = _send("GET", "/api/info", b"", {})
    if status != 200:
        print(f"error: no canvas server answers at {_HOST.value}:{_PORT.value}.", file=sys.stderr)
        return 1
    side = json.loads(data)["input_shape"]
    rng = np.random.default_rng(_SEED.value)
    shape = side[:2] if side[2] == 1 else side
    images = [_png_data_url(rng.integers(0, 256, shape, dtype=np.uint8)) for _ in range(4)]
    found = fuzz(_FUZZ.value, _SEED.value, images[0])
    print(json.dumps(found), flush=True)
    if _CLIENTS.value and _SECONDS.value > 0:
        print(json.dumps(load(_CLIENTS.value, _SECONDS.value, images)), flush=True)
    return 1 if found["failures"] else 0


if __name__ == "__main__":
    app.run(main)
