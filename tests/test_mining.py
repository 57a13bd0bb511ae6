"""Distances as objects, and the miners, per-triplet losses and reductions of mining,
against values worked out by hand."""

import numpy as np
import pytest
from keras import ops

from keras_siamese.errors import ConfigError
from keras_siamese.model import distances, mining


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def test_a_distance_object_measures_as_its_name_says():
    x = np.array([[3.0, 4.0], [1.0, 0.0]], np.float32)
    y = np.array([[0.0, 0.0], [0.0, 2.0]], np.float32)
    euclidean = distances.distance_of("euclidean")
    np.testing.assert_allclose(_np(euclidean.paired(x, y)), [25.0, 5.0])
    # Its root: the plain euclidean distance, offset by 1e-8 under the root.
    np.testing.assert_allclose(
        _np(distances.distance_of("euclidean", root=True).paired(x, y)),
        np.sqrt([25.0 + 1e-8, 5.0 + 1e-8]),
        rtol=1e-6,
    )
    cosine = distances.distance_of("cosine")
    # cos((1, 0), (0, 2)) = 0 -> 1; the zero row's cosine is 0 too.
    np.testing.assert_allclose(_np(cosine.paired(x, y)), [1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(
        _np(cosine.pairwise(x, x)), [[0.0, 0.4], [0.4, 0.0]], atol=1e-6
    )  # cos((3, 4), (1, 0)) = 0.6
    np.testing.assert_allclose(_np(cosine.mean_space(x)), [[0.6, 0.8], [1.0, 0.0]], atol=1e-6)
    np.testing.assert_array_equal(_np(euclidean.mean_space(x)), x)
    assert cosine.fixed_threshold == 0.8 and euclidean.fixed_threshold == 1.0


def test_distances_are_named_once_and_refuse_unknown_names():
    assert distances.distance_of("cosine") == distances.CosineDistance()
    assert distances.distance_of("cosine", root=True) != distances.CosineDistance()
    assert distances.distance_of(distances.CosineDistance(), root=True).power == 0.5
    with pytest.raises(ConfigError, match="--distance=manhattan is unknown"):
        distances.distance_of("manhattan")
    with pytest.raises(ValueError, match="power is 1 or 0.5"):
        distances.CosineDistance(power=2.0)


# Three images: two of class 0, one of class 1, and their distances by hand.
LABELS = np.array([0, 0, 1], np.int32)
D = np.array([[0.0, 0.5, 0.6], [0.5, 0.0, 0.2], [0.6, 0.2, 0.0]], np.float32)


def test_every_triplet_of_the_batch_is_mined_once():
    mined = mining.all_triplets(D, LABELS)
    valid = np.argwhere(_np(mined.valid))
    # (anchor 0, positive 1, negative 2) and (anchor 1, positive 0, negative 2).
    np.testing.assert_array_equal(valid, [[0, 1, 2], [1, 0, 2]])
    values = _np(mining.hinge(mined, 0.3))
    # 0.5 - 0.6 + 0.3 = 0.2; 0.5 - 0.2 + 0.3 = 0.6; every other slot 0.
    assert values[0, 1, 2] == pytest.approx(0.2) and values[1, 0, 2] == pytest.approx(0.6)
    assert values.sum() == pytest.approx(0.8)
    mean, share = mining.mean_over_violating(values, mined.valid)
    assert float(mean) == pytest.approx(0.4) and float(share) == pytest.approx(1.0)
    # With a margin of 0.05 only the second violates: its loss, and half the triplets.
    mean, share = mining.mean_over_violating(mining.hinge(mined, 0.05), mined.valid)
    assert float(mean) == pytest.approx(0.35) and float(share) == pytest.approx(0.5)


def test_the_hardest_triplet_of_each_anchor():
    mined = mining.hardest_triplets(D, LABELS)
    np.testing.assert_allclose(_np(mined.positive)[:2], [0.5, 0.5])
    np.testing.assert_allclose(_np(mined.negative)[:2], [0.6, 0.2])
    # Anchor 2 has no positive: it is not a triplet.
    np.testing.assert_array_equal(_np(mined.valid), [True, True, False])
    values = _np(mining.hinge(mined, 0.3))
    np.testing.assert_allclose(values, [0.2, 0.6, 0.0], atol=1e-6)
    assert float(mining.mean_over_valid(values, mined.valid)) == pytest.approx(0.4)
    # softplus(-0.1) and softplus(0.3).
    np.testing.assert_allclose(
        _np(mining.soft_hinge(mined))[:2], np.log1p(np.exp([-0.1, 0.3])), rtol=1e-5
    )
    # Anchor 1's negative is nearer than its positive: 1 - 0.2 alone.
    np.testing.assert_allclose(_np(mining.selective_hinge(mined, 0.3))[:2], [0.2, 0.8], atol=1e-6)


def test_semihard_negatives_inside_the_window_or_the_fallback():
    labels = np.array([0, 0, 1, 1], np.int32)
    d = np.array(
        [
            [0.0, 0.4, 0.5, 0.9],
            [0.4, 0.0, 0.3, 0.2],
            [0.5, 0.3, 0.0, 0.1],
            [0.9, 0.2, 0.1, 0.0],
        ],
        np.float32,
    )
    window = mining.semihard_triplets(d, labels, margin=0.3, rule="window")
    tensorflow = mining.semihard_triplets(d, labels, margin=0.3, rule="tensorflow")
    # (0, 1): d(a, p) = 0.4; negatives 0.5 (in the window 0.4 to 0.7) and 0.9: both rules 0.5.
    assert _np(window.negative)[0, 1] == pytest.approx(0.5)
    assert _np(tensorflow.negative)[0, 1] == pytest.approx(0.5)
    # (1, 0): d(a, p) = 0.4; negatives 0.3 and 0.2, none farther: the window falls back to
    # the hardest (0.2), TensorFlow's rule to the farthest (0.3).
    assert _np(window.negative)[1, 0] == pytest.approx(0.2)
    assert _np(tensorflow.negative)[1, 0] == pytest.approx(0.3)
    # A pair is an anchor and another image of its class.
    expected = [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]
    np.testing.assert_array_equal(_np(window.valid), np.array(expected, bool))
    with pytest.raises(ValueError, match="rule must be one of"):
        mining.semihard_triplets(d, labels, 0.3, rule="nearest")
