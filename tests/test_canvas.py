"""The similarity canvas: drawing preprocessing, the JSON API, and the page in a real browser."""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_siamese.serving.canvas import drawing
from tests.conftest import ROOT, program_error, program_output


def _png_data_url(image: np.ndarray) -> str:
    import tensorflow as tf

    data = tf.io.encode_png(image).numpy()
    return "data:image/png;base64," + base64.b64encode(data).decode()


# ------------------------------------------------------------ preprocessing


def test_a_real_mnist_digit_drawn_on_the_canvas_comes_back_as_itself(data_root):
    from keras_siamese.serving import model_inputs
    from keras_siamese.serving.canvas import drawing

    with np.load(os.path.join(data_root, "mnist", "mnist_test.npz")) as npz:
        digits = npz["images"][:200]
    originals = digits.reshape(len(digits), -1).astype(np.float64)
    for i in range(0, 200, 20):
        # As drawn on the 280 x 280 canvas: ten times larger, opaque RGBA.
        big = np.kron(digits[i], np.ones((10, 10), np.uint8))
        canvas = np.dstack([big, big, big, np.full_like(big, 255)])
        pixels = drawing.decode_data_url(_png_data_url(canvas))
        back = model_inputs.model_input(pixels, "mnist", (28, 28, 1))
        assert back.shape == (28, 28, 1) and back.dtype == np.uint8
        flat = back.reshape(-1).astype(np.float64)
        assert np.corrcoef(flat, originals[i])[0, 1] > 0.9
        # Nearer its own original than any of 199 other real digits.
        assert np.argmin(((originals - flat) ** 2).sum(axis=1)) == i


def test_a_dark_digit_on_white_is_inverted_scaled_and_centred():
    from keras_siamese.serving import model_inputs

    page = np.full((300, 200, 3), 255, np.uint8)
    page[40:240, 20:60] = 0  # a tall bar, far from the centre
    digit = model_inputs.mnist_digit(page)[..., 0].astype(np.float64)
    rows, cols = np.flatnonzero(digit.max(1) > 0), np.flatnonzero(digit.max(0) > 0)
    assert rows[-1] - rows[0] + 1 == 20  # the longer side fills the 20-pixel box
    assert cols[-1] - cols[0] + 1 == 4  # 40 x 200 keeps its aspect ratio
    mass = digit.sum()
    assert abs((digit.sum(1) * np.arange(28)).sum() / mass - 14.0) <= 0.5
    assert abs((digit.sum(0) * np.arange(28)).sum() / mass - 14.0) <= 0.5
    assert digit.max() == 255


@pytest.mark.parametrize(
    "value, message",
    [
        ("data:image/jpeg;base64,AAAA", "PNG data URL"),
        ("data:image/png;base64,@@@", "malformed"),
        ("data:image/png;base64," + base64.b64encode(b"GIF89a" * 10).decode(), "not a PNG"),
    ],
)
def test_images_that_are_not_pngs_are_refused(value, message):
    from keras_siamese.serving import model_inputs
    from keras_siamese.serving.canvas import drawing

    with pytest.raises(model_inputs.ImageError, match=message):
        drawing.decode_data_url(value)


def test_a_huge_png_is_refused_from_its_header():
    from keras_siamese.serving import model_inputs
    from keras_siamese.serving.canvas import drawing

    header = drawing.PNG_SIGNATURE + b"\x00\x00\x00\rIHDR" + (5000).to_bytes(4, "big") * 2
    url = "data:image/png;base64," + base64.b64encode(header + b"\x08\x02\x00\x00\x00").decode()
    with pytest.raises(model_inputs.ImageError, match="5000 x 5000"):
        drawing.decode_data_url(url)


def test_an_empty_drawing_is_refused():
    from keras_siamese.serving import model_inputs

    with pytest.raises(model_inputs.ImageError, match="empty"):
        model_inputs.mnist_digit(np.zeros((280, 280, 4), np.uint8))


