"""The pair-based and proxy-based losses against their definitions (tests/loss_definitions.py),
on ordinary and degenerate batches, as Keras objects, and in a model a user writes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese import losses
from tests import loss_definitions as defn
from tests.test_loss_definitions import BATCHES

# float32 against the float64 definitions.
RTOL, ATOL = 1e-5, 1e-5

PAIR_LOSSES = {
    "multi_similarity": (
        losses.multi_similarity_loss,
        losses.MultiSimilarityLoss,
        defn.multi_similarity,
        dict(alpha=2.0, beta=50.0, base=0.5),
    ),
    "circle": (losses.circle_loss, losses.CircleLoss, defn.circle, dict(m=0.4, gamma=80.0)),
    "ntxent": (losses.ntxent_loss, losses.NTXentLoss, defn.ntxent, dict(temperature=0.07)),
    "supcon": (losses.supcon_loss, losses.SupConLoss, defn.supcon, dict(temperature=0.1)),
    "lifted_structure": (
        losses.lifted_structure_loss,
        losses.LiftedStructureLoss,
        defn.lifted_structure,
        dict(neg_margin=1.0, pos_margin=0.0),
    ),
}
PROXY_LOSSES = {
    "proxy_anchor": (
        losses.proxy_anchor_loss,
        losses.ProxyAnchorLoss,
        defn.proxy_anchor,
        dict(margin=0.1, alpha=32.0),
        1,
    ),
    "proxy_nca": (
        losses.proxy_nca_loss,
        losses.ProxyNCALoss,
        defn.proxy_nca,
        dict(softmax_scale=1.0),
        1,
    ),
    "arcface": (
        losses.arcface_loss,
        losses.ArcFaceLoss,
        defn.arcface,
        dict(margin=28.6, scale=64.0),
        1,
    ),
}


def _value_and_gradients(function, labels, *arrays, **options):
    tensors = [tf.Variable(np.asarray(a, np.float32)) for a in arrays]
    with tf.GradientTape() as tape:
        value = function(tf.constant(labels, tf.int32), *tensors, **options)
    return float(value), [g.numpy() for g in tape.gradient(value, tensors)]


@pytest.mark.parametrize("batch", sorted(BATCHES))
@pytest.mark.parametrize("name", sorted(PAIR_LOSSES))
def test_each_pair_loss_equals_its_definition(name, batch):
    function, _, definition, options = PAIR_LOSSES[name]
    labels, embeddings = BATCHES[batch](np.random.default_rng(3))
    value, (gradient,) = _value_and_gradients(function, labels, embeddings, **options)
    expected = definition(labels, embeddings.astype(np.float32).astype(np.float64), **options)
    assert value == pytest.approx(expected, rel=RTOL, abs=ATOL)
    assert np.isfinite(gradient).all()


def _proxies(rng, classes: int, width: int, sub_centers: int = 1) -> np.ndarray:
    return rng.normal(size=(classes * sub_centers, width))


@pytest.mark.parametrize("batch", sorted(BATCHES))
@pytest.mark.parametrize("name", sorted(PROXY_LOSSES))
def test_each_proxy_loss_equals_its_definition(name, batch):
    function, _, definition, options, _ = PROXY_LOSSES[name]
    rng = np.random.default_rng(4)
    labels, embeddings = BATCHES[batch](rng)
    proxies = _proxies(rng, int(labels.max()) + 2, embeddings.shape[1])  # a class not in it
    value, gradients = _value_and_gradients(function, labels, embeddings, proxies, **options)
    as32 = [a.astype(np.float32).astype(np.float64) for a in (embeddings, proxies)]
    expected = definition(labels, *as32, **options)
    assert value == pytest.approx(expected, rel=RTOL, abs=ATOL)
    assert all(np.isfinite(g).all() for g in gradients)


@pytest.mark.parametrize("sub_centers", [1, 3])
def test_subcenter_arcface_takes_each_classes_nearest_subcenter(sub_centers):
    rng = np.random.default_rng(5)
    labels, embeddings = BATCHES["pk"](rng)
    proxies = _proxies(rng, 4, embeddings.shape[1], sub_centers)
    value, gradients = _value_and_gradients(
        losses.subcenter_arcface_loss, labels, embeddings, proxies, sub_centers=sub_centers
    )
    as32 = [a.astype(np.float32).astype(np.float64) for a in (embeddings, proxies)]
    expected = defn.arcface(labels, *as32, margin=28.6, scale=64.0, sub_centers=sub_centers)
    assert value == pytest.approx(expected, rel=RTOL, abs=ATOL)
    assert all(np.isfinite(g).all() for g in gradients)


def test_cosface_is_the_normalised_softmax_with_a_margin():
    rng = np.random.default_rng(6)
    labels, embeddings = BATCHES["pk"](rng)
    proxies = _proxies(rng, 4, embeddings.shape[1])
    value = float(losses.cosface_loss(labels, embeddings.astype(np.float32), proxies))
    as32 = [a.astype(np.float32).astype(np.float64) for a in (embeddings, proxies)]
    assert value == pytest.approx(defn.cosface(labels, *as32, margin=0.35, scale=64.0), rel=RTOL)


def test_an_embedding_on_its_proxy_keeps_arcface_finite():
    proxies = np.eye(3, 4)
    embeddings = np.array([[2.0, 0, 0, 0], [0, 1.0, 0, 0]])  # each exactly on its proxy
    value, gradients = _value_and_gradients(losses.arcface_loss, [0, 1], embeddings, proxies)
    assert np.isfinite(value) and all(np.isfinite(g).all() for g in gradients)


@pytest.mark.parametrize("name", sorted(PAIR_LOSSES))
def test_a_pair_loss_object_equals_its_function(name):
    function, loss_class, _, options = PAIR_LOSSES[name]
    labels, embeddings = BATCHES["some_without_positive"](np.random.default_rng(7))
    embeddings = embeddings.astype(np.float32)
    loss = loss_class(**options)
    assert float(loss(labels, embeddings)) == pytest.approx(
        float(function(labels, embeddings, **options)), rel=1e-6
    )
    assert type(loss).from_config(loss.get_config()).get_config() == loss.get_config()


@pytest.mark.parametrize("name", sorted(PROXY_LOSSES))
def test_a_proxy_loss_object_on_the_proxies_layer_equals_its_function(name):
    function, loss_class, _, options, _ = PROXY_LOSSES[name]
    rng = np.random.default_rng(8)
    labels, embeddings = BATCHES["pk"](rng)
    layer = losses.Proxies(5)
    cosines = layer(embeddings.astype(np.float32))
    proxies = layer.proxies.numpy()
    assert proxies.shape == (5, embeddings.shape[1]) and cosines.shape == (len(labels), 5)
    expected = float(function(labels, embeddings.astype(np.float32), proxies, **options))
    assert float(loss_class(**options)(labels, cosines)) == pytest.approx(expected, rel=1e-6)


def test_proxy_anchor_proxies_start_as_kaiming_normal_by_fan_out():
    layer = losses.Proxies(1000, initializer=losses.PROXY_ANCHOR_INITIALIZER)
    layer.build((None, 64))
    # PyTorch's kaiming_normal_(mode="fan_out") on a 1000 x 64 matrix: std sqrt(2 / 1000).
    assert np.std(layer.proxies.numpy()) == pytest.approx(np.sqrt(2 / 1000), rel=0.05)
    normal = losses.Proxies(1000)
    normal.build((None, 64))
    assert np.std(normal.proxies.numpy()) == pytest.approx(1.0, rel=0.05)


def _tiny_model(num_inputs: int = 8) -> keras.Model:
    inputs = keras.Input((num_inputs,))
    return keras.Model(inputs, keras.layers.Dense(4)(inputs))


@pytest.mark.parametrize("name", sorted(PAIR_LOSSES) + sorted(PROXY_LOSSES))
def test_each_loss_trains_a_model_a_user_writes(name):
    # Two clusters of points, labelled by cluster: every loss can pull them apart.
    rng = np.random.default_rng(9)
    labels = np.repeat(np.arange(4), 8).astype(np.int32)
    x = (rng.normal(size=(32, 8)) + labels[:, None] * 0.5).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = _tiny_model()
    if name in PAIR_LOSSES:
        _, loss_class, _, options = PAIR_LOSSES[name]
    else:
        _, loss_class, _, options, _ = PROXY_LOSSES[name]
        model = keras.Model(model.input, losses.Proxies(4)(model.output))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss_class(**options))
    history = model.fit(x, labels, batch_size=32, epochs=30, shuffle=False, verbose=0)
    first, last = history.history["loss"][0], history.history["loss"][-1]
    assert np.isfinite(last) and last < first, (first, last)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: losses.multi_similarity_loss([0.0, 1.0], np.ones((2, 3))), "labels must be"),
        (lambda: losses.supcon_loss([0, 1, 1], np.ones((2, 3))), "differ in length"),
        (lambda: losses.ntxent_loss([0, 1], np.ones((2, 3)), temperature=0), "temperature"),
        (lambda: losses.circle_loss([0, 1], np.ones((2, 3)), m=1.5), "m must be from 0 to 1"),
        (lambda: losses.MultiSimilarityLoss(alpha=-1), "alpha must be greater than 0"),
        (lambda: losses.proxy_nca_loss([0], np.ones((1, 3)), np.ones((2, 4))), "do not fit"),
        (
            lambda: losses.subcenter_arcface_loss([0], np.ones((1, 3)), np.ones((4, 3))),
            "do not fit",
        ),
        (
            lambda: losses.subcenter_arcface_loss(
                [0], np.ones((1, 3)), np.ones((3, 3)), sub_centers=0
            ),
            "sub_centers must be",
        ),
        (lambda: losses.ArcFaceLoss(margin=200), "margin must be from 0 to 90"),
        (lambda: losses.ProxyAnchorLoss(alpha=0), "alpha must be greater than 0"),
        (lambda: losses.Proxies(0), "at least 1"),
    ],
)
def test_bad_arguments_are_one_value_error_naming_them(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.slow  # a fresh process under Keras's JAX backend
def test_each_loss_trains_a_model_a_user_writes_under_jax():
    pytest.importorskip("jax")
    import os

    from tests.conftest import run_main

    result = run_main(os.path.join("tests", "metric_losses_under_jax.py"))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line.split() for line in result.stdout.splitlines()]
    assert sorted(name for name, _, _ in lines) == sorted(
        [*PAIR_LOSSES, "proxy_anchor", "proxy_nca", "arcface", "supcon_with_memory"]
    )
    for name, first, last in lines:
        assert np.isfinite(float(last)) and float(last) < float(first), (name, first, last)
