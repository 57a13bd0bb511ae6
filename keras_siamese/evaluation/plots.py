"""Figures of one evaluation, as PNG files written atomically.

The workdir names them (`keras_siamese.workdir.FIGURES`):

* `distances.png`: same-class and different-class pair distances, with the
  calibrated and the fixed threshold;
* `roc.png`: the ROC curve of the seen-class pairs, with its AUC and EER;
* `nearest_supports.png`: unseen-class queries beside their nearest supports
  (first image of each class), correct ones framed green, wrong ones red;
* `embedding_map.png`: unseen-class embeddings projected on their first two
  principal components, coloured by class.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from keras_siamese import files  # noqa: E402
from keras_siamese.evaluation import protocol  # noqa: E402
from keras_siamese.evaluation.protocol import PairScores  # noqa: E402
from keras_siamese.evaluation.results import Accuracy, CurvePoint  # noqa: E402
from keras_siamese.model import distances  # noqa: E402

_DISTANCE_LABELS = {"cosine": "cosine distance (1 - cos)", "euclidean": "squared L2 distance"}


def save_figure(fig: plt.Figure, path: str) -> None:
    """Writes `fig` to `path` as a PNG (whole or not at all) and closes it."""
    try:
        files.write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    finally:
        plt.close(fig)


def plot_distances(
    scores: PairScores,
    distance: str,
    fixed_threshold: float,
    calibrated_threshold: float | None,
    path: str,
) -> None:
    """Histograms of same-class and different-class pair distances with the thresholds."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    bins = np.linspace(scores.distances.min(), scores.distances.max(), 60)
    ax.hist(scores.distances[scores.same], bins=bins, alpha=0.6, label="same class")
    ax.hist(scores.distances[~scores.same], bins=bins, alpha=0.6, label="different class")
    if calibrated_threshold is not None:
        ax.axvline(calibrated_threshold, color="k", label=f"calibrated {calibrated_threshold:.3f}")
    ax.axvline(fixed_threshold, color="k", linestyle="--", label=f"fixed {fixed_threshold:g}")
    ax.set_xlabel(_DISTANCE_LABELS[distance])
    ax.set_ylabel("pairs")
    ax.set_title("Seen-class test pairs")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def plot_roc(scores: PairScores, path: str) -> None:
    """The ROC curve of answering "same" below a distance threshold."""
    fpr, tpr, _ = protocol.roc_curve(scores)
    auc = protocol.roc_auc(scores)
    eer = protocol.equal_error_rate(scores)
    fig, ax = plt.subplots(figsize=(4.8, 4.8))
    ax.plot(fpr, tpr, label=f"AUC {auc:.3f}")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    ax.plot([eer], [1 - eer], "o", color="k", label=f"EER {eer:.3f}")
    ax.set_xlabel("false positive rate (different pairs called same)")
    ax.set_ylabel("true positive rate")
    ax.set_title("Seen-class test pairs")
    ax.legend(loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)


def _show(ax: plt.Axes, image: np.ndarray, title: str = "", colour: str | None = None) -> None:
    ax.imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=7)
    for spine in ax.spines.values():
        spine.set_visible(colour is not None)
        if colour:
            spine.set_color(colour)
            spine.set_linewidth(3)


def plot_nearest_supports(
    images: np.ndarray,
    embeddings: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    distance: str,
    path: str,
    rows: int = 8,
    neighbours: int = 5,
    seed: int = 0,
) -> None:
    """A grid: each row a seeded random query, then its nearest supports in order.

    Supports are the first test image of each class (the one-shot protocol);
    a support of the query's own class is framed green, others red.
    """
    labels = np.asarray(labels)
    supports = protocol.first_image_supports(labels)
    candidates = np.setdiff1d(np.arange(len(labels)), supports)
    rng = np.random.default_rng(seed)
    queries = rng.choice(candidates, size=min(rows, len(candidates)), replace=False)
    neighbours = min(neighbours, len(supports))
    d = ops.convert_to_numpy(
        distances.pairwise_distance(embeddings[queries], embeddings[supports], distance)
    )
    fig, axes = plt.subplots(
        len(queries), neighbours + 1, figsize=(1.3 * (neighbours + 1), 1.4 * len(queries))
    )
    axes = np.atleast_2d(axes)
    for row, q in enumerate(queries):
        _show(axes[row, 0], images[q], f"query: {class_names[labels[q]]}")
        for col, s in enumerate(np.argsort(d[row])[:neighbours], start=1):
            support = supports[s]
            right = labels[support] == labels[q]
            _show(
                axes[row, col],
                images[support],
                f"{class_names[labels[support]]} {d[row, s]:.2f}",
                "tab:green" if right else "tab:red",
            )
    fig.suptitle("Unseen-class queries and their nearest one-shot supports", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def principal_components(embeddings: np.ndarray, count: int = 2) -> np.ndarray:
    """Projects centred `embeddings` on their first `count` principal axes."""
    centred = embeddings - embeddings.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:count].T


