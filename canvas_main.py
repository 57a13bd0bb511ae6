"""Serves the similarity canvas for one export.

python canvas_main.py --export=runs/demo/export [--port=8000] [--host=127.0.0.1]
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from keras_siamese import cli  # noqa: E402
from keras_siamese.errors import UserError  # noqa: E402

_EXPORT = flags.DEFINE_string("export", None, "Export folder of a trained run (WORKDIR/export).")
_HOST = flags.DEFINE_string(
    "host", "127.0.0.1", "Address to bind; 127.0.0.1 keeps the page on this machine."
)
_PORT = flags.DEFINE_integer("port", 8000, "Port to serve on; 0 picks a free one.")
_THRESHOLD = flags.DEFINE_float(
    "threshold",
    None,
    "Distance at or under which two drawings are 'same'; default: the export's calibrated "
    "threshold, else the reference's fixed rule (cosine distance 0.8, squared euclidean 1.0).",
)


def main(argv: list[str]) -> int:
    del argv
    if not _EXPORT.value:
        print("error: --export is required: the export folder of a trained run.", file=sys.stderr)
        return 2
    if not 0 <= _PORT.value <= 65535:
        print(f"error: --port={_PORT.value} must be 0 to 65535.", file=sys.stderr)
        return 2
    from keras_siamese.serving.canvas import server

    try:
        model = server.SimilarityModel(_EXPORT.value, _THRESHOLD.value)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        httpd = server.make_server(model, _HOST.value, _PORT.value)
    except OSError as e:
        print(
            f"error: cannot serve on {_HOST.value}:{_PORT.value} ({e.strerror}).", file=sys.stderr
        )
        return 1
    host, port = httpd.server_address[:2]
    print(
        f"Serving the similarity canvas of {_EXPORT.value} ({model.dataset}, {model.distance} "
        f"distance, threshold {model.threshold:.4g} {model.threshold_source}) at "
        f"http://{host}:{port}/ - Ctrl-C stops.",
        flush=True,
    )
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=lambda argv: cli.parse_flags(argv, flags.FLAGS))
