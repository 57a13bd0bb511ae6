"""The gallery index on Milvus: Milvus Lite's own engine, in a file and behind its server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import types

import numpy as np
import pytest

from keras_siamese.errors import UserError
from keras_siamese.serving import index as index_module
from keras_siamese.serving.index import EmbeddingIndex
from keras_siamese.serving.vector_search import SearchOptions, prepared, top_k_exact
from tests.conftest import ROOT

pytest.importorskip("milvus_lite")
from keras_siamese.serving.backends.milvus import MilvusStore  # noqa: E402

DIM = 16
# A candidate list longer than the test galleries: the graph search is then exhaustive,
# so its answers must be exact search's.
EXHAUSTIVE = SearchOptions(hnsw_ef_search=512)


def _export(fingerprint: str = "abc"):
    """What the index reads of a Similarity when it is given vectors, not images."""
    return types.SimpleNamespace(
        fingerprint=fingerprint, export_dir=f"runs/{fingerprint}/export", distance_name="cosine"
    )


def _vectors(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)


def _index(location: str, distance: str = "cosine", fingerprint: str = "abc", options=None):
    options = options or EXHAUSTIVE
    description = {"format": index_module.FORMAT, "backend": "milvus", "fingerprint": fingerprint}
    description["export"] = f"runs/{fingerprint}/export"
    store = MilvusStore.create(location, DIM, distance, options, description)
    return EmbeddingIndex(store, fingerprint)


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_answers_are_exact_searchs_on_a_small_gallery(tmp_path, distance):
    gallery, queries = _vectors(300), _vectors(20, seed=1)
    index = _index(str(tmp_path / "g.db"), distance)
    index.add_vectors(gallery, np.arange(300))
    ids, distances = index.search_vectors(queries, k=10)
    expected, expected_distances = top_k_exact(
        prepared(queries, distance), prepared(gallery, distance), 10, distance
    )
    assert ids.dtype == np.int64 and ids.tolist() == expected.tolist()
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-4, atol=1e-5)
    # Brute force, by hand: the nearest of query 0.
    if distance == "euclidean":
        by_hand = ((gallery - queries[0]) ** 2).sum(axis=1)
    else:
        unit = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
        by_hand = 1 - unit @ (queries[0] / np.linalg.norm(queries[0]))
    assert ids[0, 0] == np.argmin(by_hand)
    np.testing.assert_allclose(distances[0, 0], by_hand.min(), rtol=1e-4, atol=1e-5)


def test_added_items_are_found_after_reopening_and_ids_keep_their_kind(tmp_path):
    location = str(tmp_path / "g.db") + "#cats"
    index = _index(location)
    gallery = _vectors(50)
    index.add_vectors(gallery, [f"cat {i}" for i in range(50)])
    with pytest.raises(UserError, match="ids are strings; give new ids of the same kind"):
        index.add_vectors(gallery[:1], [7])
    index._store.close()
    again = EmbeddingIndex.load(location, _export(), options=EXHAUSTIVE)
    assert len(again) == 50 and again.backend == "milvus" and again.stored_as_added
    new = _vectors(3, seed=5) * 10
    again.add_vectors(new, ["new a", "new b", "new c"])
    ids, _ = again.search_vectors(new, k=1)
    assert ids.tolist() == [["new a"], ["new b"], ["new c"]]
    assert len(again) == 53
    again._store.close()
    assert index_module.recorded_export(location) == "runs/abc/export"


def test_another_export_a_foreign_collection_and_a_second_build_are_refused(tmp_path):
    location = str(tmp_path / "g.db")
    index = _index(location)
    index.add_vectors(_vectors(20), np.arange(20))
    with pytest.raises(UserError, match="already holds a collection 'gallery'"):
        MilvusStore.create(location, DIM, "cosine", EXHAUSTIVE, {"fingerprint": "abc"})
    client = index._store._client
    schema = client.create_schema(auto_id=True)
    import pymilvus

    schema.add_field("key", pymilvus.DataType.INT64, is_primary=True)
    schema.add_field("vector", pymilvus.DataType.FLOAT_VECTOR, dim=4)
    params = client.prepare_index_params()
    params.add_index(field_name="vector", index_type="FLAT", metric_type="L2")
    client.create_collection("theirs", schema=schema, index_params=params)
    client.close()
    with pytest.raises(UserError, match="was built with another export"):
        EmbeddingIndex.load(location, _export("xyz"))
    with pytest.raises(UserError, match="was not made by keras_siamese"):
        EmbeddingIndex.load(location + "#theirs")
    with pytest.raises(UserError, match="has no collection 'other' \\(it has: "):
        EmbeddingIndex.load(location + "#other")
    with pytest.raises(UserError, match="is not a Milvus collection name"):
        EmbeddingIndex.load(location + "#no-dashes")
    again = EmbeddingIndex.load(location, _export())
    assert len(again) == 20  # nothing refused above changed the collection
    with pytest.raises(UserError, match=r"Vectors of shape \[1, 4\] were given"):
        again.search_vectors(np.ones((1, 4), np.float32))
    with pytest.raises(UserError, match="must be a whole number of at least 1"):
        again.search_vectors(_vectors(1), k=0)


def test_unreachable_databases_and_a_missing_client_are_one_sentence(tmp_path, monkeypatch):
    started = time.monotonic()
    with pytest.raises(UserError, match="Cannot open the Milvus database http://127.0.0.1:9"):
        EmbeddingIndex.load("http://127.0.0.1:9")
    assert time.monotonic() - started < 60
    with pytest.raises(UserError, match="is not a folder"):
        EmbeddingIndex.load(str(tmp_path / "missing" / "g.db"))
    monkeypatch.setitem(sys.modules, "pymilvus", None)  # as if it were not installed
    with pytest.raises(UserError, match=r"pip install 'keras-siamese\[milvus\]'"):
        EmbeddingIndex.load(str(tmp_path / "g.db"))


_KILLED_ADD = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from keras_siamese.serving.backends import milvus
    from keras_siamese.serving.index import EmbeddingIndex
    from tests.test_milvus import _index, _vectors
    if sys.argv[2] == "build":
        _index(sys.argv[1]).add_vectors(_vectors(40), np.arange(40))
        sys.exit(0)
    index = EmbeddingIndex.load(sys.argv[1])
    client = index._store._client
    insert = client.insert
    def insert_then_die(*args, **kwargs):
        insert(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)  # after the first block of rows
    client.insert = insert_then_die
    rows = 3 * milvus._INSERT_ROWS
    index.add_vectors(np.random.default_rng(9).normal(size=(rows, 16)), np.arange(rows) + 1000)
    """
)


