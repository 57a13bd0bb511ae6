"""The embedding projector's files, read back by TensorBoard's own projector plugin."""

from __future__ import annotations

import numpy as np
import pytest

from keras_siamese.evaluation import projector


def test_the_sprite_tiles_images_row_by_row_and_pads_with_black():
    images = np.stack([np.full((2, 3, 1), v, np.uint8) for v in (10, 20, 30)])
    grid = projector.sprite(images)
    assert grid.shape == (4, 6, 3)  # a 2 x 2 grid of 2 x 3 images, grey made RGB
    assert (grid[:2, :3] == 10).all() and (grid[:2, 3:] == 20).all()
    assert (grid[2:, :3] == 30).all() and (grid[2:, 3:] == 0).all()
    with pytest.raises(ValueError, match="exceed a sprite's 8192 pixels"):
        projector.sprite(np.zeros((65_537, 32, 32, 3), np.uint8))


def tensorboard_projector(log_dir: str):
    """GET for the routes of TensorBoard's projector plugin serving `log_dir`."""
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing import plugin_event_multiplexer as em
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.projector import projector_plugin
    from werkzeug import test as werkzeug_test
    from werkzeug import wrappers

    mux = em.EventMultiplexer()
    mux.AddRunsFromDirectory(log_dir)
    provider = data_provider.MultiplexerDataProvider(mux, log_dir)
    context = base_plugin.TBContext(logdir=log_dir, data_provider=provider, multiplexer=mux)
    apps = projector_plugin.ProjectorPlugin(context).get_plugin_apps()

    def get(route: str, query: str = ""):
        client = werkzeug_test.Client(apps[route], wrappers.Response)
        response = client.get(f"{route}?{query}")
        assert response.status_code == 200, response.get_data()
        return response

    return get


def check_projector_files(log_dir: str, embeddings: np.ndarray, classes: list[str], roles):
    """Asserts TensorBoard's projector serves `embeddings` with their classes and a sprite."""
    get = tensorboard_projector(log_dir)
    assert get("/runs").get_json() == ["."]
    query = f"run=.&name={projector.TENSOR_NAME}"
    info = get("/info", "run=.").get_json()["embeddings"][0]
    assert info["tensorShape"] == list(embeddings.shape)
    served = np.frombuffer(get("/tensor", query).get_data(), np.float32)
    np.testing.assert_allclose(served.reshape(embeddings.shape), embeddings, rtol=1e-4, atol=1e-4)
    rows = get("/metadata", query).get_data(as_text=True).splitlines()
    assert rows[0] == "class\trole" and rows[1:] == [
        f"{c}\t{r}" for c, r in zip(classes, roles, strict=True)
    ]
    sprite = get("/sprite_image", query)
    assert sprite.headers["Content-Type"] == "image/png"
    return info


def test_written_files_are_what_tensorboard_serves(tmp_path):
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(5, 4)).astype(np.float32)
    labels = np.array([0, 1, 1, 2, 0])
    roles = ["seen", "seen", "unseen", "unseen", "unseen"]
    images = rng.integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
    projector.write(str(tmp_path), embeddings, labels, ["a", "b", "c"], roles, images)
    info = check_projector_files(str(tmp_path), embeddings, ["a", "b", "b", "c", "a"], roles)
    assert info["sprite"]["singleImageDim"] == [28, 28]
