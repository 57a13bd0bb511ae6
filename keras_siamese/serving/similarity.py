"""The Python API: a trained export, loaded once, that embeds, compares and classifies images.

    from keras_siamese import Similarity
    sim = Similarity.load("runs/90_10/export")
    emb = sim.embed(images)                    # uint8 [N, H, W, C] -> float32 [N, D]
    sim.distance(a, b); sim.same(a, b)         # the export's calibrated threshold
    sim.classify(queries, supports, labels)    # nearest class mean; any number of shots
    index = sim.index(gallery, ids)            # EmbeddingIndex; index.search(queries, k=10)

Images are a uint8 array `[N, H, W, C]` (or one image `[H, W, C]`) of the
export's input shape, used as they are (grey images may leave out C = 1);
or a path to an image file (PNG, JPEG, BMP or GIF), a list of such paths, or a folder of them,
each preprocessed as the canvas preprocesses a drawing (resized to the input
shape; a digit centred as in MNIST). Embeddings come from the export's
SavedModel, so they are the canvas's, test-time options included.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Sequence

import numpy as np

from keras_siamese.data.datasets import DATASETS
from keras_siamese.errors import UserError
from keras_siamese.model import distances
from keras_siamese.serving import export, model_inputs
from keras_siamese.serving import metadata as export_metadata
from keras_siamese.serving.index import EmbeddingIndex, SearchOptions
from keras_siamese.serving.model_inputs import Images


class Similarity:
    """An exported embedding model with its distance and same/different threshold.

    Args:
        export_dir: a folder written by training (`WORKDIR/export`).
        threshold: the distance at or under which two images count as one
            class; default: the one calibrated on validation pairs, else the
            reference's fixed rule.
        batch_size: images per forward pass.

    Raises:
        UserError: when `export_dir` holds no complete, loadable export.
    """

    def __init__(self, export_dir: str, threshold: float | None = None, batch_size: int = 256):
        if batch_size < 1:
            raise UserError(f"batch_size={batch_size} must be at least 1.")
        self.export_dir = str(export_dir)
        self.metadata = export_metadata.read(self.export_dir)
        self.dataset = self.metadata.dataset
        self.input_shape = tuple(self.metadata.input_shape or DATASETS[self.dataset].image_shape)
        self.distance_name = self.metadata.distance
        if threshold is None:
            self.threshold, self.threshold_source = self.metadata.threshold()
        else:
            self.threshold, self.threshold_source = float(threshold), "chosen by the caller"
        self.batch_size = int(batch_size)
        try:
            self._model = export.load_saved_model(self.export_dir)
        except (OSError, ValueError) as e:
            raise UserError(f"{self.export_dir} holds no loadable SavedModel ({e}).") from None
        self._lock = threading.Lock()

    @classmethod
    def load(cls, export_dir: str, threshold: float | None = None) -> Similarity:
        """The export in `export_dir` (see the class)."""
        return cls(export_dir, threshold)

    @functools.cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the export's weights and metadata (see `export.fingerprint`)."""
        return export.fingerprint(self.export_dir)

    # ------------------------------------------------------------------ images

    def images(self, source: Images) -> np.ndarray:
        """`source` as a uint8 array `[N, H, W, C]` of the export's input shape.

        An array `[H, W, C]` of the input shape is one image.

        Raises:
            UserError: for an array of another shape or type, or a path that
                is not a PNG, JPEG, BMP or GIF image (or a folder of them).
        """
        paths = self.image_paths(source)
        if paths is None:
            return self._checked_array(source)
        return np.stack([self._preprocessed(model_inputs.read_image(p), p) for p in paths])

    def image_paths(self, source: Images) -> list[str] | None:
        """The image files that `source` names (a folder's, sorted), or None for an array."""
        if isinstance(source, np.ndarray):
            return None
        if isinstance(source, str | os.PathLike):
            path = os.fspath(source)
            return model_inputs.image_files(path) if os.path.isdir(path) else [path]
        paths = list(source)
        if not paths:
            raise UserError("No images were given.")
        if not all(isinstance(p, str | os.PathLike) for p in paths):
            raise UserError(
                "Images must be a uint8 array, an image file or folder, or a list of image files."
            )
        return [os.fspath(p) for p in paths]

    def _checked_array(self, array: np.ndarray) -> np.ndarray:
        shape = tuple(self.input_shape)
        if shape[-1] == 1 and array.ndim in (2, 3) and tuple(array.shape[-2:]) == shape[:2]:
            array = array[..., None]  # grey images without their channel axis
        if tuple(array.shape) == shape:
            array = array[None]  # one image
        if array.ndim != 4 or tuple(array.shape[1:]) != shape:
            raise UserError(
                f"Images of shape {list(array.shape)} were given; this export takes "
                f"[N, {', '.join(str(s) for s in shape)}] (uint8), or image files."
            )
        if array.dtype != np.uint8:
            raise UserError(f"Images of type {array.dtype} were given; this export takes uint8.")
        if len(array) == 0:
            raise UserError("No images were given.")
        return array

    def _preprocessed(self, pixels: np.ndarray, path: str) -> np.ndarray:
        try:
            return model_inputs.model_input(pixels, self.dataset, self.input_shape)
        except model_inputs.ImageError as e:
            raise UserError(f"{path}: {e}") from None

    # -------------------------------------------------------------- embeddings

    def embed(self, source: Images, progress: bool | None = None) -> np.ndarray:
        """Embeddings `[N, D]` (float32) of the images of `source`.

        Args:
            source: images (see `images`).
            progress: show a progress bar; default: when there are more than
                ten batches and the output is a terminal.
        """
        batch = self.images(source)
        starts = range(0, len(batch), self.batch_size)
        if progress is None:
            progress = len(starts) > 10 and sys.stderr.isatty()
        bar = None
        if progress:
            import keras

            bar = keras.utils.Progbar(len(batch), unit_name="image")
        parts = []
        for start in starts:
            chunk = batch[start : start + self.batch_size]
            with self._lock:
                parts.append(np.asarray(self._model.serve(chunk), np.float32))
            if bar is not None:
                bar.add(len(chunk))
        return np.concatenate(parts)

    def distance(self, a: Images, b: Images) -> np.ndarray:
        """Distances `[N]` between the images of `a` and `b`, pair by pair.

        `a` and `b` hold N images each, or one of them a single image that is
        compared with every image of the other.
        """
        ea, eb = self.embed(a), self.embed(b)
        if len(ea) != len(eb) and 1 not in (len(ea), len(eb)):
            raise UserError(
                f"{len(ea)} and {len(eb)} images were given: compare as many images on each "
                "side, or one image with many."
            )
        ea, eb = np.broadcast_arrays(ea, eb)
        d = distances.paired_distance(ea, eb, self.distance_name)
        return np.maximum(np.asarray(d, np.float64), 0.0)

    def same(self, a: Images, b: Images) -> np.ndarray:
        """Whether each pair of `distance(a, b)` is at most the threshold (one class)."""
        return self.distance(a, b) <= self.threshold

    def classify(self, queries: Images, supports: Images, labels: Sequence) -> np.ndarray:
        """The label of the nearest class mean of the supports, for each query.

        Any number of supports per label (one-shot, few-shot). For cosine
        distance the means are taken over unit-length embeddings.
        """
        labels = np.asarray(labels)
        support_emb = self.embed(supports)
        if labels.ndim != 1 or len(labels) != len(support_emb):
            raise UserError(
                f"{len(support_emb)} support images were given with {labels.size} labels: give "
                "one label per support image."
            )
        query_emb = self.embed(queries)
        classes = np.unique(labels)
        support_emb = np.asarray(distances.class_mean_space(support_emb, self.distance_name))
        means = np.stack([support_emb[labels == c].mean(axis=0) for c in classes])
        d = np.asarray(distances.pairwise_distance(query_emb, means, self.distance_name))
        return classes[np.argmin(d, axis=1)]

    # ------------------------------------------------------------- gallery

    def index(
        self,
        gallery: Images,
        ids: Sequence | np.ndarray | None = None,
        backend: str = "exact",
        options: SearchOptions | None = None,
        progress: bool | None = None,
        location: str | None = None,
    ) -> EmbeddingIndex:
        """A searchable index of the `gallery` images (see `EmbeddingIndex.build`)."""
        return EmbeddingIndex.build(self, gallery, ids, backend, options, progress, location)
