"""Nearest-neighbour search over embedding vectors: exact, or approximate with FAISS.

Distances are the export's: cosine distance `1 - cos(q, g)` (vectors are
stored unit-length, so it is one minus an inner product) or squared
euclidean. The exact search is a batched matrix product with a top-k that
reads each score once more; the FAISS backends (`faiss-cpu`, imported only
when asked for) are HNSW (a graph; good recall at high query rates) and IVF
(an inverted file of k-means cells; builds faster on large galleries).
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np

from keras_siamese.choices import DISTANCES
from keras_siamese.errors import UserError

BACKENDS = ("exact", "hnsw", "ivf")

# Scores per block of the exact search: about 128 MB of float32 at a time.
_BLOCK_SCORES = 1 << 25
# At most this many columns per group whose maxima pick the exact top-k's candidates.
_COLUMN_GROUP = 256


@dataclasses.dataclass(frozen=True)
class SearchOptions:
    """How an approximate backend builds and searches.

    Attributes:
        hnsw_neighbors: links per node of the HNSW graph (FAISS's M).
        hnsw_ef_construction: candidate list while building the graph.
        hnsw_ef_search: candidate list while searching (raised to k when smaller).
        ivf_cells: k-means cells of IVF; 0: about 4 sqrt(N), at most N / 39.
        ivf_probes: cells visited per query.
    """

    hnsw_neighbors: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 64
    ivf_cells: int = 0
    ivf_probes: int = 32

    def check(self) -> None:
        """Raises UserError for a value out of range."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            low = 0 if field.name == "ivf_cells" else 1
            if value < low:
                raise UserError(f"{field.name}={value} must be at least {low}.")


def _faiss():
    # FAISS's loader logs each CPU-specific build it tries and does not find: not news.
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    try:
        import faiss
    except ImportError:
        raise UserError(
            "The hnsw and ivf backends need FAISS: pip install faiss-cpu (or use --backend=exact)."
        ) from None
    return faiss


def prepared(vectors: np.ndarray, distance: str) -> np.ndarray:
    """`vectors` as contiguous float32, unit-length for cosine distance."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if distance == "cosine":
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.maximum(norms, 1e-12)
    return np.ascontiguousarray(vectors, dtype=np.float32)


def checked(vectors: np.ndarray, dim: int, distance: str) -> np.ndarray:
    """`vectors` prepared (see `prepared`) after checking they are finite `[N, dim]`, N >= 1.

    Raises:
        UserError: for another shape, no vector, or NaN or infinite values.
    """
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[1] != dim or not len(vectors):
        raise UserError(
            f"Vectors of shape {list(vectors.shape)} were given; this index holds "
            f"[N, {dim}] with N at least 1."
        )
    if not np.isfinite(vectors).all():
        raise UserError("Vectors with NaN or infinite values were given.")
    return prepared(vectors, distance)


def ivf_cells(count: int) -> int:
    """The default number of IVF cells for `count` vectors (at least 39 per cell)."""
    return max(1, min(int(4 * math.sqrt(count)), count // 39))


def top_k_exact(queries: np.ndarray, gallery: np.ndarray, k: int, distance: str):
    """The `k` nearest gallery rows of each query, by a batched matrix product.

    Args:
        queries: `[Q, D]` vectors, prepared as the gallery (see `prepared`).
        gallery: `[N, D]` vectors.
        k: neighbours per query, 1 to N.
        distance: "cosine" or "euclidean" (squared).

    Returns:
        positions `[Q, k]` (int64) and distances `[Q, k]` (float32), nearest
        first; equal distances in order of position.
    """
    count = len(gallery)
    # Every distance is (query-only term) - score, with the score to maximise.
    if distance == "cosine":
        offset, bias = np.ones(len(queries), np.float32), None
    else:
        offset = np.einsum("ij,ij->i", queries, queries)
        bias = -np.einsum("ij,ij->i", gallery, gallery)
    rows = max(1, _BLOCK_SCORES // max(count, 1))
    positions = np.empty((len(queries), k), np.int64)
    distances = np.empty((len(queries), k), np.float32)
    for start in range(0, len(queries), rows):
        block = queries[start : start + rows]
        scores = block @ gallery.T
        if bias is not None:
            scores *= 2.0
            scores += bias
        best = _top_scores(scores, k)
        positions[start : start + len(block)] = best
        chosen = np.take_along_axis(scores, best, axis=1)
        distances[start : start + len(block)] = offset[start : start + len(block), None] - chosen
    # Rounding can put a distance just under 0 (1 - cos of a vector with itself).
    np.maximum(distances, 0.0, out=distances)
    return positions, distances


def _top_scores(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest scores of each row, largest first; equal
    scores in order of column."""
    rows, count = scores.shape
    group = min(_COLUMN_GROUP, int(math.sqrt(count / k)))
    maxima = None
    if group < 8 or count // group < 2 * k:
        columns = np.broadcast_to(np.arange(count), scores.shape)
    else:
        # Group g holds columns g, g + width, g + 2 width, ...: every one of the k best
        # scores lies in one of the k groups with the largest maxima, so only those
        # groups (and the columns after the last whole stride) are candidates. The
        # maxima are one pass of elementwise maxima over the scores.
        width = count // group
        maxima = scores[:, : group * width].reshape(rows, group, width).max(axis=1)
        best = np.argpartition(-maxima, k - 1, axis=1)[:, :k]
        columns = (best[:, :, None] + np.arange(group) * width).reshape(rows, k * group)
        tail = np.arange(group * width, count)
        columns = np.concatenate([columns, np.broadcast_to(tail, (rows, len(tail)))], axis=1)
    values = np.take_along_axis(scores, columns, axis=1)
    pick = np.argpartition(-values, k - 1, axis=1)[:, :k] if k < values.shape[1] else None
    if pick is None:
        pick = np.broadcast_to(np.arange(k), (rows, k))
    chosen = np.take_along_axis(columns, pick, axis=1)
    chosen_values = np.take_along_axis(values, pick, axis=1)
    # Where more candidates than k tie with the k-th score, keep the lowest columns; where
    # a group left out reaches that score too, the whole row decides (both are rare).
    kth = chosen_values.min(axis=1, keepdims=True)
    tied = (values >= kth).sum(axis=1) > k
    spilled = np.zeros(rows, bool) if maxima is None else (maxima >= kth).sum(axis=1) > k
    for row in np.flatnonzero(tied | spilled):
        where, among = (
            (np.arange(count), scores[row]) if spilled[row] else (columns[row], values[row])
        )
        order = np.lexsort((where, -among))[:k]
        chosen[row], chosen_values[row] = where[order], among[order]
    order = np.lexsort((chosen, -chosen_values), axis=1)
    return np.take_along_axis(chosen, order, axis=1)


class VectorSearch:
    """A growing set of vectors searched by one backend.

    Args:
        dim: vector length.
        distance: "cosine" or "euclidean" (squared).
        backend: "exact", "hnsw" or "ivf".
        options: the approximate backends' settings.
    """

    def __init__(
        self, dim: int, distance: str, backend: str = "exact", options: SearchOptions | None = None
    ):
        if distance not in DISTANCES:
            raise UserError(f"distance={distance!r} must be one of {', '.join(DISTANCES)}.")
        if backend not in BACKENDS:
            raise UserError(f"backend={backend!r} must be one of {', '.join(BACKENDS)}.")
        self.options = options or SearchOptions()
        self.options.check()
        self.dim, self.distance, self.backend = int(dim), distance, backend
        self._vectors = np.zeros((0, self.dim), np.float32)  # the exact backend's store
        self._faiss_index = None

    def __len__(self) -> int:
        if self._faiss_index is not None:
            return int(self._faiss_index.ntotal)
        return len(self._vectors)

    def add(self, vectors: np.ndarray) -> None:
        """Appends `vectors` `[N, dim]`; their positions continue from `len(self)`."""
        vectors = self._checked(vectors)
        if self.backend == "exact":
            self._vectors = np.concatenate([self._vectors, vectors])
            return
        if self._faiss_index is None:
            self._faiss_index = self._new_faiss_index(vectors)
        self._faiss_index.add(vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions `[Q, k]` and distances `[Q, k]` of each query's k nearest vectors.

        `k` must be 1 to `len(self)`.
        """
        queries = self._checked(queries)
        if not 1 <= k <= len(self):
            raise UserError(f"k={k} must be 1 to the {len(self)} vectors searched.")
        if self.backend == "exact":
            return top_k_exact(queries, self._vectors, k, self.distance)
        if self.backend == "hnsw":
            self._faiss_index.hnsw.efSearch = max(self.options.hnsw_ef_search, k)
        else:
            self._faiss_index.nprobe = self.options.ivf_probes
        found, positions = self._faiss_index.search(queries, k)
        distances = np.maximum(1.0 - found if self.distance == "cosine" else found, 0.0)
        return positions.astype(np.int64), distances.astype(np.float32)

    def _checked(self, vectors: np.ndarray) -> np.ndarray:
        return checked(vectors, self.dim, self.distance)

    def _new_faiss_index(self, first: np.ndarray):
        faiss = _faiss()
        metric = faiss.METRIC_INNER_PRODUCT if self.distance == "cosine" else faiss.METRIC_L2
        if self.backend == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, self.options.hnsw_neighbors, metric)
            index.hnsw.efConstruction = self.options.hnsw_ef_construction
            return index
        cells = self.options.ivf_cells or ivf_cells(len(first))
        if cells > len(first):
            raise UserError(
                f"An IVF index of {cells} cells needs at least {cells} vectors to start "
                f"from; {len(first)} were given."
            )
        quantizer = faiss.IndexFlat(self.dim, metric)
        index = faiss.IndexIVFFlat(quantizer, self.dim, cells, metric)
        index.train(first)
        return index

    # ------------------------------------------------------------------ files

    def write(self, path: str) -> None:
        """Writes the backend's data to the file `path` (.npy or FAISS's format)."""
        if self.backend == "exact":
            with open(path, "wb") as f:
                np.save(f, self._vectors, allow_pickle=False)
        else:
            _faiss().write_index(self._faiss_index, path)

    def read(self, path: str) -> None:
        """Reads what `write` wrote; raises OSError or ValueError when it is damaged."""
        if self.backend == "exact":
            vectors = np.load(path, allow_pickle=False)
            if vectors.ndim != 2 or vectors.shape[1] != self.dim:
                raise ValueError(f"vectors of shape {list(vectors.shape)}, not [N, {self.dim}]")
            self._vectors = vectors.astype(np.float32)
            return
        faiss = _faiss()
        try:
            index = faiss.read_index(path)
        except RuntimeError as e:
            raise ValueError(str(e).strip().splitlines()[-1]) from None
        if index.d != self.dim:
            raise ValueError(f"a FAISS index of {index.d}-d vectors, not {self.dim}")
        self._faiss_index = index
