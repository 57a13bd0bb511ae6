"""Speed and recall of the gallery search backends (figures, not a test).

    python bench/search.py [--sizes=100000,1000000] [--dim=64] [--clusters=0]
        [--queries=1000] [--k=10] [--backends=exact,hnsw,ivf,milvus,qdrant]
        [--hnsw_ef_search=32,64,128] [--ivf_probes=16,32,64]
        [--export=runs/90_10/export --data_dir=DIR] [--db_dir=DIR]

Backends: this process's exact search and FAISS's HNSW and IVF; `milvus`, a
Milvus Lite file through the index's own store (pip install
'keras-siamese[milvus]'); `qdrant`, Qdrant's local mode (pip install
qdrant-client; measured for the comparison only, not a backend of the index).
The databases' files go to --db_dir (default: a temporary folder), and their
`index_mib` is the size of those files.

Prints one JSON line per gallery, backend and search setting: build seconds,
the memory the index added (resident set growth), queries per second with all
queries in one call, p50 and p99 latency of single-query calls, and recall@k
against exact search. For exact search it also prints the time of a plain
numpy matrix product of the same queries and gallery (`matmul_seconds`), the
floor any exact search pays. Galleries: random normal vectors of each size
(cosine distance; with `--clusters`, drawn around random centres as the
embeddings of classes are), and with `--export` the CIFAR-100 test set
embedded by that export (its own distance; the queries are its first images).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from measure import median_seconds  # noqa: E402  (bench/measure.py)

from keras_siamese.serving import vector_search  # noqa: E402
from keras_siamese.serving.vector_search import SearchOptions, VectorSearch  # noqa: E402

_SIZES = flags.DEFINE_list("sizes", ["100000", "1000000"], "Random gallery sizes.")
_DIM = flags.DEFINE_integer("dim", 64, "Length of the random vectors.")
_CLUSTERS = flags.DEFINE_integer(
    "clusters",
    0,
    "Draw the random vectors around this many random centres (spread 0.5 of the centres'), "
    "as embeddings of classes lie; 0: plain normal vectors.",
)
_QUERIES = flags.DEFINE_integer("queries", 1000, "Queries searched in one call.")
_LATENCY_QUERIES = flags.DEFINE_integer("latency_queries", 200, "Queries searched one by one.")
_K = flags.DEFINE_integer("k", 10, "Neighbours per query.")
_BACKENDS = flags.DEFINE_list("backends", list(vector_search.BACKENDS), "Backends to measure.")
_DB_DIR = flags.DEFINE_string("db_dir", None, "Folder of the databases' files.")
_EF_SEARCH = flags.DEFINE_list("hnsw_ef_search", ["32", "64", "128"], "HNSW search lists.")
_PROBES = flags.DEFINE_list("ivf_probes", ["16", "32", "64"], "IVF cells visited per query.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repeats of the batched search (median).")
_EXPORT = flags.DEFINE_string("export", None, "Also an export's embeddings of CIFAR-100 test.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "CIFAR-100 folder, with --export.")


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _settings(backend: str) -> list[tuple[str, SearchOptions]]:
    if backend in ("hnsw", "milvus", "qdrant"):
        return [(f"ef_search={v}", SearchOptions(hnsw_ef_search=int(v))) for v in _EF_SEARCH.value]
    if backend == "ivf":
        return [(f"probes={v}", SearchOptions(ivf_probes=int(v))) for v in _PROBES.value]
    return [("", SearchOptions())]


def _folder_mib(path: str) -> float:
    sizes = [os.path.getsize(os.path.join(d, f)) for d, _, names in os.walk(path) for f in names]
    return sum(sizes) / 2**20


class _Milvus:
    """A Milvus Lite collection through the index's store; ids are gallery positions."""

    def __init__(self, dim: int, distance: str, folder: str):
        from keras_siamese.serving.backends.milvus import MilvusStore

        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        location = os.path.join(folder, "gallery.db")
        self.store = MilvusStore.create(location, dim, distance, SearchOptions(), {})
        self.distance = distance

    def add(self, vectors: np.ndarray) -> None:
        prepared = vector_search.prepared(vectors, self.distance)
        self.store.add(prepared, np.arange(len(prepared), dtype=np.int64))

    def set_options(self, options: SearchOptions) -> None:
        self.store.options = options

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        return self.store.search(vector_search.prepared(queries, self.distance), k)[0]

    def close(self) -> None:
        self.store.drop()
        self.store.close()


class _Qdrant:
    """Qdrant's local mode (the client's own implementation of the server's calls)."""

    def __init__(self, dim: int, distance: str, folder: str):
        from qdrant_client import QdrantClient, models

        self.models = models
        self.folder = folder
        self.client = QdrantClient(path=folder)
        metric = models.Distance.COSINE if distance == "cosine" else models.Distance.EUCLID
        self.client.create_collection(
            "gallery",
            vectors_config=models.VectorParams(size=dim, distance=metric),
            hnsw_config=models.HnswConfigDiff(m=32, ef_construct=80),
        )
        self.ef = 64

    def add(self, vectors: np.ndarray) -> None:
        self.client.upload_collection("gallery", vectors, ids=range(len(vectors)), batch_size=1000)

    def set_options(self, options: SearchOptions) -> None:
        self.ef = options.hnsw_ef_search

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        params = self.models.SearchParams(hnsw_ef=max(self.ef, k))
        requests = [
            self.models.QueryRequest(query=q.tolist(), limit=k, params=params) for q in queries
        ]
        found = self.client.query_batch_points("gallery", requests)
        return np.array([[p.id for p in r.points] for r in found], np.int64)

    def close(self) -> None:
        self.client.close()