def test_a_killed_add_leaves_the_collection_searchable_with_its_items(tmp_path):
    # Each step in a process of its own: Milvus Lite keeps its file until its process ends.
    location = str(tmp_path / "g.db")
    steps = {}
    for step in ("build", "add"):
        steps[step] = subprocess.run(
            [sys.executable, "-c", _KILLED_ADD, location, step],
            cwd=ROOT,
            capture_output=True,
            timeout=300,
        )
    assert steps["build"].returncode == 0, steps["build"].stderr.decode()[-2000:]
    assert steps["add"].returncode == -signal.SIGKILL, steps["add"].stderr.decode()[-2000:]
    again = EmbeddingIndex.load(location, _export(), options=EXHAUSTIVE)
    from keras_siamese.serving.backends import milvus

    assert len(again) in (40, 40 + milvus._INSERT_ROWS)  # a block lands whole or not at all
    ids, _ = again.search_vectors(_vectors(40)[:5] * 100, k=1)
    assert ids[:, 0].tolist() == [0, 1, 2, 3, 4]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_ADDER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from keras_siamese.serving.index import EmbeddingIndex
    index = EmbeddingIndex.load(sys.argv[1])
    rng = np.random.default_rng(3)
    for batch in range(10):
        index.add_vectors(rng.normal(size=(20, 16)), np.arange(20) + 1000 + 20 * batch)
        print(batch, flush=True)
        time.sleep(0.3)
    """
)


def test_a_second_process_queries_while_one_adds_through_the_server(tmp_path):
    port = _free_port()
    server = subprocess.Popen(
        [
            os.path.join(os.path.dirname(sys.executable), "milvus-lite"),
            "server",
            "--data-dir",
            str(tmp_path / "data"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        location = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                index = _index(location)
                break
            except UserError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        gallery = _vectors(30)
        index.add_vectors(gallery, np.arange(30))
        adder = subprocess.Popen(
            [sys.executable, "-c", _ADDER, location], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        counts = []
        while adder.poll() is None:
            ids, _ = index.search_vectors(gallery[:3] * 100, k=1)
            assert ids[:, 0].tolist() == [0, 1, 2]  # answered while the other process adds
            counts.append(len(index))
            time.sleep(0.1)
        assert adder.returncode == 0, adder.stdout.read()
        assert len(index) == 230
        assert counts[0] < 230 and counts == sorted(counts) and len(set(counts)) > 2
    finally:
        server.terminate()
        server.wait(timeout=30)