def plot_embedding_map(
    embeddings: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    distance: str,
    path: str,
) -> None:
    """A 2-D PCA map of embeddings coloured by class (unit-length first for cosine)."""
    e = np.asarray(embeddings, np.float64)
    if distance == "cosine":
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    xy = principal_components(e)
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    for i, c in enumerate(classes):
        mask = labels == c
        ax.scatter(xy[mask, 0], xy[mask, 1], s=6, color=cmap(i % cmap.N), label=class_names[c])
    if len(classes) <= 20:
        ax.legend(fontsize=7, markerscale=2, loc="best")
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.set_title(f"Unseen-class embeddings ({len(classes)} classes, PCA)")
    fig.tight_layout()
    save_figure(fig, path)


def curve_series(points: list[CurvePoint]) -> dict[str, list]:
    """Minutes of training and the headline accuracies of each learning-curve point."""

    def value(accuracy: Accuracy | None) -> float | None:
        return accuracy.value if accuracy else None

    return {
        "minutes": [p.train_seconds / 60 for p in points],
        "triplet": [p.metrics.seen.triplet_accuracy.value for p in points],
        "oneshot": [value(p.metrics.random_support_accuracy) for p in points],
        "5way_1shot": [value(p.metrics.episode_accuracy(5, 1)) for p in points],
    }


CURVE_PANELS = (
    ("triplet", "triplet accuracy (seen)"),
    ("oneshot", "N-way one-shot (unseen, random supports)"),
    ("5way_1shot", "5-way 1-shot (unseen)"),
)


def run_styles(count: int) -> list[dict]:
    """Matplotlib line styles for `count` runs, no two alike: the ten default colours,
    then the same colours dashed, dotted and dash-dotted, each with its own marker."""
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lines, markers = ("-", "--", ":", "-."), ("o", "s", "^", "D")
    return [
        dict(
            color=colours[i % len(colours)],
            linestyle=lines[i // len(colours) % len(lines)],
            marker=markers[i // len(colours) % len(markers)],
        )
        for i in range(count)
    ]


def plot_learning_curves(
    curves: dict[str, list[CurvePoint]],
    path: str,
    images_per_epoch: dict[str, int | None] | None = None,
) -> None:
    """Accuracy against training minutes, one line per run, one panel per metric.

    With `images_per_epoch` (of each run), a first row of panels draws the
    same accuracies against the images through the tower: the budget that
    compares runs made on different machines or side by side.
    """
    images_per_epoch = {k: v for k, v in (images_per_epoch or {}).items() if v}
    axes_x = [("images", "images through the tower")] if images_per_epoch else []
    axes_x.append(("minutes", "training time (minutes)"))
    fig, axes = plt.subplots(
        len(axes_x),
        len(CURVE_PANELS),
        figsize=(4.2 * len(CURVE_PANELS), 3.6 * len(axes_x)),
        squeeze=False,
    )
    for (name, points), style in zip(curves.items(), run_styles(len(curves)), strict=True):
        series = curve_series(points)
        series["images"] = [p.epoch * images_per_epoch.get(name, 0) for p in points]
        for row, (x_key, x_label) in zip(axes, axes_x, strict=True):
            if x_key == "images" and name not in images_per_epoch:
                continue
            for ax, (key, title) in zip(row, CURVE_PANELS, strict=True):
                ys = [np.nan if v is None else 100 * v for v in series[key]]
                ax.plot(series[x_key], ys, markersize=3, label=name, **style)
                ax.set_title(title, fontsize=9)
                ax.set_xlabel(x_label)
    for row in axes:
        row[0].set_ylabel("accuracy (%)")
        row[-1].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def plot_accuracy_against_images(
    curves: dict[str, list[tuple[int, float]]], ylabel: str, path: str
) -> None:
    """One line per run of `(images through the tower, accuracy)` points, images on a
    log scale: runs of very different budgets side by side."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for (name, points), style in zip(curves.items(), run_styles(len(curves)), strict=True):
        xs, ys = zip(*points, strict=True) if points else ((), ())
        ax.plot(xs, [100 * y for y in ys], markersize=3, label=name, **style)
    ax.set_xscale("log")
    ax.set_xlabel("images through the tower (log scale)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def plot_learning_curve(
    points: list[CurvePoint], path: str, images_per_epoch: int | None = None
) -> None:
    """The learning curve of one run."""
    plot_learning_curves({"this run": points}, path, {"this run": images_per_epoch})
