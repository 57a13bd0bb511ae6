"""The canvas's HTTP server: the page, and a JSON API around one exported model.

Routes:
    GET  /                  the page
    GET  /static/NAME       the page's script and style (files of this package only)
    GET  /api/info          the model: data set, input shape, distance, threshold
    POST /api/compare       {"left": IMAGE, "right": IMAGE}
                            -> distance, similarity, threshold, verdict ("same" / "different")
    POST /api/classify      {"image": IMAGE, "supports": [{"label": "...", "image": IMAGE}, ...]}
                            -> the supports ranked by distance, and the predicted label
    POST /api/search        {"image": IMAGE, "k": 5}, when started with a gallery index
                            -> the k nearest gallery items: id, distance, similarity, and
                               the item's picture when its id names an image file or an
                               .npz entry (FILE.npz[i]), else null

An IMAGE is a PNG data URL or a nested list of 0-255 pixel values. Every bad
request gets a 4xx answer with a one-line JSON reason; the server keeps serving.

The standard library's threading HTTP server is enough for a local page with
a handful of routes, and adds no dependency. The model is the Python API's
`Similarity` (its calls take a lock), so the page and a user's code get the
same embeddings.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from keras_siamese.serving import model_inputs
from keras_siamese.serving.canvas import drawing
from keras_siamese.serving.index import EmbeddingIndex
from keras_siamese.serving.similarity import Similarity

MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_SUPPORTS = 50
MAX_RESULTS = 20
_NPZ_ENTRY = re.compile(r"^(?P<path>.+\.npz)\[(?P<index>\d+)\]$")
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
}


class RequestError(Exception):
    """A bad request: answered with `status` and a one-line reason."""

    def __init__(self, status: HTTPStatus, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def similarity_of(distance: np.ndarray, name: str) -> np.ndarray:
    """Similarity in (0, 1], 1 for identical embeddings.

    Cosine: the cosine similarity, 1 - d. Squared euclidean: 1 / (1 + d).
    """
    return 1.0 - distance if name == "cosine" else 1.0 / (1.0 + distance)


def info(model: Similarity, gallery: EmbeddingIndex | None = None) -> dict:
    """GET /api/info: what the page shows about the model (and its gallery's size)."""
    return {
        "dataset": model.dataset,
        "input_shape": list(model.input_shape),
        "distance": model.distance_name,
        "threshold": model.threshold,
        "threshold_source": model.threshold_source,
        "split": model.metadata.split,
        "gallery": len(gallery) if gallery is not None else 0,
    }


def search(gallery: EmbeddingIndex, image: np.ndarray, k: int) -> dict:
    """The `k` gallery items nearest to a preprocessed image, with their pictures."""
    ids, distances = gallery.search(image, k=k)
    name = gallery.distance
    return {
        "results": [
            {
                "id": str(item),
                "distance": round(float(d), 6),
                "similarity": round(float(similarity_of(d, name)), 6),
                "image": picture_of(str(item)),
            }
            for item, d in zip(ids[0], distances[0], strict=True)
        ]
    }


def picture_of(item_id: str) -> str | None:
    """A PNG data URL of the gallery item `item_id` names (an image file, or FILE.npz[i])."""
    try:
        entry = _NPZ_ENTRY.match(item_id)
        if entry:
            pixels = _npz_images(entry["path"])[int(entry["index"])]
        elif os.path.isfile(item_id):
            pixels = model_inputs.read_image(item_id)
        else:
            return None
    except (model_inputs.ImageError, OSError, ValueError, KeyError, IndexError):
        return None
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.squeeze(np.asarray(pixels, np.uint8))).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


@functools.lru_cache(maxsize=4)
def _npz_images(path: str) -> np.ndarray:
    with np.load(path, allow_pickle=False) as data:
        return data["images"]


def compare(model: Similarity, left: np.ndarray, right: np.ndarray) -> dict:
    """Distance, similarity and verdict of two preprocessed images."""
    distance = float(model.distance(left, right)[0])
    name = model.distance_name
    return {
        "distance": round(distance, 6),
        "similarity": round(float(similarity_of(distance, name)), 6),
        "threshold": model.threshold,
        "threshold_similarity": round(float(similarity_of(model.threshold, name)), 6),
        "verdict": "same" if distance <= model.threshold else "different",
    }


def classify(model: Similarity, image: np.ndarray, supports: list[tuple[str, np.ndarray]]) -> dict:
    """Ranks labelled support images by distance to `image` (one-shot classification)."""
    distances = model.distance(image, np.stack([support for _, support in supports]))
    order = np.argsort(distances, kind="stable")
    ranking = [
        {
            "label": supports[i][0],
            "distance": round(float(distances[i]), 6),
            "similarity": round(float(similarity_of(distances[i], model.distance_name)), 6),
        }
        for i in order
    ]
    return {"predicted": ranking[0]["label"], "ranking": ranking}


def _image_field(body: dict, key: str, model: Similarity) -> np.ndarray:
    if key not in body:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"The request has no '{key}' image.")
    value = body[key]
    try:
        pixels = (
            drawing.decode_data_url(value) if isinstance(value, str) else drawing.from_array(value)
        )
        return model_inputs.model_input(pixels, model.dataset, model.input_shape)
    except model_inputs.ImageError as e:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"'{key}': {e}") from None


