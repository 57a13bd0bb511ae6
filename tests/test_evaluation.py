import numpy as np
import pytest

from keras_siamese import evaluation


def _clusters(num_classes=4, per_class=6, dim=8, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[:num_classes] * 10
    labels = np.repeat(np.arange(num_classes), per_class)
    return centres[labels] + rng.normal(scale=noise, size=(len(labels), dim)), labels


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_separated_clusters_score_one(distance):
    emb, labels = _clusters()
    assert evaluation.triplet_accuracy(emb, labels, distance, num_triplets=500).value == 1.0
    oneshot = evaluation.oneshot_accuracy(emb, labels, distance)
    assert oneshot.value == 1.0 and oneshot.count == 4 * 5


def test_identical_embeddings_score_no_better_than_chance():
    labels = np.repeat(np.arange(5), 4)
    emb = np.ones((20, 3), np.float32)
    # All distances tie: no triplet is strictly right; nearest support is the first one.
    assert evaluation.triplet_accuracy(emb, labels, "euclidean", num_triplets=200).value == 0.0
    assert evaluation.oneshot_accuracy(emb, labels, "euclidean").value == pytest.approx(1 / 5)


def test_oneshot_uses_the_first_image_of_each_class_as_support():
    # 1-D embeddings. Supports: class 0 at 0.0, class 1 at 10.0 (first images).
    emb = np.array([[0.0], [10.0], [6.0], [4.0], [9.0]], np.float32)
    labels = np.array([0, 1, 0, 0, 1])
    # Queries: 6.0 (class 0 -> nearest 10 -> wrong), 4.0 (right), 9.0 (right).
    result = evaluation.oneshot_accuracy(emb, labels, "euclidean")
    assert result.count == 3
    assert result.value == pytest.approx(2 / 3)


def test_sampled_triplets_are_valid_and_seeded():
    labels = np.array([0, 0, 1, 2, 2, 2, 1, 3])
    t = evaluation.sample_triplets(labels, 1000, seed=5)
    assert np.all(labels[t[:, 0]] == labels[t[:, 1]]) and np.all(t[:, 0] != t[:, 1])
    assert np.all(labels[t[:, 0]] != labels[t[:, 2]])
    assert 3 not in labels[t[:, 0]]  # a single-image class is never an anchor
    assert 3 in labels[t[:, 2]]
    np.testing.assert_array_equal(t, evaluation.sample_triplets(labels, 1000, seed=5))


def test_confidence_interval_is_the_normal_approximation():
    acc = evaluation.Accuracy.from_hits(np.array([1] * 80 + [0] * 20))
    assert acc.value == 0.8 and acc.count == 100
    assert acc.ci95 == pytest.approx(1.96 * np.sqrt(0.8 * 0.2 / 100))
