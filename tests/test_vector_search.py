"""Nearest-neighbour search over vectors: exact against brute force, FAISS against exact."""

from __future__ import annotations

import numpy as np
import pytest

from keras_siamese.errors import UserError
from keras_siamese.serving import vector_search
from keras_siamese.serving.vector_search import SearchOptions, VectorSearch


def _brute_force(queries, gallery, distance):
    if distance == "cosine":
        q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
        full = 1.0 - q.astype(np.float64) @ g.T.astype(np.float64)
    else:
        full = ((queries[:, None, :].astype(np.float64) - gallery[None]) ** 2).sum(-1)
    return np.argsort(full, axis=1, kind="stable"), full


def test_exact_distances_by_hand():
    gallery = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    query = np.array([[2, 0]], np.float32)
    cosine = VectorSearch(2, "cosine")
    cosine.add(gallery)
    positions, distances = cosine.search(query, 3)
    assert positions.tolist() == [[0, 2, 1]]
    np.testing.assert_allclose(distances, [[0.0, 1 - 1 / np.sqrt(2), 1.0]], atol=1e-6)
    euclidean = VectorSearch(2, "euclidean")
    euclidean.add(gallery)
    positions, distances = euclidean.search(query, 3)
    assert positions.tolist() == [[0, 2, 1]]  # squared distances 1, 2, 5
    np.testing.assert_allclose(distances, [[1.0, 2.0, 5.0]], atol=1e-6)


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
@pytest.mark.parametrize("count", [7, 300, 20_000])  # the last bounds by column groups
def test_exact_search_is_brute_force(distance, count):
    rng = np.random.default_rng(count)
    gallery = rng.normal(size=(count, 16)).astype(np.float32)
    gallery[count // 2] = gallery[1]  # a tie: the lower position comes first
    queries = np.concatenate([rng.normal(size=(40, 16)), gallery[1:2]]).astype(np.float32)
    k = min(5, count)
    search = VectorSearch(16, distance)
    search.add(gallery[: count // 2])
    search.add(gallery[count // 2 :])  # positions continue
    positions, distances = search.search(queries, k)
    order, full = _brute_force(queries, gallery, distance)
    np.testing.assert_array_equal(positions, order[:, :k])
    np.testing.assert_allclose(distances, np.take_along_axis(full, order[:, :k], 1), atol=2e-5)
    assert positions[-1, :2].tolist() == [1, count // 2]


def test_the_whole_gallery_comes_back_sorted():
    gallery = np.arange(12, dtype=np.float32).reshape(6, 2)
    search = VectorSearch(2, "euclidean")
    search.add(gallery[::-1])
    positions, distances = search.search(np.zeros((1, 2), np.float32), 6)
    assert positions.tolist() == [[5, 4, 3, 2, 1, 0]]
    assert np.all(np.diff(distances) > 0)


@pytest.mark.parametrize("backend", ["hnsw", "ivf"])
@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_faiss_backends_find_what_exact_search_finds(backend, distance):
    pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    gallery = rng.normal(size=(4000, 16)).astype(np.float32)
    queries = rng.normal(size=(100, 16)).astype(np.float32)
    exact = VectorSearch(16, distance)
    exact.add(gallery)
    approx = VectorSearch(16, distance, backend)
    approx.add(gallery[:3000])
    approx.add(gallery[3000:])
    want, want_distances = exact.search(queries, 10)
    got, got_distances = approx.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(want, got, strict=True)])
    assert recall >= 0.9, recall
    # Where both found the same neighbour, they agree on its distance.
    same = want[:, 0] == got[:, 0]
    assert same.mean() > 0.9
    np.testing.assert_allclose(got_distances[same, 0], want_distances[same, 0], atol=1e-4)


def test_default_ivf_cells_keep_39_vectors_per_cell():
    assert vector_search.ivf_cells(10) == 1
    assert vector_search.ivf_cells(3900) == 100
    assert vector_search.ivf_cells(1_000_000) == 4000


@pytest.mark.parametrize(
    "act, message",
    [
        (lambda s: s.add(np.zeros((3, 5), np.float32)), r"shape \[3, 5\].*\[N, 4\]"),
        (lambda s: s.add(np.zeros((0, 4), np.float32)), "N at least 1"),
        (lambda s: s.add(np.full((1, 4), np.nan, np.float32)), "NaN"),
        (lambda s: s.search(np.ones((1, 4), np.float32), 0), "k=0 must be 1 to the 2"),
        (lambda s: s.search(np.ones((1, 4), np.float32), 3), "k=3 must be 1 to the 2"),
    ],
)
def test_bad_vectors_and_k_are_one_sentence(act, message):
    search = VectorSearch(4, "cosine")
    search.add(np.ones((2, 4), np.float32))
    with pytest.raises(UserError, match=message):
        act(search)


def test_bad_settings_are_one_sentence():
    with pytest.raises(UserError, match="backend='annoy' must be one of exact, hnsw, ivf"):
        VectorSearch(4, "cosine", "annoy")
    with pytest.raises(UserError, match="distance='manhattan'"):
        VectorSearch(4, "manhattan")
    with pytest.raises(UserError, match="hnsw_neighbors=0 must be at least 1"):
        VectorSearch(4, "cosine", "hnsw", SearchOptions(hnsw_neighbors=0))
    pytest.importorskip("faiss")
    with pytest.raises(UserError, match="IVF index of 50 cells needs at least 50 vectors"):
        VectorSearch(4, "cosine", "ivf", SearchOptions(ivf_cells=50)).add(np.ones((10, 4)))


def test_ties_at_the_kth_distance_across_column_groups_keep_the_lowest_positions():
    # 20,000 copies of one vector and a nearer one: every copy ties for second place,
    # spread over every column group; the lowest positions must win.
    gallery = np.tile(np.array([[1.0, 0.0]], np.float32), (20_000, 1))
    gallery[7] = [1.0, 0.2]
    search = VectorSearch(2, "euclidean")
    search.add(gallery)
    positions, _ = search.search(np.array([[1.0, 0.3]], np.float32), 4)
    assert positions.tolist() == [[7, 0, 1, 2]]