def handle_compare(body: dict, model: Similarity) -> dict:
    """POST /api/compare."""
    return compare(model, _image_field(body, "left", model), _image_field(body, "right", model))


def handle_classify(body: dict, model: Similarity) -> dict:
    """POST /api/classify."""
    supports = body.get("supports")
    if not isinstance(supports, list) or not supports:
        raise RequestError(
            HTTPStatus.BAD_REQUEST, "'supports' must be a non-empty list of labelled images."
        )
    if len(supports) > MAX_SUPPORTS:
        raise RequestError(
            HTTPStatus.BAD_REQUEST, f"At most {MAX_SUPPORTS} supports; got {len(supports)}."
        )
    labelled = []
    for i, support in enumerate(supports):
        if not isinstance(support, dict) or not isinstance(support.get("label"), str):
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"Support {i} must be an object with a 'label' string."
            )
        labelled.append((support["label"], _image_field(support, "image", model)))
    return classify(model, _image_field(body, "image", model), labelled)


def handle_search(body: dict, model: Similarity, gallery: EmbeddingIndex | None) -> dict:
    """POST /api/search."""
    if gallery is None:
        raise RequestError(
            HTTPStatus.NOT_FOUND, "This server has no gallery: start it with --index=IDX."
        )
    k = body.get("k", 5)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_RESULTS:
        raise RequestError(
            HTTPStatus.BAD_REQUEST, f"'k' must be a whole number 1 to {MAX_RESULTS}."
        )
    return search(gallery, _image_field(body, "image", model), k)


POST_ROUTES = {
    "/api/compare": lambda body, model, gallery: handle_compare(body, model),
    "/api/classify": lambda body, model, gallery: handle_classify(body, model),
    "/api/search": handle_search,
}


class CanvasHandler(BaseHTTPRequestHandler):
    """Serves the page and the API of the server's `model`."""

    server_version = "keras-siamese-canvas"
    model: Similarity  # set on the subclass made by make_server
    gallery: EmbeddingIndex | None = None

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: HTTPStatus, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _fail(self, error: RequestError) -> None:
        # The rest of a refused body may be unread: do not reuse the connection.
        self.close_connection = True
        self._send_json(error.status, {"error": error.reason})

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/api/info":
            self._send_json(HTTPStatus.OK, info(self.model, self.gallery))
            return
        name = "index.html" if path in ("/", "/index.html") else None
        if path.startswith("/static/"):
            name = path[len("/static/") :]
        # Only names listed in the package's static folder: no path can leave it.
        if name is None or name not in os.listdir(STATIC_DIR):
            self._fail(RequestError(HTTPStatus.NOT_FOUND, f"No page at {path}."))
            return
        content_type = CONTENT_TYPES.get(os.path.splitext(name)[1], "application/octet-stream")
        with open(os.path.join(STATIC_DIR, name), "rb") as f:
            self._send(HTTPStatus.OK, f.read(), content_type)

    do_HEAD = do_GET

    def do_POST(self) -> None:
        try:
            route = POST_ROUTES.get(self.path)
            if route is None:
                raise RequestError(HTTPStatus.NOT_FOUND, f"No API route {self.path}.")
            self._send_json(HTTPStatus.OK, route(self._read_json(), self.model, self.gallery))
        except RequestError as e:
            self._fail(e)
        except Exception as e:  # noqa: BLE001 - a bug must not take the server down
            self.log_error("request failed: %r", e)
            self._fail(RequestError(HTTPStatus.INTERNAL_SERVER_ERROR, "The request failed."))

    def _refuse_method(self) -> None:
        self._fail(
            RequestError(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not served here.")
        )

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method

    def send_error(self, code: int, message: str | None = None, explain: str | None = None):
        """What the base class refuses itself (a malformed request line, an unknown
        method, a URI too long) is answered as JSON too, in one line."""
        status = HTTPStatus(code)
        reason = (message or status.phrase).replace("\n", " ")
        if status == HTTPStatus.NOT_IMPLEMENTED:  # a method no handler serves
            status, reason = HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not served here."
        self.close_connection = True
        self._send_json(status, {"error": reason})

    def _read_json(self) -> dict:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "A Content-Length header is required.")
        if int(length) > MAX_BODY_BYTES:
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"The body has {int(length)} bytes; the limit is {MAX_BODY_BYTES}.",
            )
        raw = self.rfile.read(int(length))
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise RequestError(HTTPStatus.BAD_REQUEST, "The body is not valid JSON.") from None
        except RecursionError:
            raise RequestError(HTTPStatus.BAD_REQUEST, "The body is nested too deeply.") from None
        if not isinstance(body, dict):
            raise RequestError(HTTPStatus.BAD_REQUEST, "The body must be a JSON object.")
        return body


def make_server(
    model: Similarity, host: str, port: int, gallery: EmbeddingIndex | None = None
) -> ThreadingHTTPServer:
    """An HTTP server for `model` (and a `gallery` index of it) bound to host:port (port
    0: any free port)."""
    handler = type("BoundCanvasHandler", (CanvasHandler,), {"model": model, "gallery": gallery})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
