import math

import numpy as np
import pytest
from keras import ops

from keras_siamese import losses
from keras_siamese.errors import ConfigError


def _np(x):
    return ops.convert_to_numpy(x)


def test_cosine_triplet_loss_matches_hand_computed_values():
    anchor = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    positive = np.array([[1.0, 1.0], [1.0, 0.0]], np.float32)
    negative = np.array([[0.0, 1.0], [-1.0, 0.0]], np.float32)
    # Row 0: cos(a,p) = 1/sqrt(2), cos(a,n) = 0 -> relu(0 - 0.7071 + 0.3) = 0.
    # Row 1: cos(a,p) = 1, cos(a,n) = -1 -> relu(-1 - 1 + 0.3) = 0.
    loss = _np(losses.triplet_loss(anchor, positive, negative, "cosine", 0.3))
    np.testing.assert_allclose(loss, [0.0, 0.0], atol=1e-6)
    # With margin 0.9, row 0: relu(0 - 0.7071 + 0.9) = 0.19289.
    loss = _np(losses.triplet_loss(anchor, positive, negative, "cosine", 0.9))
    np.testing.assert_allclose(loss, [0.9 - 1 / math.sqrt(2), 0.0], atol=1e-6)


def test_cosine_loss_equals_reference_formula():
    rng = np.random.default_rng(0)
    a, p, n = (rng.normal(size=(16, 8)).astype(np.float32) for _ in range(3))

    def cos(x, y):
        return np.sum(x * y, 1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)

    expected = np.maximum(cos(a, n) - cos(a, p) + 0.3, 0.0)
    np.testing.assert_allclose(
        _np(losses.triplet_loss(a, p, n, "cosine", 0.3)), expected, atol=1e-5
    )


def test_euclidean_triplet_loss_uses_squared_distances():
    anchor = np.array([[0.0, 0.0], [0.0, 0.0]], np.float32)
    positive = np.array([[1.0, 0.0], [0.5, 0.0]], np.float32)
    negative = np.array([[0.0, 1.5], [3.0, 0.0]], np.float32)
    # Row 0: d_ap = 1, d_an = 2.25 -> relu(1 - 2.25 + 1) = 0.
    # Row 1: d_ap = 0.25, d_an = 9 -> 0. With margin 10: 8.75 and 1.25.
    np.testing.assert_allclose(
        _np(losses.triplet_loss(anchor, positive, negative, "euclidean", 1.0)), [0.0, 0.0]
    )
    np.testing.assert_allclose(
        _np(losses.triplet_loss(anchor, positive, negative, "euclidean", 10.0)), [8.75, 1.25]
    )


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_loss_is_zero_when_margin_is_met_and_positive_otherwise(distance):
    anchor = np.array([[1.0, 0.0]], np.float32)
    close = np.array([[1.0, 0.01]], np.float32)
    far = np.array([[-1.0, 0.0]], np.float32)
    assert _np(losses.triplet_loss(anchor, close, far, distance, 0.3))[0] == 0.0
    assert _np(losses.triplet_loss(anchor, far, close, distance, 0.3))[0] > 0.3


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_pairwise_distance_agrees_with_paired_distance(distance):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 4)).astype(np.float32)
    y = rng.normal(size=(3, 4)).astype(np.float32)
    matrix = _np(losses.pairwise_distance(x, y, distance))
    for i in range(5):
        for j in range(3):
            expected = _np(losses.paired_distance(x[i : i + 1], y[j : j + 1], distance))[0]
            assert matrix[i, j] == pytest.approx(expected, abs=1e-5)


def test_bad_distance_and_margin_are_config_errors():
    with pytest.raises(ConfigError, match="manhattan"):
        losses.check_distance("manhattan")
    with pytest.raises(ConfigError, match="greater than 0"):
        losses.check_margin(-1.0)
