"""A searchable gallery: the embeddings of a collection of images, with their ids.

    index = sim.index(gallery_images, ids)           # or EmbeddingIndex.build(...)
    ids, distances = index.search(query_images, k=10)
    index.add(more_images, more_ids)
    index.save("gallery/")
    index = EmbeddingIndex.load("gallery/", sim)

The vectors live in a store (`keras_siamese.serving.backends`): in this
process (exact search, FAISS's HNSW or IVF), saved as an index folder, or in
a Milvus collection (`backend="milvus"`, the location a Milvus Lite file
`gallery.db` or a server `http://HOST:PORT`, optionally `#COLLECTION`),
where every addition is stored as it is made. An index folder holds
index.json (format, backend, distance, size and the fingerprint of the export
that embedded the gallery), ids.npy and the backend's data; it is written to
a staging folder and renamed into place, so a killed save leaves the previous
index whole. A collection keeps the same description as a property. Opening
an index with another export is refused: its vectors would not be comparable
with the new export's embeddings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from keras_siamese import files
from keras_siamese.errors import UserError
from keras_siamese.serving.backends import Store, is_database
from keras_siamese.serving.backends.memory import MemoryStore
from keras_siamese.serving.model_inputs import Images
from keras_siamese.serving.vector_search import BACKENDS as MEMORY_BACKENDS
from keras_siamese.serving.vector_search import SearchOptions, VectorSearch, checked


class Similarity(Protocol):
    """What an index asks of an export (`keras_siamese.Similarity` is one)."""

    export_dir: str
    fingerprint: str
    distance_name: str

    def embed(self, images: Images, progress: bool | None = None) -> np.ndarray: ...

    def image_paths(self, images: Images) -> list[str] | None: ...


FORMAT = "keras_siamese.index/1"
INDEX_FILE = "index.json"
BACKENDS = (*MEMORY_BACKENDS, "milvus")

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

    Build one with `Similarity.index` or `EmbeddingIndex.build`; `load` opens a
    saved one. Searching by image needs the `Similarity` of the export that
    embedded the gallery; `search_vectors` works on embeddings directly.

    Args:
        store: the vectors, their ids and their backend.
        fingerprint: `export.fingerprint` of the export behind the vectors.
        similarity: that export, loaded; needed to search or add by image.
    """

    def __init__(self, store: Store, fingerprint: str, similarity: Similarity | None = None):
        self._store = store
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
        location: str | None = None,
    ) -> EmbeddingIndex:
        """Embeds `gallery` with `similarity` and indexes it.

        Args:
            similarity: the export to embed with.
            gallery: images (see `Similarity.images`).
            ids: one per image; default: the file paths for files, else
                positions 0..N-1.
            backend: "exact", "hnsw" or "ivf" (the last two need faiss-cpu), or
                "milvus" (needs pymilvus).
            options: settings of the approximate backends.
            progress: show a progress bar (default: on a terminal, for long inputs).
            location: with "milvus", the new collection: `gallery.db` or
                `http://HOST:PORT`, optionally `#COLLECTION`.
        """
        if backend not in BACKENDS:
            raise UserError(f"backend={backend!r} must be one of {', '.join(BACKENDS)}.")
        if (backend == "milvus") != bool(location):
            raise UserError("The milvus backend, and only it, takes a location (gallery.db).")
        vectors = similarity.embed(gallery, progress=progress)
        ids = _id_array(_default_ids(similarity, gallery, 0, len(vectors), ids), len(vectors))
        dim, distance = vectors.shape[1], similarity.distance_name
        if backend == "milvus":
            from keras_siamese.serving.backends.milvus import MilvusStore

            options = options or SearchOptions()
            options.check()
            description = _description(backend, similarity.fingerprint, similarity)
            store = MilvusStore.create(location, dim, distance, options, description)
        else:
            store = MemoryStore.new(dim, distance, backend, options)
        index = cls(store, similarity.fingerprint, similarity)
        try:
            index.add_vectors(vectors, ids)
        except UserError:
            if backend == "milvus":
                store.drop()  # a collection is made whole or not at all
            raise
        return index

    def __len__(self) -> int:
        return len(self._store)

    @property
    def backend(self) -> str:
        """ "exact", "hnsw", "ivf" or "milvus"."""
        return self._store.backend

    @property
    def distance(self) -> str:
        """ "cosine" or "euclidean" (squared), the export's distance."""
        return self._store.distance

    @property
    def stored_as_added(self) -> bool:
        """Whether additions are stored as they are made (a database), with nothing to save."""
        return not isinstance(self._store, MemoryStore)

    @property
    def ids(self) -> np.ndarray:
        """The ids of an in-memory index, in the order added."""
        if not isinstance(self._store, MemoryStore):
            raise UserError("A database index does not list its ids: search it.")
        return self._store.ids

    # ------------------------------------------------------------- adding

    def add(self, images: Images, ids: Sequence | np.ndarray | None = None) -> None:
        """Embeds and appends `images` (ids as in `build`, positions continuing)."""
        similarity = self._require_similarity()
        vectors = similarity.embed(images)
        self.add_vectors(vectors, _default_ids(similarity, images, len(self), len(vectors), ids))

    def add_vectors(self, vectors: np.ndarray, ids: Sequence | np.ndarray) -> None:
        """Appends embeddings `[N, D]` with their ids."""
        vectors = checked(vectors, self._store.dim, self.distance)
        new_ids = _id_array(ids, len(vectors))
        kind = self._store.id_kind
        if kind is not None and (new_ids.dtype.kind == "U") != (kind == "str"):
            raise UserError(
                f"This index's ids are {'strings' if kind == 'str' else 'integers'}; "
                "give new ids of the same kind."
            )
        self._store.add(vectors, new_ids)

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
        queries = checked(vectors, self._store.dim, self.distance)
        count = len(self)
        if not count:
            raise UserError("The index is empty: add images before searching.")
        return self._store.search(queries, min(int(k), count))

    # -------------------------------------------------------------- files

    def save(self, folder: str) -> None:
        """Writes an in-memory index to `folder`, replacing a previous one only when complete.

        A database index stores each addition as it is made: there is nothing to save.
        """
        if not isinstance(self._store, MemoryStore):
            raise UserError("A database index is stored as it is added to: there is no folder.")
        store = self._store
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise UserError(f"{folder} is a file, not an index folder.")

        def fill(staging: str) -> None:
            store.write(staging)
            description = _description(self.backend, self.fingerprint, self.similarity)
            description.update(
                distance=self.distance,
                dim=store.dim,
                count=len(self),
                options=vars(store.options),
            )
            files.write_json_atomic(os.path.join(staging, INDEX_FILE), description)

        try:
            files.write_directory(folder, fill)
        except OSError as e:
            raise UserError(f"Cannot write the index to {folder} ({e.strerror}).") from None

    @classmethod
    def load(
        cls,
        location: str,
        similarity: Similarity | None = None,
        options: SearchOptions | None = None,
    ) -> EmbeddingIndex:
        """Opens an index saved by `save`, or a collection built with the milvus backend.

        Args:
            location: the index folder, or the collection (`gallery.db`,
                `http://HOST:PORT`, optionally `#COLLECTION`).
            similarity: the export that built it (checked by fingerprint);
                None opens the vectors alone, for `search_vectors`.
            options: search settings to use instead of the saved ones.

        Raises:
            UserError: for a location that is not a complete index, or an index
                of another export.
        """
        database = is_database(location)
        if database:
            from keras_siamese.serving.backends.milvus import MilvusStore

            store = MilvusStore.open(location)
            if options is not None:
                options.check()
                store.options = options
            description = store.description
        else:
            description = _read_description(location)
        try:
            fingerprint = str(description["fingerprint"])
        except KeyError as e:
            raise UserError(f"{location} is a damaged index (no {e}).") from None
        if similarity is not None and similarity.fingerprint != fingerprint:
            raise UserError(
                f"{location} was built with another export ({description.get('export')}) "
                f"than {similarity.export_dir}: search it with that export, or build the "
                "index again with this one."
            )
        if not database:
            store = _read_folder(location, description, options)
        return cls(store, fingerprint, similarity)

    def _require_similarity(self) -> Similarity:
        if self.similarity is None:
            raise UserError(
                "This index was loaded without its export: pass the export's Similarity to "
                "EmbeddingIndex.load to search or add by image."
            )
        return self.similarity


