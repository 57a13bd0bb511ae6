import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_siamese import choices
from keras_siamese.errors import ConfigError
from keras_siamese.model import distances, losses


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
    matrix = _np(distances.pairwise_distance(x, y, distance))
    for i in range(5):
        for j in range(3):
            expected = _np(distances.paired_distance(x[i : i + 1], y[j : j + 1], distance))[0]
            assert matrix[i, j] == pytest.approx(expected, abs=1e-5)


def test_bad_distance_and_margin_are_config_errors():
    with pytest.raises(ConfigError, match="manhattan"):
        distances.distance_of("manhattan")
    with pytest.raises(ConfigError, match="greater than 0"):
        choices.check_margin(-1.0)


def _np_distances(e, distance):
    if distance == "cosine":
        u = e / np.linalg.norm(e, axis=1, keepdims=True)
        return 1.0 - u @ u.T
    return ((e[:, None, :] - e[None, :, :]) ** 2).sum(-1)


def _brute_force(labels, e, distance, margin, root=False):
    """Every (a, p, n) triplet of the batch, one at a time."""
    d = _np_distances(e.astype(np.float64), distance)
    if root:
        d = np.sqrt(np.maximum(d, 0.0))
    n = len(labels)
    all_losses, hard, semihard = [], [], []
    for a in range(n):
        positives = [p for p in range(n) if p != a and labels[p] == labels[a]]
        negatives = [q for q in range(n) if labels[q] != labels[a]]
        if not negatives:
            continue
        for p in positives:
            all_losses += [max(d[a, p] - d[a, q] + margin, 0.0) for q in negatives]
            inside = [d[a, q] for q in negatives if d[a, p] < d[a, q] < d[a, p] + margin]
            chosen = min(inside) if inside else min(d[a, q] for q in negatives)
            semihard.append(max(d[a, p] - chosen + margin, 0.0))
        if positives:
            worst_p = max(d[a, p] for p in positives)
            best_n = min(d[a, q] for q in negatives)
            hard.append(max(worst_p - best_n + margin, 0.0))
    all_losses = np.array(all_losses)
    violating = all_losses > 1e-16
    return {
        "batch_all": all_losses.sum() / max(violating.sum(), 1),
        "fraction": violating.mean(),
        "batch_hard": np.mean(hard),
        "batch_semihard": np.mean(semihard),
    }


@pytest.mark.parametrize("root", [False, True])
@pytest.mark.parametrize("distance,margin", [("cosine", 0.3), ("euclidean", 1.0)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_losses_match_a_brute_force_count(distance, margin, seed, root):
    rng = np.random.default_rng(seed)
    # Class 3 has a single image in the batch: an anchor without positives, still a negative.
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 1, 0])
    scale = 0.6 if distance == "euclidean" else 1.0
    e = (rng.normal(size=(len(labels), 5)) * scale).astype(np.float32)
    expected = _brute_force(labels, e, distance, margin, root)
    loss, fraction = losses.batch_all_triplet_loss(labels, e, distance, margin, root=root)
    np.testing.assert_allclose(_np(loss), expected["batch_all"], rtol=1e-4)
    np.testing.assert_allclose(_np(fraction), expected["fraction"], rtol=1e-4)
    metric = losses.violating_fraction(labels, e, distance, margin, root=root)
    np.testing.assert_allclose(_np(metric), expected["fraction"], rtol=1e-4)
    for kind in ("batch_hard", "batch_semihard"):
        fn = losses.BatchTripletLoss(kind, distance, margin, root=root)
        np.testing.assert_allclose(_np(fn(labels, e)), expected[kind], rtol=1e-4, err_msg=kind)


def test_semihard_falls_back_to_the_hardest_negative():
    # 1-D, squared distances from anchor 0: positive at 1 (d=1), negatives at 0.5 (d=0.25)
    # and 3 (d=9). Nothing lies in (1, 1 + 0.5): the hardest negative (0.25) is used.
    labels = np.array([0, 0, 1, 1])
    e = np.array([[0.0], [1.0], [0.5], [3.0]], np.float32)
    expected = _brute_force(labels, e, "euclidean", 0.5)["batch_semihard"]
    got = _np(losses.batch_semihard_triplet_loss(labels, e, "euclidean", 0.5))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Anchor 0, positive 1: relu(1 - 0.25 + 0.5) = 1.25 is one of the four terms.
    assert got >= 1.25 / 4


