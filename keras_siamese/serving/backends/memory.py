"""Vectors in this process's memory: exact search or FAISS, saved as files of a folder."""

from __future__ import annotations

import os

import numpy as np

from keras_siamese.serving.backends import Store
from keras_siamese.serving.vector_search import SearchOptions, VectorSearch

IDS_FILE = "ids.npy"
DATA_FILES = {"exact": "vectors.npy", "hnsw": "faiss.index", "ivf": "faiss.index"}


class MemoryStore(Store):
    """A `VectorSearch` and one id per vector, positions mapping one to the other.

    Args:
        search: the vectors and their backend ("exact", "hnsw" or "ivf").
        ids: the ids of the vectors already in `search`.
    """

    def __init__(self, search: VectorSearch, ids: np.ndarray | None = None):
        self.vectors = search
        self.ids = ids if ids is not None else np.zeros(0, np.int64)
        self.backend, self.distance, self.dim = search.backend, search.distance, search.dim

    @classmethod
    def new(
        cls, dim: int, distance: str, backend: str, options: SearchOptions | None = None
    ) -> MemoryStore:
        """An empty store."""
        return cls(VectorSearch(dim, distance, backend, options))

    @property
    def options(self) -> SearchOptions:
        return self.vectors.options

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def id_kind(self) -> str | None:
        if not len(self.ids):
            return None
        return "str" if self.ids.dtype.kind == "U" else "int"

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        self.vectors.add(vectors)
        self.ids = np.concatenate([self.ids, ids]) if len(self.ids) else ids

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        positions, distances = self.vectors.search(queries, k)
        found = positions >= 0  # an approximate backend may find fewer than k
        ids = self.ids[np.where(found, positions, 0)]
        if not found.all():
            ids = ids.astype(object)
            ids[~found] = None
            distances = np.where(found, distances, np.inf).astype(np.float32)
        return ids, distances

    def write(self, folder: str) -> None:
        """Writes the ids and the backend's data into `folder`."""
        with open(os.path.join(folder, IDS_FILE), "wb") as f:
            np.save(f, self.ids, allow_pickle=False)
        self.vectors.write(os.path.join(folder, DATA_FILES[self.backend]))

    @classmethod
    def read(cls, folder: str, search: VectorSearch, count: int) -> MemoryStore:
        """The store `write` left in `folder`, its vectors read into `search`.

        Raises:
            OSError, ValueError, EOFError: when the files are damaged or disagree with `count`.
        """
        search.read(os.path.join(folder, DATA_FILES[search.backend]))
        ids = np.load(os.path.join(folder, IDS_FILE), allow_pickle=False)
        if ids.ndim != 1 or len(ids) != count or len(search) != count:
            raise ValueError(f"{len(ids)} ids and {len(search)} vectors for {count} images")
        return cls(search, ids)
