"""Figures are drawn even for a model that maps every image to one point."""

import numpy as np

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
