"""Where a gallery index keeps its vectors and ids, behind one small interface.

`memory.MemoryStore` keeps them in this process (exact search, or FAISS's HNSW
or IVF) and is saved as a folder; `milvus.MilvusStore` keeps them in a Milvus
collection, a local Milvus Lite file or a server, and saves each addition as
it is made. `EmbeddingIndex` calls only the methods of `Store`, so another
backend is one more module here.
"""

from __future__ import annotations

import abc

import numpy as np

# Index locations that name a database rather than an index folder.
DATABASE_SCHEMES = ("http://", "https://", "tcp://", "grpc://")
DATABASE_SUFFIX = ".db"


def is_database(location: str) -> bool:
    """Whether `location` names a Milvus database (a server URI, or a Milvus Lite file
    `*.db`, optionally `#COLLECTION`) rather than an index folder."""
    path = location.split("#", 1)[0]
    return path.startswith(DATABASE_SCHEMES) or path.endswith(DATABASE_SUFFIX)


class Store(abc.ABC):
    """Vectors and their ids, searched by one backend.

    Attributes:
        backend: the backend's name ("exact", "hnsw", "ivf", "milvus").
        distance: "cosine" or "euclidean" (squared).
        dim: the vectors' length.
    """

    backend: str
    distance: str
    dim: int

    @abc.abstractmethod
    def __len__(self) -> int:
        """The number of vectors."""

    @property
    @abc.abstractmethod
    def id_kind(self) -> str | None:
        """ "int" or "str", the kind of the ids held; None while empty."""

    @abc.abstractmethod
    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Appends `vectors` `[N, dim]` (float32, unit-length for cosine) and their ids."""

    @abc.abstractmethod
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Ids `[Q, k]` and distances `[Q, k]` of each query's nearest vectors, nearest
        first; `k` is 1 to `len(self)`. A slot with nothing found holds the id None
        (the ids then an object array) and the distance inf."""
