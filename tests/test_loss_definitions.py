"""Every loss against its definition (tests/loss_definitions.py) on ordinary and degenerate batches.

Each case checks the value within float32 tolerance of the float64 definition, and
that the loss and its gradient are finite.
"""

import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.choices import BATCH_MINING
from keras_siamese.model import distances, losses
from tests import loss_definitions as defn

# Square roots near zero distance amplify float32 rounding: sqrt(1e-7) is 3e-4.
ROOT_ATOL = 1e-3


def _pk(rng):
    return np.repeat(np.arange(4), 3), rng.normal(size=(12, 6)) * 0.4


def _some_without_positive(rng):
    return np.array([0, 0, 1, 2, 3, 3, 4]), rng.normal(size=(7, 6)) * 0.4


def _one_class(rng):
    return np.zeros(5, int), rng.normal(size=(5, 6)) * 0.4


def _singletons(rng):
    return np.arange(5), rng.normal(size=(5, 6)) * 0.4


def _duplicates_within_a_class(rng):
    labels, embeddings = _pk(rng)
    embeddings[1] = embeddings[0]
    embeddings[5] = embeddings[4] * 3.0  # the same direction: cosine distance 0
    return labels, embeddings


def _duplicates_across_classes(rng):
    labels, embeddings = _pk(rng)
    embeddings[3] = embeddings[0]  # classes 0 and 1
    embeddings[11] = embeddings[7]
    return labels, embeddings


BATCHES = {
    "pk": _pk,
    "some_without_positive": _some_without_positive,
    "one_class": _one_class,
    "singletons": _singletons,
    "duplicates_within_a_class": _duplicates_within_a_class,
    "duplicates_across_classes": _duplicates_across_classes,
}
NO_TRIPLET = ("one_class", "singletons")

# (mining, options of the library's loss, options of the definition); selective is cosine only.
MININGS = [
    ("batch_all", {}, {}),
    ("batch_hard", {}, {}),
    ("batch_hard", {"soft_margin": True}, {"soft": True}),
    ("batch_hard", {"selective": True}, {"selective": True}),
    ("batch_semihard", {}, {"rule": "window"}),
    ("batch_semihard", {"semihard_rule": "tensorflow"}, {"rule": "tensorflow"}),
]
MARGINS = {"cosine": 0.3, "euclidean": 1.0}


def _definition(mining, labels, embeddings, distance, margin, root, options):
    if mining == "batch_all":
        return defn.batch_all(labels, embeddings, distance, margin, root)[0]
    if mining == "batch_hard":
        return defn.batch_hard(labels, embeddings, distance, margin, root=root, **options)
    return defn.batch_semihard(labels, embeddings, distance, margin, root=root, **options)


def _value_and_gradient(loss, labels, embeddings, dtype):
    x = tf.cast(tf.constant(embeddings), dtype)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = loss(tf.constant(labels), x)
    return float(value), tape.gradient(value, x).numpy().astype(np.float64)


def _cases():
    for batch in BATCHES:
        for distance in ("cosine", "euclidean"):
            for root in (False, True):
                for mining, options, definition_options in MININGS:
                    if options.get("selective") and (distance != "cosine" or root):
                        continue
                    yield batch, distance, root, mining, options, definition_options


@pytest.mark.parametrize(
    "batch,distance,root,mining,options,definition_options",
    list(_cases()),
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_each_mining_loss_equals_its_definition(
    batch, distance, root, mining, options, definition_options
):
    labels, embeddings = BATCHES[batch](np.random.default_rng(7))
    margin = MARGINS[distance]
    loss = losses.BatchTripletLoss(mining, distance, margin, root=root, **options)
    expected = _definition(mining, labels, embeddings, distance, margin, root, definition_options)
    value, gradient = _value_and_gradient(loss, labels, embeddings, tf.float32)
    assert np.isfinite(value) and np.all(np.isfinite(gradient))
    if mining == "batch_semihard" and batch == "duplicates_across_classes":
        # A positive and its duplicate in another class are exactly as far from the
        # anchor: whether that negative is "farther" is decided by float32 rounding.
        return
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=ROOT_ATOL if root else 1e-5)
    if batch in NO_TRIPLET:
        assert value == 0.0 and not np.any(gradient)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16, tf.float64])
@pytest.mark.parametrize("mining,options,definition_options", MININGS[:2] + MININGS[4:])
def test_mining_losses_take_16_and_64_bit_embeddings(dtype, mining, options, definition_options):
    labels, embeddings = _duplicates_within_a_class(np.random.default_rng(3))
    # The definition sees the values the loss sees: the embeddings rounded to `dtype`.
    rounded = tf.cast(tf.constant(embeddings), dtype).numpy().astype(np.float64)
    for distance in ("cosine", "euclidean"):
        margin = MARGINS[distance]
        loss = losses.BatchTripletLoss(mining, distance, margin, **options)
        expected = _definition(mining, labels, rounded, distance, margin, False, definition_options)
        value, gradient = _value_and_gradient(loss, labels, embeddings, dtype)
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-5)
        assert np.all(np.isfinite(gradient))