@pytest.mark.parametrize("root", [False, True])
@pytest.mark.parametrize("kind", ["batch_all", "batch_hard", "batch_semihard"])
@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_batch_loss_gradients_are_finite_for_identical_embeddings(kind, distance, root):
    import tensorflow as tf

    labels = tf.constant([0, 0, 1, 1])
    e = tf.Variable(np.ones((4, 3), np.float32))
    fn = losses.BatchTripletLoss(kind, distance, 0.3, root=root)
    with tf.GradientTape() as tape:
        loss = fn(labels, tf.identity(e))  # a model's output is a tensor, not a variable
    grad = tape.gradient(loss, e)
    assert np.isfinite(loss.numpy()) and loss.numpy() > 0
    assert np.all(np.isfinite(grad.numpy()))


def test_soft_margin_batch_hard_by_hand():
    # 1-D, squared distances. Anchor 0 (at 0): hardest positive 1 (d=1), hardest
    # negative 0.5 (d=0.25). Anchor 1 (at 1): positive 0 (d=1), negative 0.5 (d=0.25).
    # Anchor 2 (at 0.5): positive 3 (d=6.25), negative 0 or 1 (d=0.25). Anchor 3 (at 3):
    # positive 2 (d=6.25), negative 1 (d=4).
    labels = np.array([0, 0, 1, 1])
    e = np.array([[0.0], [1.0], [0.5], [3.0]], np.float32)
    gaps = np.array([1 - 0.25, 1 - 0.25, 6.25 - 0.25, 6.25 - 4.0])
    fn = losses.BatchTripletLoss("batch_hard", "euclidean", 1.0, soft_margin=True)
    np.testing.assert_allclose(_np(fn(labels, e)), np.mean(np.log1p(np.exp(gaps))), rtol=1e-5)
    # The hinge at margin 1 on the same gaps, for contrast: the margin no longer counts.
    hinge = losses.BatchTripletLoss("batch_hard", "euclidean", 1.0)
    np.testing.assert_allclose(_np(hinge(labels, e)), np.mean(gaps + 1.0), rtol=1e-5)
    assert losses.BatchTripletLoss.from_config(fn.get_config()).soft_margin
    with pytest.raises(ValueError, match="soft margin is for batch_hard"):
        losses.BatchTripletLoss("batch_all", "cosine", 0.3, soft_margin=True)


def test_root_distance_batch_hard_by_hand():
    # The soft-margin example's batch under plain distances: anchor 0 (at 0): hardest
    # positive 1, hardest negative 0.5; anchor 1 (at 1): 1 and 0.5; anchor 2 (at 0.5):
    # 2.5 and 0.5; anchor 3 (at 3): 2.5 and 2.
    labels = np.array([0, 0, 1, 1])
    e = np.array([[0.0], [1.0], [0.5], [3.0]], np.float32)
    gaps = np.array([1 - 0.5, 1 - 0.5, 2.5 - 0.5, 2.5 - 2.0])
    fn = losses.BatchTripletLoss("batch_hard", "euclidean", 1.0, root=True)
    np.testing.assert_allclose(_np(fn(labels, e)), np.mean(gaps + 1.0), rtol=1e-4)
    assert losses.BatchTripletLoss.from_config(fn.get_config()).root
    # Under cosine distance the root of 1 - cos: orthogonal unit vectors are 1 apart.
    d = _np(losses.mining_distance(np.eye(2, dtype=np.float32), "cosine", root=True))
    np.testing.assert_allclose(d, [[0.0, 1.0], [1.0, 0.0]], atol=1e-4)
    with pytest.raises(ValueError, match="selective"):
        losses.BatchTripletLoss("batch_hard", "cosine", 0.3, selective=True, root=True)


def test_contrastive_loss_by_hand():
    same = np.array([1.0, 0.0, 0.0])
    d = np.array([0.4, 0.1, 0.9], np.float32)
    # Same pair: its distance. Different pairs: relu(0.5 - d).
    np.testing.assert_allclose(_np(losses.contrastive_loss(same, d, 0.5)), [0.4, 0.4, 0.0])


def test_batch_and_pair_losses_refuse_bad_settings():
    with pytest.raises(ValueError, match="mining"):
        losses.BatchTripletLoss("batch_most", "cosine", 0.3)
    with pytest.raises(ConfigError, match="margin"):
        losses.BatchTripletLoss("batch_hard", "cosine", 0.0)
    with pytest.raises(ConfigError, match="margin"):
        losses.ContrastiveLoss(-1.0)


