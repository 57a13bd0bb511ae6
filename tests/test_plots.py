"""Figures are drawn even for a model that maps every image to one point."""

import numpy as np
import pytest

from keras_siamese.evaluation import plots, protocol

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == PNG_MAGIC


def test_every_figure_of_a_collapsed_model(tmp_path):
    labels = np.repeat(np.arange(4), 6)
    emb = np.ones((24, 8), np.float32)
    images = np.zeros((24, 8, 8, 3), np.uint8)
    names = ["a", "b", "c", "d"]
    scores = protocol.pair_scores(emb, labels, "cosine", num_pairs=40)
    paths = [tmp_path / n for n in ("d.png", "r.png", "n.png", "m.png")]
    plots.plot_distances(scores, "cosine", 0.8, 0.0, str(paths[0]))
    plots.plot_roc(scores, str(paths[1]))
    plots.plot_nearest_supports(images, emb, labels, names, "cosine", str(paths[2]))
    plots.plot_embedding_map(emb, labels, names, "cosine", str(paths[3]))
    assert all(_is_png(p) for p in paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)


def test_learning_curves_against_images_add_a_row_of_panels(tmp_path):
    from PIL import Image

    from keras_siamese.evaluation.results import CurvePoint

    labels = np.repeat(np.arange(5), 6)
    emb = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    embeddings = protocol.Embeddings(emb, labels, emb, labels, emb[:0], labels[:0])
    metrics = protocol.evaluate(embeddings, "cosine").metrics
    points = [CurvePoint(epoch=e, file="", train_seconds=60.0 * e, metrics=metrics) for e in (1, 2)]
    plots.plot_learning_curve(points, str(tmp_path / "minutes.png"))
    plots.plot_learning_curve(points, str(tmp_path / "both.png"), images_per_epoch=7680)
    minutes, both = (Image.open(tmp_path / n).size for n in ("minutes.png", "both.png"))
    assert minutes[0] == both[0] and both[1] > 1.8 * minutes[1]


def test_every_run_of_a_report_has_its_own_line_style():
    styles = plots.run_styles(13)
    assert len({tuple(sorted(style.items())) for style in styles}) == 13
    # The first ten keep matplotlib's solid default lines; the eleventh shares the first's
    # colour and differs in its line.
    assert styles[0]["linestyle"] == "-" and styles[10]["color"] == styles[0]["color"]
    assert styles[10]["linestyle"] != "-"


def test_accuracy_against_images_draws_runs_of_any_budget_and_writes_it_whole(
    tmp_path, monkeypatch
):
    curves = {"short": [(100, 0.3), (400, 0.5)], "long": [(1000, 0.2), (8000, 0.4)], "none": []}
    path = tmp_path / "tta.png"
    plots.plot_accuracy_against_images(curves, "5-way 1-shot (%)", str(path))
    assert _is_png(path)
    before = path.read_bytes()

    def failing_savefig(self, *args, **kwargs):
        raise OSError("disk full")

    import matplotlib.figure

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", failing_savefig)
    with pytest.raises(OSError, match="disk full"):
        plots.plot_accuracy_against_images(curves, "5-way 1-shot (%)", str(path))
    # The earlier figure is left as it was, and nothing half-written beside it.
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["tta.png"]
