"""A searchable gallery: the embeddings of a collection of images, with their ids.

    index = sim.index(gallery_images, ids)           # or EmbeddingIndex.build(...)
    ids, distances = index.search(query_images, k=10)
    index.add(more_images, more_ids)
    index.save("gallery/")
    index = EmbeddingIndex.load("gallery/", sim)

An index folder holds index.json (format, backend, distance, size and the
fingerprint of the export that embedded the gallery), ids.npy, and the
backend's data (vectors.npy, or FAISS's faiss.index). It is written to a
staging folder and renamed into place, so a killed save leaves the previous
index whole. Loading it with another export is refused: its vectors would not
be comparable with the new export's embeddings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from keras_siamese import files
from keras_siamese.errors import UserError
from keras_siamese.serving.vector_search import BACKENDS, SearchOptions, VectorSearch

if TYPE_CHECKING:
    from keras_siamese.serving.similarity import Images, Similarity

FORMAT = "keras_siamese.index/1"
INDEX_FILE = "index.json"
IDS_FILE = "ids.npy"
DATA_FILES = {"exact": "vectors.npy", "hnsw": "faiss.index", "ivf": "faiss.index"}

__all__ = ["BACKENDS", "EmbeddingIndex", "SearchOptions"]


def _default_ids(
    similarity: Similarity, images: Images, first: int, count: int, ids: Sequence | None
) -> Sequence | np.ndarray:
    """`ids` if given, else the image files' paths, else positions from `first` on."""
    if ids is not None:
        return ids
    paths = similarity.image_paths(images)
    return paths if paths is not None else np.arange(first, first + count)


def _id_array(ids: Sequence | np.ndarray, count: int) -> np.ndarray:
    """`ids` as a numpy array of `count` integers or strings."""
    array = np.asarray(ids)
    if array.ndim != 1 or len(array) != count:
        raise UserError(f"{count} images were given with {array.size} ids: give one id each.")
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    if array.dtype.kind == "U":
        return array
    return np.asarray([str(i) for i in array])