def test_classification_loss_by_hand():
    scores = np.array([[2.0, 0.0]], np.float32)
    label = np.array([0])
    # Softmax: -log(e^2 / (e^2 + 1)) = log(1 + e^-2).
    plain = losses.classification_loss(label, scores)
    assert float(ops.convert_to_numpy(plain)[0]) == pytest.approx(math.log1p(math.exp(-2)))
    # Scale 2 and margin 0.5 on the true class: logits 2 * (2 - 0.5) = 3 and 0.
    cosface = losses.classification_loss(label, scores, scale=2.0, margin=0.5)
    assert float(ops.convert_to_numpy(cosface)[0]) == pytest.approx(math.log1p(math.exp(-3)))
    # Smoothing 0.2 over 2 classes: targets 0.9 and 0.1.
    smooth = losses.classification_loss(label, scores, label_smoothing=0.2)
    expected = 0.9 * math.log1p(math.exp(-2)) + 0.1 * (2 + math.log1p(math.exp(-2)))
    assert float(ops.convert_to_numpy(smooth)[0]) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="scale"):
        losses.ClassificationLoss(scale=0.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.ClassificationLoss(label_smoothing=1.0)


def test_the_cosine_classifier_outputs_cosines():
    from keras_siamese.model.classifier import CosineClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 8)).astype(np.float32)
    layer = CosineClassifier(3)
    out = ops.convert_to_numpy(layer(x))
    w = ops.convert_to_numpy(layer.kernel)
    expected = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=0))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert np.all(np.abs(out) <= 1 + 1e-6)


def test_class_means_average_directions_for_cosine_and_points_for_euclidean():
    x = np.array([[3.0, 4.0], [0.0, 2.0]], np.float32)
    np.testing.assert_allclose(
        np.asarray(distances.class_mean_space(x, "cosine")), [[0.6, 0.8], [0.0, 1.0]], atol=1e-6
    )
    np.testing.assert_array_equal(np.asarray(distances.class_mean_space(x, "euclidean")), x)


def test_batch_hard_after_a_batch_all_warm_up_by_hand():
    # The example above under the batch-all loss: of its 8 triplets, 5 violate margin 1,
    # by 1.75 (0,1,2), 1.75 (1,0,2), 7 (2,3,0), 7 (2,3,1) and 3.25 (3,2,1): mean 4.15.
    labels = np.array([0, 0, 1, 1])
    e = np.array([[0.0], [1.0], [0.5], [3.0]], np.float32)
    steps = keras.Variable(0, dtype="int64", trainable=False)
    fn = losses.BatchTripletLoss("batch_hard", "euclidean", 1.0, warmup_steps=2)
    fn.count_steps_with(steps)
    np.testing.assert_allclose(_np(fn(labels, e)), 20.75 / 5, rtol=1e-5)
    steps.assign(1)
    np.testing.assert_allclose(_np(fn(labels, e)), 20.75 / 5, rtol=1e-5)
    steps.assign(2)  # the warm-up is over: the hardest triplets, gaps + 1 as above
    np.testing.assert_allclose(_np(fn(labels, e)), 13.75 / 4, rtol=1e-5)
    assert losses.BatchTripletLoss.from_config(fn.get_config()).warmup_steps == 2
    with pytest.raises(ValueError, match="step counter"):
        losses.BatchTripletLoss("batch_hard", "euclidean", 1.0, warmup_steps=2)(labels, e)
    with pytest.raises(ValueError, match="positive for batch_hard"):
        losses.BatchTripletLoss("batch_semihard", "cosine", 0.3, warmup_steps=2)


def test_selectively_contrastive_batch_hard_by_hand():
    # Unit vectors at 0 and 90 degrees (class 0), 30 and 45 degrees (class 1).
    c15, c30, c45 = (math.cos(math.radians(a)) for a in (15, 30, 45))
    e = np.array([[1, 0], [0, 1], [c30, 0.5], [c45, c45]], np.float32)
    labels = np.array([0, 0, 1, 1])
    # Anchors 0 and 1: the hardest positive (90 degrees away) is farther than the hardest
    # negative (at 30 and 45 degrees): the loss is that negative's cosine alone.
    # Anchors 2 and 3: their positive (15 degrees) is nearer, so the hinge at 0.3 applies
    # to cos(negative) - cos(positive): 30 vs 15 degrees for 2, 45 vs 15 for 3.
    easy = (c30 - c15 + 0.3) + (c45 - c15 + 0.3)
    fn = losses.BatchTripletLoss("batch_hard", "cosine", 0.3, selective=True)
    np.testing.assert_allclose(_np(fn(labels, e)), (c30 + c45 + easy) / 4, rtol=1e-5)
    plain = losses.BatchTripletLoss("batch_hard", "cosine", 0.3)
    np.testing.assert_allclose(_np(plain(labels, e)), (c30 + c45 + 0.6 + easy) / 4, rtol=1e-5)
    assert losses.BatchTripletLoss.from_config(fn.get_config()).selective
    with pytest.raises(ValueError, match="cosine distance"):
        losses.BatchTripletLoss("batch_hard", "euclidean", 1.0, selective=True)
