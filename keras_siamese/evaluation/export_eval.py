"""Evaluation of a finished run's export: rebuild its split, embed once, measure, draw.

The split comes from the export's metadata.json, so an evaluation needs only
the workdir and the data. Results go beside the run: the figures first, then
eval.json, each written atomically, so an eval.json on disk is always a
complete one.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from keras_siamese import files
from keras_siamese import workdir as wd
from keras_siamese.data import splits
from keras_siamese.data.datasets import ImageDataset
from keras_siamese.errors import UserError
from keras_siamese.evaluation import projector as embedding_projector
from keras_siamese.evaluation import protocol
from keras_siamese.evaluation.results import (
    CurvePoint,
    EvalReport,
    LearningCurve,
    OptionMetrics,
    RunFacts,
)
from keras_siamese.model import distances, test_time
from keras_siamese.serving import export
from keras_siamese.serving import metadata as export_metadata
from keras_siamese.serving.metadata import ExportMetadata


def rebuild_partition(metadata: ExportMetadata, dataset: ImageDataset) -> splits.Partition:
    """The partition the run was trained and validated on, from its metadata.

    Raises:
        UserError: when `dataset` is not the data set the export was trained on.
    """
    name = metadata.dataset
    shape = list(dataset.info.image_shape)
    if dataset.info.name != name or (metadata.input_shape or shape) != shape:
        raise UserError(
            f"The export was trained on {name} images of shape {metadata.input_shape}, "
            f"but the data given are {dataset.info.name} images of shape {shape}."
        )
    names = metadata.class_names
    if names is not None and list(names) != list(dataset.class_names):
        raise UserError(
            f"The data's class names differ from those the export was trained on "
            f"({dataset.class_names[:3]}... vs {names[:3]}...): point --data_dir at the same "
            f"{name} data."
        )
    split = metadata.class_split()
    if metadata.seen_classes is not None and list(split.seen) != list(metadata.seen_classes):
        raise UserError(
            "The split rebuilt from metadata.json does not match its recorded seen classes: "
            "the export was written by an incompatible version."
        )
    return splits.partition(
        dataset,
        split,
        metadata.val_fraction,
        seed=metadata.split_seed,
        min_val_images=metadata.min_val_images or 1,
    )


def evaluate_export(
    export_dir: str,
    dataset: ImageDataset,
    out_dir: str,
    seed: int = 0,
    ways: int = 5,
    shots: Sequence[int] = (1, 5),
    batch_size: int = 500,
    verbose: int = 1,
    tta: str = "none",
    center: str = "none",
    projector: str = "none",
) -> EvalReport:
    """Evaluates the export in `export_dir` on `dataset`; writes figures and eval.json.

    Args:
        export_dir: a folder written by `keras_siamese.serving.export.export_tower`.
        dataset: the data set it was trained on (checked against its metadata).
        out_dir: where eval.json and the figures go (the run's workdir).
        seed: seed of every sampled triplet, pair, support and episode.
        ways: classes per episode.
        shots: support images per class of the episodic evaluations.
        batch_size: images per forward pass.
        verbose: Keras progress display while embedding.
        tta, center: test-time options of an extra row (see
            `keras_siamese.model.test_time`); the export's own options, if it
            has any, always get a row.
        projector: "unseen" or "all" writes the test images of those classes,
            as the export embeds them, to `out_dir/logs` for TensorBoard's
            embedding projector; "none" does not.

    Returns:
        What eval.json holds: the protocol on the trained tower alone, and the
        extra rows under test-time options.
    """
    metadata = export_metadata.read(export_dir)
    part = rebuild_partition(metadata, dataset)
    served = export.load_tower(export_dir)
    tower = test_time.base_tower(served)
    distance = metadata.distance
    emb = protocol.embed_partition(tower, part, batch_size=batch_size, verbose=verbose)
    result = protocol.evaluate(emb, distance, seed=seed, ways=ways, shots=shots)
    served_emb = emb
    rows = []
    for options in _option_sets(metadata, tta, center):
        if options == (metadata.tta, metadata.center):
            model = served  # exactly what every other client of the export computes
        else:
            model = test_time.with_options(
                tower, *options, part.train_images, part.train_labels, batch_size, verbose
            )
        option_emb = protocol.embed_partition(model, part, batch_size=batch_size, verbose=verbose)
        if model is served:
            served_emb = option_emb
        option_metrics = protocol.evaluate(option_emb, distance, seed, ways, shots).metrics
        rows.append(OptionMetrics(tta=options[0], center=options[1], metrics=option_metrics))
    metrics = dataclasses.replace(result.metrics, with_options=rows or None)

    os.makedirs(out_dir, exist_ok=True)
    figures = _draw_figures(out_dir, result, emb, part, list(dataset.class_names), distance, seed)
    if projector != "none":
        _write_projector(out_dir, part, served_emb, list(dataset.class_names), projector == "all")

    report = EvalReport(
        run=RunFacts(
            export=os.path.relpath(export_dir, out_dir),
            dataset=metadata.dataset,
            split=metadata.split,
            distance=distance,
            margin=metadata.margin,
            depth=metadata.depth,
            embedding_size=metadata.embedding_size,
            budget=metadata.metrics.budget if metadata.metrics else None,
        ),
        figures=figures,
        metrics=metrics,
    )
    files.write_json_atomic(os.path.join(out_dir, wd.EVAL_FILE), report.to_json())
    return report


def _draw_figures(
    out_dir: str,
    result: protocol.Evaluation,
    emb: protocol.Embeddings,
    part: splits.Partition,
    names: list[str],
    distance: str,
    seed: int,
) -> list[str]:
    """Draws the evaluation's figures into `out_dir`; their file names."""
    from keras_siamese.evaluation import plots  # matplotlib only when figures are drawn

    figures = [wd.DISTANCES_FIGURE, wd.ROC_FIGURE]
    plots.plot_distances(
        result.seen_pairs,
        distance,
        distances.FIXED_THRESHOLDS[distance],
        result.calibrated_threshold,
        os.path.join(out_dir, wd.DISTANCES_FIGURE),
    )
    plots.plot_roc(result.seen_pairs, os.path.join(out_dir, wd.ROC_FIGURE))
    if not len(part.test_unseen_labels):
        return figures
    plots.plot_nearest_supports(
        part.test_unseen_images,
        emb.unseen,
        part.test_unseen_labels,
        names,
        distance,
        os.path.join(out_dir, wd.NEAREST_SUPPORTS_FIGURE),
        seed=seed,
    )
    plots.plot_embedding_map(
        emb.unseen,
        part.test_unseen_labels,
        names,
        distance,
        os.path.join(out_dir, wd.EMBEDDING_MAP_FIGURE),
    )
    return [*figures, wd.NEAREST_SUPPORTS_FIGURE, wd.EMBEDDING_MAP_FIGURE]


def _write_projector(
    out_dir: str, part: splits.Partition, emb: protocol.Embeddings, names: list[str], seen: bool
) -> None:
    parts = [("unseen", emb.unseen, part.test_unseen_labels, part.test_unseen_images)]
    if seen:
        parts.insert(0, ("seen", emb.seen, part.test_seen_labels, part.test_seen_images))
    parts = [p for p in parts if len(p[1])]
    if not parts:
        raise UserError("--projector: this split has no unseen classes; add --projector_seen.")
    embedding_projector.write(
        os.path.join(out_dir, wd.LOGS_DIR),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        names,
        [p[0] for p in parts for _ in range(len(p[1]))],
        np.concatenate([p[3] for p in parts]),
    )


def _option_sets(metadata: ExportMetadata, tta: str, center: str) -> list[tuple[str, str]]:
    """The test-time options to report: the export's own, then those asked for."""
    sets = [(metadata.tta, metadata.center)] if metadata.has_options else []
    if (tta, center) != ("none", "none") and (tta, center) not in sets:
        sets.append((tta, center))
    return sets


def _seen_subset(labels: np.ndarray, per_class: int) -> np.ndarray:
    """The first `per_class` test images of every class (a fixed, cheap sample)."""
    return np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)])