class EmbeddingIndex:
    """Embeddings of gallery images, searched for the nearest ones to a query.

    Build one with `Similarity.index` or `EmbeddingIndex.build`; `load` reads a
    saved one. Searching by image needs the `Similarity` of the export that
    embedded the gallery; `search_vectors` works on embeddings directly.

    Args:
        search: the vectors and their backend.
        ids: one id per vector (integers or strings; repeats allowed, e.g.
            class names).
        fingerprint: `export.fingerprint` of the export behind the vectors.
        similarity: that export, loaded; needed to search or add by image.
    """

    def __init__(
        self,
        search: VectorSearch,
        ids: np.ndarray,
        fingerprint: str,
        similarity: Similarity | None = None,
    ):
        self._search = search
        self.ids = ids
        self.fingerprint = fingerprint
        self.similarity = similarity

    @classmethod
    def build(
        cls,
        similarity: Similarity,
        gallery: Images,
        ids: Sequence | np.ndarray | None = None,
        backend: str = "exact",
        options: SearchOptions | None = None,
        progress: bool | None = None,
    ) -> EmbeddingIndex:
        """Embeds `gallery` with `similarity` and indexes it.

        Args:
            similarity: the export to embed with.
            gallery: images (see `Similarity.images`).
            ids: one per image; default: the file paths for files, else
                positions 0..N-1.
            backend: "exact", "hnsw" or "ivf" (the last two need faiss-cpu).
            options: settings of the approximate backends.
            progress: show a progress bar (default: on a terminal, for long inputs).
        """
        vectors = similarity.embed(gallery, progress=progress)
        search = VectorSearch(vectors.shape[1], similarity.distance_name, backend, options)
        index = cls(search, np.zeros(0, np.int64), similarity.fingerprint, similarity)
        index.add_vectors(vectors, _default_ids(similarity, gallery, 0, len(vectors), ids))
        return index

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def backend(self) -> str:
        """ "exact", "hnsw" or "ivf"."""
        return self._search.backend

    @property
    def distance(self) -> str:
        """ "cosine" or "euclidean" (squared), the export's distance."""
        return self._search.distance

    # ------------------------------------------------------------- adding

    def add(self, images: Images, ids: Sequence | np.ndarray | None = None) -> None:
        """Embeds and appends `images` (ids as in `build`, positions continuing)."""
        similarity = self._require_similarity()
        vectors = similarity.embed(images)
        self.add_vectors(vectors, _default_ids(similarity, images, len(self), len(vectors), ids))

    def add_vectors(self, vectors: np.ndarray, ids: Sequence | np.ndarray) -> None:
        """Appends embeddings `[N, D]` with their ids."""
        new_ids = _id_array(ids, len(np.asarray(vectors)))
        if len(self.ids) and (new_ids.dtype.kind == "U") != (self.ids.dtype.kind == "U"):
            raise UserError(
                "This index's ids are "
                + ("strings" if self.ids.dtype.kind == "U" else "integers")
                + "; give new ids of the same kind."
            )
        self._search.add(vectors)
        self.ids = np.concatenate([self.ids, new_ids]) if len(self.ids) else new_ids

    # ---------------------------------------------------------- searching

    def search(self, images: Images, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Ids `[Q, k]` and distances `[Q, k]` of the gallery images nearest each query.

        `k` larger than the gallery is cut to its size (the result then has
        fewer columns); `k` under 1 is refused.
        """
        return self.search_vectors(self._require_similarity().embed(images), k)

    def search_vectors(self, vectors: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """`search` for query embeddings `[Q, D]`."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise UserError(f"k={k!r} must be a whole number of at least 1.")
        positions, distances = self._search.search(vectors, min(int(k), len(self)))
        found = positions >= 0  # an approximate backend may find fewer than k
        ids = self.ids[np.where(found, positions, 0)]
        if not found.all():
            ids = ids.astype(object)
            ids[~found] = None
            distances = np.where(found, distances, np.inf).astype(np.float32)
        return ids, distances

    # -------------------------------------------------------------- files

    def save(self, folder: str) -> None:
        """Writes the index to `folder`, replacing a previous one only when complete."""
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise UserError(f"{folder} is a file, not an index folder.")

        def fill(staging: str) -> None:
            with open(os.path.join(staging, IDS_FILE), "wb") as f:
                np.save(f, self.ids, allow_pickle=False)
            self._search.write(os.path.join(staging, DATA_FILES[self.backend]))
            description = {
                "format": FORMAT,
                "backend": self.backend,
                "distance": self.distance,
                "dim": self._search.dim,
                "count": len(self),
                "fingerprint": self.fingerprint,
                "export": os.path.abspath(self.similarity.export_dir) if self.similarity else None,
                "options": vars(self._search.options),
            }
            files.write_json_atomic(os.path.join(staging, INDEX_FILE), description)

        try:
            files.write_directory(folder, fill)
        except OSError as e:
            raise UserError(f"Cannot write the index to {folder} ({e.strerror}).") from None

    @classmethod
    def load(
        cls, folder: str, similarity: Similarity | None = None, options: SearchOptions | None = None
    ) -> EmbeddingIndex:
        """Reads an index saved by `save`.

        Args:
            folder: the index folder.
            similarity: the export that built it (checked by fingerprint);
                None loads the vectors alone, for `search_vectors`.
            options: search settings to use instead of the saved ones.

        Raises:
            UserError: for a folder that is not a complete index, or an index
                of another export.
        """
        description = _read_description(folder)
        try:
            backend, distance = description["backend"], description["distance"]
            dim, count = int(description["dim"]), int(description["count"])
            saved_options = SearchOptions(**description.get("options", {}))
            fingerprint = str(description["fingerprint"])
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{folder} is a damaged index ({INDEX_FILE}: {e}).") from None
        if backend not in BACKENDS:
            raise UserError(f"{folder} is a damaged index (unknown backend {backend!r}).")
        if similarity is not None and similarity.fingerprint != fingerprint:
            raise UserError(
                f"{folder} was built with another export ({description.get('export')}) "
                f"than {similarity.export_dir}: search it with that export, or build the "
                "index again with this one."
            )
        search = VectorSearch(dim, distance, backend, options or saved_options)
        try:
            search.read(os.path.join(folder, DATA_FILES[backend]))
            ids = np.load(os.path.join(folder, IDS_FILE), allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise UserError(f"{folder} is a damaged index ({e}): build it again.") from None
        if ids.ndim != 1 or len(ids) != count or len(search) != count:
            raise UserError(
                f"{folder} is a damaged index ({len(ids)} ids and {len(search)} vectors for "
                f"{count} images): build it again."
            )
        return cls(search, ids, fingerprint, similarity)

    def _require_similarity(self) -> Similarity:
        if self.similarity is None:
            raise UserError(
                "This index was loaded without its export: pass the export's Similarity to "
                "EmbeddingIndex.load to search or add by image."
            )
        return self.similarity


def recorded_export(folder: str) -> str:
    """The export folder that built the index in `folder`, as recorded when it was saved."""
    export = _read_description(folder).get("export")
    if not export:
        raise UserError(f"{folder} does not record the export that built it: name it.")
    return str(export)


def _read_description(folder: str) -> dict:
    path = os.path.join(folder, INDEX_FILE)
    if not os.path.isdir(folder):
        raise UserError(f"{folder} is not an index folder (it does not exist).")
    try:
        with open(path, encoding="utf-8") as f:
            description = json.load(f)
    except FileNotFoundError:
        raise UserError(f"{folder} is not an index folder (it has no {INDEX_FILE}).") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{folder} is a damaged index ({INDEX_FILE}: {e}).") from None
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        found = description.get("format") if isinstance(description, dict) else None
        raise UserError(
            f"{folder} is an index of format {found!r}, not {FORMAT!r}: build it again with "
            "this keras_siamese."
        )
    return description