class _InProcess:
    """This process's exact search or FAISS index."""

    def __init__(self, dim: int, distance: str, backend: str):
        self.search_ = VectorSearch(dim, distance, backend)
        self.folder = None

    def add(self, vectors: np.ndarray) -> None:
        self.search_.add(vectors)

    def set_options(self, options: SearchOptions) -> None:
        self.search_.options = options

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        return self.search_.search(queries, k)[0]

    def close(self) -> None:
        pass


def _searcher(backend: str, dim: int, distance: str, name: str):
    if backend in vector_search.BACKENDS:
        return _InProcess(dim, distance, backend)
    folder = os.path.join(_DB_DIR.value or tempfile.mkdtemp(), f"{backend}_{name}")
    return {"milvus": _Milvus, "qdrant": _Qdrant}[backend](dim, distance, folder)


def _measure(gallery_name: str, gallery: np.ndarray, queries: np.ndarray, distance: str) -> None:
    k = _K.value
    exact_positions = None
    if "exact" not in _BACKENDS.value:  # recall still needs the true neighbours
        exact_positions = vector_search.top_k_exact(
            vector_search.prepared(queries, distance),
            vector_search.prepared(gallery, distance),
            k,
            distance,
        )[0]
    for backend in sorted(_BACKENDS.value, key=lambda b: b != "exact"):
        gc.collect()
        before = _rss_mib()
        start = time.perf_counter()
        search = _searcher(backend, gallery.shape[1], distance, gallery_name)
        search.add(gallery)
        build_seconds = time.perf_counter() - start
        gc.collect()
        added_mib = _folder_mib(search.folder) if search.folder else _rss_mib() - before
        for setting, options in _settings(backend):
            search.set_options(options)
            found = {}

            def batched(search=search, found=found):
                found["positions"] = search.search(queries, k)

            seconds = median_seconds(batched, _REPEATS.value)
            latencies = []
            for query in queries[: _LATENCY_QUERIES.value]:
                begin = time.perf_counter()
                search.search(query[None], k)
                latencies.append(time.perf_counter() - begin)
            line = {
                "gallery": gallery_name,
                "size": len(gallery),
                "dim": gallery.shape[1],
                "distance": distance,
                "backend": backend,
                "setting": setting,
                "build_seconds": round(build_seconds, 3),
                "index_mib": round(added_mib, 1),
                "queries": len(queries),
                "queries_per_second": round(len(queries) / seconds, 1),
                "p50_ms": round(1000 * float(np.percentile(latencies, 50)), 3),
                "p99_ms": round(1000 * float(np.percentile(latencies, 99)), 3),
            }
            if backend == "exact":
                exact_positions = found["positions"]
                prepared = vector_search.prepared(gallery, distance)
                prepared_queries = vector_search.prepared(queries, distance)
                matmul = median_seconds(
                    lambda q=prepared_queries, g=prepared: q @ g.T, _REPEATS.value
                )
                del prepared
                line["matmul_seconds"] = round(matmul, 6)
                line["search_seconds"] = round(seconds, 6)
                line["ratio_to_matmul"] = round(seconds / matmul, 2)
            if exact_positions is not None:
                hits = [
                    len(set(a) & set(b))
                    for a, b in zip(exact_positions, found["positions"], strict=True)
                ]
                line[f"recall_at_{k}"] = round(sum(hits) / (k * len(queries)), 4)
            print(json.dumps(line), flush=True)
        search.close()
        del search


def _export_embeddings() -> tuple[np.ndarray, str]:
    from keras_siamese.serving.similarity import Similarity

    sim = Similarity.load(_EXPORT.value)
    with np.load(os.path.join(_DATA_DIR.value, "cifar100_test.npz")) as data:
        images = data["images"]
    return sim.embed(images), sim.distance_name


def main(argv: list[str]) -> None:
    del argv
    rng = np.random.default_rng(0)
    if _EXPORT.value:
        vectors, distance = _export_embeddings()
        _measure("cifar100_test", vectors, vectors[: _QUERIES.value], distance)
    for size in (int(s) for s in _SIZES.value):
        gallery, queries = _random_vectors(rng, size, _QUERIES.value)
        name = f"random_{size}" + (f"_in_{_CLUSTERS.value}_clusters" if _CLUSTERS.value else "")
        _measure(name, gallery, queries, "cosine")


def _random_vectors(rng: np.random.Generator, size: int, queries: int):
    shape = (size + queries, _DIM.value)
    vectors = rng.standard_normal(shape, dtype=np.float32)
    if _CLUSTERS.value:
        centres = rng.standard_normal((_CLUSTERS.value, _DIM.value), dtype=np.float32)
        vectors = centres[rng.integers(0, _CLUSTERS.value, len(vectors))] + 0.5 * vectors
    return vectors[:size], vectors[size:]


if __name__ == "__main__":
    app.run(main)