def test_the_violating_fraction_equals_its_definition():
    for batch in ("pk", "some_without_positive", "duplicates_across_classes", "one_class"):
        labels, embeddings = BATCHES[batch](np.random.default_rng(11))
        for distance, root in (("cosine", False), ("euclidean", True)):
            margin = MARGINS[distance]
            fraction = losses.violating_fraction(labels, embeddings, distance, margin, root=root)
            expected = defn.batch_all(labels, embeddings, distance, margin, root)[1]
            np.testing.assert_allclose(float(fraction), expected, atol=1e-6)


def test_coinciding_cosine_embeddings_under_root_distance_are_not_nan():
    # 1 - cos of two equal float32 vectors rounds to -1.19e-7 without the clamp.
    labels = np.array([0, 0, 1])
    embeddings = np.array([[3, 3], [3, 3], [1, 0]], np.float32)
    for mining in BATCH_MINING:
        for root in (True, False):
            loss = losses.BatchTripletLoss(mining, "cosine", 0.3, root=root)
            value, gradient = _value_and_gradient(loss, labels, embeddings, tf.float32)
            expected = _definition(mining, labels, embeddings, "cosine", 0.3, root, {})
            np.testing.assert_allclose(value, expected, atol=ROOT_ATOL if root else 1e-6)
            assert np.all(np.isfinite(gradient)), (mining, root)
    assert float(distances.pairwise_distance(embeddings, embeddings, "cosine")[0, 0]) >= 0.0


def test_the_two_semihard_rules_differ_as_defined_when_the_window_is_empty():
    # Anchor 0: positive at squared distance 1.0, negatives at 0.25 (nearer) and 4.0
    # (beyond the window of margin 1): FaceNet's rule takes 0.25 (loss 1.75),
    # TensorFlow's takes 4.0 (loss 0).
    embeddings = np.array([[0.0], [1.0], [0.5], [-2.0]], np.float32)
    labels = np.array([0, 0, 1, 2])
    for rule in ("window", "tensorflow"):
        options = {} if rule == "window" else {"semihard_rule": rule}
        value = float(
            losses.BatchTripletLoss("batch_semihard", "euclidean", 1.0, **options)(
                labels, embeddings
            )
        )
        expected = defn.batch_semihard(labels, embeddings, "euclidean", 1.0, rule=rule)
        np.testing.assert_allclose(value, expected, atol=1e-6)
    window = defn.batch_semihard(labels, embeddings, "euclidean", 1.0, rule="window")
    tensorflow = defn.batch_semihard(labels, embeddings, "euclidean", 1.0, rule="tensorflow")
    assert window > tensorflow


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_the_per_sample_triplet_loss_equals_its_definition(distance):
    rng = np.random.default_rng(5)
    a, p, n = (rng.normal(size=(9, 5)).astype(np.float32) * 0.4 for _ in range(3))
    p[0] = a[0]  # a zero distance
    margin = MARGINS[distance]
    got = losses.triplet_loss(a, p, n, distance, margin)
    np.testing.assert_allclose(got, defn.triplet(a, p, n, distance, margin), atol=1e-5)


def test_the_contrastive_loss_equals_its_definition():
    rng = np.random.default_rng(6)
    same = rng.integers(0, 2, 20)
    distances = rng.uniform(0, 2, 20).astype(np.float32)
    distances[:3] = 0.0
    loss = losses.ContrastiveLoss(1.0)
    variable = tf.constant(distances)
    with tf.GradientTape() as tape:
        tape.watch(variable)
        value = loss(tf.constant(same), variable)
    np.testing.assert_allclose(
        float(value), np.mean(defn.contrastive(same, distances, 1.0)), rtol=1e-6
    )
    assert np.all(np.isfinite(tape.gradient(value, variable).numpy()))


@pytest.mark.parametrize(
    "scale,margin,label_smoothing", [(1.0, 0.0, 0.0), (16.0, 0.0, 0.0), (30.0, 0.2, 0.1)]
)
@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16, tf.float64])
def test_the_classification_losses_equal_their_definition(scale, margin, label_smoothing, dtype):
    rng = np.random.default_rng(8)
    scores = tf.cast(tf.constant(rng.uniform(-1, 1, (10, 7))), dtype)
    labels = rng.integers(0, 7, 10)
    loss = losses.ClassificationLoss(scale, margin, label_smoothing)
    variable = scores
    with tf.GradientTape() as tape:
        tape.watch(variable)
        value = loss(tf.constant(labels), variable)
    rounded = scores.numpy().astype(np.float64)
    expected = np.mean(defn.classification(labels, rounded, scale, margin, label_smoothing))
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)
    assert np.all(np.isfinite(tape.gradient(value, variable).numpy().astype(np.float64)))
