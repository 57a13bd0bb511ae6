"""The gallery index on vectors: ids, k, saving, loading, adding, and damaged folders."""

from __future__ import annotations

import json
import os
import types

import numpy as np
import pytest

from keras_siamese import files
from keras_siamese.errors import UserError
from keras_siamese.serving.backends.memory import MemoryStore
from keras_siamese.serving.index import EmbeddingIndex

GALLERY = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], np.float32)
IDS = ["cat", "dog", "ship", "catdog"]


def _index(backend: str = "exact", ids=IDS, fingerprint: str = "abc") -> EmbeddingIndex:
    index = EmbeddingIndex(MemoryStore.new(3, "cosine", backend), fingerprint)
    index.add_vectors(GALLERY, ids)
    return index


def _export(fingerprint: str):
    """What loading checks of a Similarity: its export's name and fingerprint."""
    return types.SimpleNamespace(fingerprint=fingerprint, export_dir=f"runs/{fingerprint}/export")


def test_search_returns_ids_nearest_first():
    ids, distances = _index().search_vectors(np.array([[1, 0.1, 0]], np.float32), k=2)
    assert ids.tolist() == [["cat", "catdog"]]
    assert distances[0, 0] < distances[0, 1]
    np.testing.assert_allclose(distances[0, 0], 1 - 1 / np.sqrt(1.01), atol=1e-6)


def test_k_beyond_the_gallery_is_cut_to_it_and_k_under_one_refused():
    ids, distances = _index().search_vectors(np.eye(3, dtype=np.float32), k=50)
    assert ids.shape == distances.shape == (3, 4)
    assert ids[:, 0].tolist() == ["cat", "dog", "ship"]
    for k in (0, -1, 2.5, True):
        with pytest.raises(UserError, match="must be a whole number of at least 1"):
            _index().search_vectors(np.eye(3, dtype=np.float32), k=k)


def test_integer_ids_and_a_wrong_number_of_ids():
    index = _index(ids=[10, 11, 12, 13])
    assert index.search_vectors(GALLERY[2:3], k=1)[0].tolist() == [[12]]
    with pytest.raises(UserError, match="4 images were given with 3 ids"):
        _index(ids=IDS[:3])
    with pytest.raises(UserError, match="ids are integers; give new ids of the same kind"):
        index.add_vectors(GALLERY[:1], ["x"])


@pytest.mark.parametrize("backend", ["exact", "hnsw"])
def test_a_saved_index_loads_searches_alike_and_grows_without_rebuilding(backend, tmp_path):
    if backend != "exact":
        pytest.importorskip("faiss")
    index = _index(backend)
    queries = np.array([[1, 0.2, 0], [0, 0.1, 1]], np.float32)
    before = index.search_vectors(queries, k=3)
    index.save(str(tmp_path / "gallery"))
    loaded = EmbeddingIndex.load(str(tmp_path / "gallery"), _export("abc"))
    after = loaded.search_vectors(queries, k=3)
    assert after[0].tolist() == before[0].tolist()
    np.testing.assert_allclose(after[1], before[1], atol=1e-6)
    loaded.add_vectors(np.array([[0, 0.1, 1]], np.float32), ["boat"])
    loaded.save(str(tmp_path / "gallery"))
    again = EmbeddingIndex.load(str(tmp_path / "gallery"))
    assert len(again) == 5
    assert again.search_vectors(queries[1:], k=1)[0].tolist() == [["boat"]]


def test_an_index_of_another_export_is_refused(tmp_path):
    _index(fingerprint="abc").save(str(tmp_path / "gallery"))
    with pytest.raises(UserError, match="built with another export .*search it with that export"):
        EmbeddingIndex.load(str(tmp_path / "gallery"), _export("xyz"))


def _damage(folder, name: str, text: str | None) -> None:
    path = os.path.join(folder, name)
    if text is None:
        os.remove(path)
    else:
        with open(path, "w") as f:
            f.write(text)


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("index.json", None, "not an index folder .it has no index.json"),
        ("index.json", "{", "damaged index .index.json"),
        ("index.json", '{"format": "other/9"}', "of format 'other/9'"),
        ("ids.npy", None, "damaged index"),
        ("vectors.npy", "not numpy", "damaged index"),
    ],
)
def test_a_damaged_index_is_one_sentence(tmp_path, name, text, message):
    folder = str(tmp_path / "gallery")
    _index().save(folder)
    _damage(folder, name, text)
    with pytest.raises(UserError, match=message):
        EmbeddingIndex.load(folder)


def test_a_count_that_disagrees_with_the_files_is_damage(tmp_path):
    folder = str(tmp_path / "gallery")
    _index().save(folder)
    with open(os.path.join(folder, "index.json")) as f:
        description = json.load(f)
    _damage(folder, "index.json", json.dumps({**description, "count": 3}))
    with pytest.raises(UserError, match="4 ids and 4 vectors for 3 images"):
        EmbeddingIndex.load(folder)


def test_a_missing_folder_is_one_sentence(tmp_path):
    with pytest.raises(UserError, match="not an index folder .it does not exist"):
        EmbeddingIndex.load(str(tmp_path / "nowhere"))


def test_a_save_that_fails_midway_leaves_the_previous_index_whole(tmp_path, monkeypatch):
    folder = str(tmp_path / "gallery")
    _index().save(folder)
    bigger = _index()
    bigger.add_vectors(GALLERY, ["a", "b", "c", "d"])

    def fail(path, obj):
        raise KeyboardInterrupt  # as if killed while writing the last file

    monkeypatch.setattr(files, "write_json_atomic", fail)
    with pytest.raises(KeyboardInterrupt):
        bigger.save(folder)
    monkeypatch.undo()
    assert len(EmbeddingIndex.load(folder)) == 4
    assert sorted(os.listdir(tmp_path)) == ["gallery"]  # no staging folder left behind


def test_a_damaged_faiss_file_is_one_sentence(tmp_path):
    pytest.importorskip("faiss")
    folder = str(tmp_path / "gallery")
    _index("hnsw").save(folder)
    with open(os.path.join(folder, "faiss.index"), "r+b") as f:
        f.truncate(100)
    with pytest.raises(UserError, match="damaged index"):
        EmbeddingIndex.load(folder)