def snapshot_rows(workdir: str) -> list[dict]:
    """The snapshots a run saved during training.

    Raises:
        UserError: when there are none.
    """
    rows = wd.read_snapshots(os.path.join(workdir, wd.SNAPSHOTS_DIR))
    if not rows:
        raise UserError(
            f"{workdir} holds no snapshots: train it with --snapshot_every=N to draw a "
            "learning curve."
        )
    return rows


def evaluate_snapshots(
    export_dir: str,
    dataset: ImageDataset,
    workdir: str,
    seed: int = 0,
    seen_per_class: int = 20,
    batch_size: int = 500,
) -> LearningCurve:
    """The learning curve of a run: the protocol on each snapshot of `workdir/snapshots`.

    To keep many snapshots cheap, the seen-class metrics use the first
    `seen_per_class` test images of each seen class, and there is no
    threshold calibration; the unseen-class metrics use every unseen test
    image, as in eval.json. Writes learning_curve.json and its figure.

    Raises:
        UserError: when the run has no snapshots.
    """
    from keras_siamese.evaluation import plots

    metadata = export_metadata.read(export_dir)
    part = rebuild_partition(metadata, dataset)
    rows = snapshot_rows(workdir)
    folder = os.path.join(workdir, wd.SNAPSHOTS_DIR)
    tower = test_time.base_tower(export.load_tower(export_dir))
    seen = _seen_subset(part.test_seen_labels, seen_per_class)
    empty = np.zeros((0,), np.int64)
    points = []
    for row in rows:
        tower.load_weights(os.path.join(folder, row["file"]))
        emb = protocol.Embeddings(
            seen=protocol.embed(tower, part.test_seen_images[seen], batch_size, verbose=0),
            seen_labels=part.test_seen_labels[seen],
            unseen=protocol.embed(tower, part.test_unseen_images, batch_size, verbose=0),
            unseen_labels=part.test_unseen_labels,
            val=np.zeros((0, tower.output_shape[-1]), np.float32),
            val_labels=empty,
        )
        metrics = protocol.evaluate(emb, metadata.distance, seed=seed).metrics
        points.append(CurvePoint(**row, metrics=metrics))
        print(f"Snapshot of epoch {row['epoch']} ({row['train_seconds']:.0f} s): evaluated.")
    curve = LearningCurve(
        split=metadata.split, seen_test_images_per_class=seen_per_class, points=points
    )
    budget = metadata.metrics.budget if metadata.metrics else None
    per_epoch = budget.images_per_epoch if budget else None
    plots.plot_learning_curve(points, os.path.join(workdir, wd.CURVE_FIGURE), per_epoch)
    files.write_json_atomic(os.path.join(workdir, wd.CURVE_FILE), curve.to_json())
    return curve