# --------------------------------------------------------------- the server


@pytest.fixture(scope="module")
def gallery(smoke_run, data_root, tmp_path_factory) -> tuple[str, np.ndarray]:
    """An index, built with the smoke run's export, of four CIFAR-100 test images: two as
    PNG files (ids: their paths) and two in an .npz file (ids: FILE.npz[i])."""
    from PIL import Image

    with np.load(os.path.join(data_root, "cifar100", "cifar100_test.npz")) as npz:
        pictures = npz["images"][[0, 100, 200, 300]]
    folder = tmp_path_factory.mktemp("gallery")
    for i in (0, 1):
        Image.fromarray(pictures[i]).save(folder / f"{i}.png")
    np.savez(folder.parent / "more.npz", images=pictures[2:])
    index = str(folder.parent / "index")
    export = f"--export={os.path.join(smoke_run, 'export')}"
    program_output("search_main", "build", export, f"--images={folder}", f"--out={index}")
    program_output(
        "search_main", "add", f"--index={index}", f"--images={folder.parent / 'more.npz'}"
    )
    return index, pictures


@pytest.fixture(scope="module")
def server(smoke_run, gallery):
    """The canvas server of the smoke run's export and its gallery, on a free port."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "canvas_main.py",
            f"--export={os.path.join(smoke_run, 'export')}",
            f"--index={gallery[0]}",
            "--port=0",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # printed once the model is loaded and the port bound
        assert "http://127.0.0.1:" in line, line
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        yield port
    finally:
        proc.kill()
        proc.wait()


def _request(port: int, method: str, path: str, body: bytes | None = None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _post(port: int, path: str, payload: object):
    status, data = _request(port, "POST", path, json.dumps(payload).encode())
    return status, json.loads(data)


@pytest.fixture(scope="module")
def cifar_images(data_root):
    with np.load(os.path.join(data_root, "cifar100", "cifar100_test.npz")) as npz:
        return npz["images"][:300:100]  # three images of three classes


def test_the_same_image_twice_is_the_same(server, cifar_images):
    url = _png_data_url(cifar_images[0])
    status, answer = _post(server, "/api/compare", {"left": url, "right": url})
    assert status == 200
    assert answer["similarity"] == pytest.approx(1.0, abs=1e-5)
    assert answer["distance"] == pytest.approx(0.0, abs=1e-5)
    assert answer["verdict"] == "same"


def test_compare_answers_the_models_own_distance(server, smoke_run, cifar_images):
    from keras_siamese.serving import export

    with open(os.path.join(smoke_run, "export", "metadata.json")) as f:
        metadata = json.load(f)
    status, answer = _post(
        server,
        "/api/compare",
        {"left": cifar_images[0].tolist(), "right": _png_data_url(cifar_images[1])},
    )
    assert status == 200
    tower = export.load_tower(os.path.join(smoke_run, "export"))
    a, b = np.asarray(tower(cifar_images[:2]), np.float64)
    expected = 1.0 - a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert answer["distance"] == pytest.approx(expected, abs=1e-4)
    calibrated = metadata["metrics"]["seen"]["pair"]["calibrated"]["threshold"]
    assert answer["threshold"] == pytest.approx(calibrated)
    assert answer["verdict"] == ("same" if expected <= calibrated else "different")


def test_classify_ranks_the_supports_by_distance(server, cifar_images):
    supports = [
        {"label": "other", "image": _png_data_url(cifar_images[1])},
        {"label": "itself", "image": _png_data_url(cifar_images[0])},
        {"label": "third", "image": cifar_images[2].tolist()},
    ]
    status, answer = _post(
        server, "/api/classify", {"image": _png_data_url(cifar_images[0]), "supports": supports}
    )
    assert status == 200
    assert answer["predicted"] == "itself"
    distances = [r["distance"] for r in answer["ranking"]]
    assert distances == sorted(distances) and distances[0] == pytest.approx(0.0, abs=1e-5)
    assert {r["label"] for r in answer["ranking"]} == {"other", "itself", "third"}


@pytest.mark.parametrize(
    "method, path, body, headers, status, reason",
    [
        ("POST", "/api/compare", b"{not json", {}, 400, "not valid JSON"),
        ("POST", "/api/compare", b"[1, 2]", {}, 400, "JSON object"),
        ("POST", "/api/compare", b'{"left": "hello", "right": "x"}', {}, 400, "PNG data URL"),
        ("POST", "/api/compare", b'{"left": [[1, 2], [3]], "right": 1}', {}, 400, "'left'"),
        ("POST", "/api/compare", b'{"left": [[300]], "right": [[1]]}', {}, 400, "0 to 255"),
        ("POST", "/api/compare", b'{"right": [[1]]}', {}, 400, "no 'left' image"),
        ("POST", "/api/classify", b'{"image": [[1]], "supports": []}', {}, 400, "non-empty"),
        (
            "POST",
            "/api/classify",
            b'{"image": [[1]], "supports": [{"image": 1}]}',
            {},
            400,
            "label",
        ),
        # A huge body is refused from its Content-Length, before it is read.
        ("POST", "/api/compare", b"x" * 100, {"Content-Length": str(3 << 20)}, 413, "limit"),
        ("POST", "/api/nothing", b"{}", {}, 404, "No API route"),
        ("GET", "/static/../server.py", None, {}, 404, "No page"),
        ("GET", "/static/%2e%2e/server.py", None, {}, 404, "No page"),
        ("GET", "/../../etc/passwd", None, {}, 404, "No page"),
        ("GET", "/static/", None, {}, 404, "No page"),
        ("DELETE", "/api/compare", None, {}, 405, "DELETE is not served"),
        ("OPTIONS", "/api/compare", None, {}, 405, "OPTIONS is not served"),
        ("BREW", "/", None, {}, 405, "BREW is not served"),
        ("POST", "/api/compare", b"[" * 5000 + b"]" * 5000, {}, 400, "nested too deeply"),
    ],
)
def test_bad_requests_get_a_reason_and_the_server_keeps_serving(
    server, cifar_images, method, path, body, headers, status, reason
):
    got, data = _request(server, method, path, body, headers)
    assert got == status
    answer = json.loads(data)
    assert reason in answer["error"] and "\n" not in answer["error"]
    assert "Traceback" not in answer["error"]
    # The next request is answered as usual.
    url = _png_data_url(cifar_images[0])
    assert _post(server, "/api/compare", {"left": url, "right": url})[0] == 200


def test_search_finds_the_gallery_item_drawn_and_shows_its_picture(server, gallery):
    _, pictures = gallery
    status, answer = _post(server, "/api/search", {"image": _png_data_url(pictures[2]), "k": 4})
    assert status == 200
    results = answer["results"]
    assert len(results) == 4 and results[0]["id"].endswith("more.npz[0]")
    assert abs(results[0]["distance"]) < 1e-4 and results[0]["similarity"] > 0.999
    assert [r["distance"] for r in results] == sorted(r["distance"] for r in results)
    # Each item comes with its picture: the .npz entry's and the PNG files' own pixels.
    for row in results:
        assert row["image"].startswith("data:image/png;base64,")
    first = next(r for r in results if r["id"].endswith("0.png"))
    np.testing.assert_array_equal(drawing.decode_data_url(first["image"]), pictures[0])
    status, answer = _post(server, "/api/search", {"image": _png_data_url(pictures[0]), "k": 0})
    assert status == 400 and "'k' must be a whole number 1 to 20" in answer["error"]
    status, info = _request(server, "GET", "/api/info")
    assert json.loads(info)["gallery"] == 4


def test_hostile_requests_and_concurrent_clients_leave_the_server_serving(server):
    from tests.conftest import run_main

    result = run_main(
        "bench/server.py",
        f"--port={server}",
        "--fuzz_requests=4000",
        "--clients=4",
        "--seconds=1",
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    fuzz, load = (json.loads(line) for line in result.stdout.splitlines() if line.startswith("{"))
    assert fuzz["requests"] == 4000 and fuzz["failures"] == 0
    assert sum(fuzz["statuses"].values()) == 4000 and "200" in fuzz["statuses"]
    assert not any(code.startswith("5") for code in fuzz["statuses"])
    assert load["requests"] > 0 and load["errors"] == 0


def test_the_page_and_its_files_are_served(server):
    status, page = _request(server, "GET", "/")
    assert status == 200 and b'id="compare"' in page
    for name in ("canvas.js", "canvas.css"):
        assert _request(server, "GET", f"/static/{name}")[0] == 200
    status, info = _request(server, "GET", "/api/info")
    assert status == 200 and json.loads(info)["distance"] == "cosine"


def test_a_folder_that_is_not_an_export_is_one_line(capsys, tmp_path):
    assert "not an export" in program_error(capsys, "canvas_main", f"--export={tmp_path}")


# -------------------------------------------------------------- the browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Debian's chromium driven by Playwright, with a fresh profile."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing under CI: .ci/run installs it.")
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1100, "height": 1100},
        )
        try:
            yield context
        finally:
            context.close()


def _draw(page, selector: str, strokes: list[list[tuple[float, float]]]) -> None:
    """Draws polylines with the mouse; points are fractions of the canvas's size."""
    box = page.locator(selector).bounding_box()
    for stroke in strokes:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=8)
        page.mouse.up()


