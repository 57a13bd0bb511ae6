"""Serves the similarity canvas for one export (and a gallery index built with it).

keras-siamese canvas --export=runs/demo/export [--index=gallery] [--port=8000] [--host=127.0.0.1]
"""

from __future__ import annotations

import sys

from absl import flags

from keras_siamese import cli
from keras_siamese.errors import UserError


def define_flags(flag_values: flags.FlagValues) -> None:
    """Defines this program's flags."""
    flags.DEFINE_string(
        "export", None, "Export folder of a trained run (WORKDIR/export).", flag_values=flag_values
    )
    flags.DEFINE_string(
        "host",
        "127.0.0.1",
        "Address to bind; 127.0.0.1 keeps the page on this machine.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "port", 8000, "Port to serve on; 0 picks a free one.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "index",
        None,
        "A gallery index built with this export (search_main.py build): its folder, or its "
        "Milvus collection (gallery.db or http://HOST:PORT, optionally #COLLECTION); the "
        "page can then search it for the nearest items to a drawing.",
        flag_values=flag_values,
    )
    flags.DEFINE_float(
        "threshold",
        None,
        "Distance at or under which two drawings are 'same'; default: the export's calibrated "
        "threshold, else the reference's fixed rule (cosine distance 0.8, squared euclidean 1.0).",
        flag_values=flag_values,
    )


def run(flag_values: flags.FlagValues) -> int:
    """Serves the canvas as the parsed `flag_values` say; returns the exit code."""
    export, host, port = flag_values.export, flag_values.host, flag_values.port
    if not export:
        print("error: --export is required: the export folder of a trained run.", file=sys.stderr)
        return 2
    if not 0 <= port <= 65535:
        print(f"error: --port={port} must be 0 to 65535.", file=sys.stderr)
        return 2
    from keras_siamese.serving.canvas import server
    from keras_siamese.serving.index import EmbeddingIndex
    from keras_siamese.serving.similarity import Similarity

    try:
        model = Similarity(export, flag_values.threshold)
        gallery = EmbeddingIndex.load(flag_values.index, model) if flag_values.index else None
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        httpd = server.make_server(model, host, port, gallery)
    except OSError as e:
        print(f"error: cannot serve on {host}:{port} ({e.strerror}).", file=sys.stderr)
        return 1
    host, port = httpd.server_address[:2]
    print(
        f"Serving the similarity canvas of {export} ({model.dataset}, {model.distance_name} "
        f"distance, threshold {model.threshold:.4g} {model.threshold_source}"
        f"{f', a gallery of {len(gallery)}' if gallery else ''}) at "
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


def main() -> None:
    """The program's entry point: `keras-siamese canvas` and `canvas_main.py`."""
    cli.run_program(define_flags, run, flags.FLAGS, doc=__doc__)