def _description(backend: str, fingerprint: str, similarity: Similarity | None) -> dict:
    export = os.path.abspath(similarity.export_dir) if similarity else None
    return {"format": FORMAT, "backend": backend, "fingerprint": fingerprint, "export": export}


def _read_folder(folder: str, description: dict, options: SearchOptions | None) -> MemoryStore:
    try:
        backend, distance = description["backend"], description["distance"]
        dim, count = int(description["dim"]), int(description["count"])
        saved_options = SearchOptions(**description.get("options", {}))
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{folder} is a damaged index ({INDEX_FILE}: {e}).") from None
    if backend not in MEMORY_BACKENDS:
        raise UserError(f"{folder} is a damaged index (unknown backend {backend!r}).")
    search = VectorSearch(dim, distance, backend, options or saved_options)
    try:
        return MemoryStore.read(folder, search, count)
    except (OSError, ValueError, EOFError) as e:
        raise UserError(f"{folder} is a damaged index ({e}): build it again.") from None


def recorded_export(location: str) -> str:
    """The export folder that built the index at `location`, as recorded when it was made."""
    if is_database(location):
        from keras_siamese.serving.backends.milvus import MilvusStore

        store = MilvusStore.open(location)
        export = store.description.get("export")
        store.close()
    else:
        export = _read_description(location).get("export")
    if not export:
        raise UserError(f"{location} does not record the export that built it: name it.")
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