SEVEN = [[(0.25, 0.2), (0.75, 0.2), (0.4, 0.85)]]
ZERO = [[(0.5, 0.15), (0.75, 0.3), (0.78, 0.6), (0.5, 0.85), (0.25, 0.6), (0.28, 0.3), (0.5, 0.15)]]
ONE = [[(0.5, 0.15), (0.5, 0.85)]]


@pytest.mark.slow  # a real browser: make test-slow
def test_drawing_comparing_and_classifying_in_a_real_browser(server, browser, tmp_path):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"http://127.0.0.1:{server}/")
    page.wait_for_function("document.getElementById('info').textContent.includes('distance')")

    _draw(page, "#left", SEVEN)
    _draw(page, "#right", SEVEN)
    page.click("#compare")
    page.wait_for_selector("#result:not([hidden])")
    verdict = page.text_content("#verdict")
    similarity = float(page.text_content("#similarity"))
    assert verdict in ("same", "different")
    assert 0.0 <= similarity <= 1.0001
    threshold = float(page.text_content("#threshold"))
    distance = float(page.text_content("#distance"))
    assert verdict == ("same" if distance <= threshold + 5e-5 else "different")
    page.screenshot(path=str(tmp_path / "canvas.png"), full_page=True)
    assert (tmp_path / "canvas.png").stat().st_size > 10_000

    # One-shot: two labelled examples, then a third drawing.
    page.click("#clear-left")
    _draw(page, "#left", ZERO)
    page.fill("#example-label", "zero")
    page.click("#keep-example")
    _draw(page, "#left", ONE)
    page.fill("#example-label", "one")
    page.click("#keep-example")
    assert page.locator("#examples li").count() == 2
    page.click("#clear-right")
    _draw(page, "#right", ONE)
    page.click("#classify")
    page.wait_for_selector("#prediction-line:not([hidden])")
    assert page.text_content("#prediction") in ("zero", "one")
    rows = page.locator("#ranking tbody tr")
    assert rows.count() == 2
    distances = [float(rows.nth(i).locator("td").nth(1).text_content()) for i in range(2)]
    assert distances == sorted(distances)
    assert page.text_content("#message") == ""
    assert errors == []
