"""Every training objective on one tower: it learns on real images and exports alike."""

import os
from dataclasses import replace as dataclasses_replace

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese import objectives
from keras_siamese.config import TrainConfig
from keras_siamese.data import pipeline, splits
from keras_siamese.data.sources import load_dataset
from keras_siamese.errors import ConfigError
from keras_siamese.model import classifier, losses
from keras_siamese.serving import export
from keras_siamese.training import build
from tests.conftest import sample_metadata


@pytest.fixture(scope="module")
def cifar_subset(data_root):
    """20 train images of each of the first 6 CIFAR-100 classes, and the dataset."""
    dataset = load_dataset("cifar100", os.path.join(data_root, "cifar100"))
    keep = np.concatenate([np.flatnonzero(dataset.train_labels == c)[:20] for c in range(6)])
    return dataset, dataset.train_images[keep], dataset.train_labels[keep]


def _config(objective: str, **kwargs) -> TrainConfig:
    settings = dict(
        workdir="unused",
        depth=8,
        objective=objective,
        classes_per_batch=4,
        images_per_class=4,
        batch_size=16,
        learning_rate=3e-3,
    )
    settings.update(kwargs)
    return TrainConfig(**settings)


def _fixed_batch(config: TrainConfig, images, labels):
    """The first training batch the objective's own tf.data pipeline draws from the images."""
    none = images[:0], labels[:0]
    part = splits.Partition(splits.ClassSplit(tuple(range(6)), ()), images, labels, *none * 3)
    train, _ = objectives.objective_of(config).tf_datasets(config, part, 1, first_epoch=0)
    return next(iter(train))


def _model_and_batch(config: TrainConfig, cifar_subset, **build_kwargs):
    """A fresh tower of `config`, its compiled training model, and one fixed batch."""
    dataset, images, labels = cifar_subset
    keras.utils.set_random_seed(0)
    tower = build.build_tower(config, dataset.info)
    model = build.build_training_model(config, tower, **build_kwargs)
    x, y = _fixed_batch(config, images, labels)
    return tower, model, x, y


# One objective of each family (and each pair head) in make test; the others, whose losses
# tests/test_metric_losses.py and tests/test_loss_definitions.py check, in make test-slow.
IN_MAKE_TEST = ("triplet", "batch_hard", "contrastive", "normsoftmax", "supcon", "arcface")


@pytest.mark.parametrize(
    "objective,head",
    [
        pytest.param(o, "contrastive", marks=() if o in IN_MAKE_TEST else pytest.mark.slow)
        for o in objectives.OBJECTIVES
    ]
    + [("contrastive", "bce")],
)
def test_each_objective_lowers_its_loss(objective, head, cifar_subset, tmp_path):
    _, images, _ = cifar_subset
    config = _config(objective, pair_head=head)
    tower, model, x, y = _model_and_batch(config, cifar_subset, num_classes=6)
    # A step reports the loss of the weights it starts from: the first step's is the
    # untrained model's, the last one's that of 7 updates later (one traced function).
    steps = [float(model.train_on_batch(x, y, return_dict=True)["loss"]) for _ in range(8)]
    before, after = steps[0], steps[-1]
    assert np.isfinite(after) and after < before, (before, after)
    # Whatever trained it, the tower is the same model: uint8 images in, 64-d out.
    assert tower.input.dtype == "uint8" and tower.output_shape == (None, 64)
    if objective in ("triplet", "normsoftmax", "subcenter_arcface") and head == "contrastive":
        _assert_the_export_holds_the_tower_alone(tower, model, images[:3], objective, tmp_path)


def test_a_pair_based_objective_with_a_memory_lowers_its_loss_and_fills_it(cifar_subset):
    config = _config("multi_similarity", memory_size=48, memory_warmup_steps=1)
    tower, model, x, y = _model_and_batch(config, cifar_subset)
    (_, labels), targets = x, y
    np.testing.assert_array_equal(labels, targets)
    # Outside training the memory is left out: the batch's own loss, before and after.
    before = float(model.test_on_batch(x, y, return_dict=True)["loss"])
    for _ in range(8):
        model.train_on_batch(x, y)
    after = float(model.test_on_batch(x, y, return_dict=True)["loss"])
    assert np.isfinite(after) and after < before, (before, after)
    memory = model.get_layer("memory")
    # 8 batches of 16 through 48 slots: all filled, the position 8 x 16 mod 48 = 32.
    assert (memory.labels.numpy() >= 0).all() and int(memory.position.numpy()) == 32
    # The export is the tower alone, whatever the training model held.
    assert tower.input.dtype == "uint8" and tower.output_shape == (None, 64)


def test_a_memory_is_refused_on_several_replicas_in_one_line():
    config = _config("supcon", memory_size=64, strategy="mirrored")
    family = objectives.objective_of(config)
    family.check_replicas(config, 1)  # one replica: one memory
    with pytest.raises(
        ConfigError, match="does not train on the 2 replicas of --strategy=mirrored"
    ):
        family.check_replicas(config, 2)
    family.check_replicas(_config("supcon"), 2)  # without a memory: any number


def _assert_the_export_holds_the_tower_alone(tower, model, images, objective, tmp_path):
    """Whatever the objective, the SavedModel serves the tower and holds nothing else."""
    export_dir = str(tmp_path / "export")
    export.export_tower(tower, export_dir, sample_metadata())
    loaded = export.load_saved_model(export_dir)  # kept: its variables live with it
    served = loaded.serve(tf.constant(images))
    assert served.dtype == tf.float32 and served.shape == (len(images), 64)
    np.testing.assert_allclose(
        served.numpy(), tower.predict(images, verbose=0), rtol=1e-4, atol=1e-5
    )
    # A training head (the classifier's 64 x 6 weights) is not part of the export.
    exported = export.load_tower(export_dir)
    assert (
        len(exported.weights) == len(tower.weights) < len(model.weights) + (objective == "triplet")
    )


def test_classification_batches_carry_seen_class_indices(cifar_subset):
    dataset, _, _ = cifar_subset
    config = _config("normsoftmax", split="50_50", split_order="random", split_seed=3)
    split = splits.make_split("50_50", 100, "random", 3)
    part = splits.partition(dataset, split, 0.1, seed=3)
    family = objectives.objective_of(config)
    train_ds, val_ds = family.tf_datasets(config, part, steps=2, first_epoch=0)
    seen = sorted(split.seen)
    for ds in (train_ds.take(2), val_ds.take(2)):
        for _, y in ds:
            y = y.numpy()
            assert y.min() >= 0 and y.max() < 50
    # Index k is the k-th seen class: the first validation image's class, mapped back.
    ((_, y),) = val_ds.take(1)
    assert seen[int(y.numpy()[0])] == int(part.val_labels[0])
    # The numpy batches of the other backends number the classes alike.
    train, (_, val_labels), _ = family.numpy_inputs(config, part, steps=2, first_epoch=0)
    for images, labels in (next(train), next(train)):
        assert images.shape == (16, 32, 32, 3) and labels.min() >= 0 and labels.max() < 50
    np.testing.assert_array_equal([seen[i] for i in val_labels], part.val_labels)


def test_batch_hard_warm_up_ends_with_the_optimizers_step_count(cifar_subset):
    config = _config("batch_hard", neck="batchnorm", mining_warmup_epochs=1, epochs=2)
    tower, model, x, y = _model_and_batch(config, cifar_subset, steps_per_epoch=2)

    def losses_now():
        e = tower(x, training=False)
        logged = float(model.evaluate(x, y, verbose=0, return_dict=True)["loss"])
        every = float(losses.batch_all_triplet_loss(y, e, "cosine", 0.3)[0])
        return logged, every, float(losses.batch_hard_triplet_loss(y, e, "cosine", 0.3))

    logged, every, hardest = losses_now()
    assert logged == pytest.approx(every, rel=1e-4) and every != pytest.approx(hardest, rel=1e-2)
    model.train_on_batch(x, y)
    model.train_on_batch(x, y)  # two steps: one epoch of 2, the warm-up, is over
    logged, every, hardest = losses_now()
    assert logged == pytest.approx(hardest, rel=1e-4) and every != pytest.approx(hardest, rel=1e-2)


def test_batch_all_keeps_the_weights_of_the_fewest_violating_triplets(cifar_subset, tmp_path):
    import json

    from keras_siamese.training import trainer
    from keras_siamese.training.callbacks import BestWeights

    monitors = {o: trainer.best_weights_monitor(_config(o), True) for o in objectives.OBJECTIVES}
    assert monitors.pop("batch_all") == "val_violating_fraction"
    assert set(monitors.values()) == {"val_loss"}
    assert trainer.best_weights_monitor(_config("batch_all"), False) == "violating_fraction"

    dataset, images, labels = cifar_subset
    config = _config("batch_all", neck="batchnorm")
    keras.utils.set_random_seed(0)
    model = build.build_training_model(config, build.build_tower(config, dataset.info))
    x, y = _fixed_batch(config, images, labels)
    path = str(tmp_path / "best.weights.h5")
    callback = BestWeights(path, trainer.best_weights_monitor(config, True))
    history = model.fit(x, y, validation_data=(x, y), epochs=3, verbose=0, callbacks=[callback])
    # The monitored value is logged by training, and the kept epoch is its lowest.
    fractions = history.history["val_violating_fraction"]
    with open(f"{path}.json") as f:
        record = json.load(f)
    assert record["monitor"] == "val_violating_fraction"
    assert record["value"] == pytest.approx(min(fractions))
    assert record["epoch"] == 1 + int(np.argmin(fractions))


def test_mining_beside_a_classifier_adds_its_weighted_loss(cifar_subset):
    config = _config("batch_hard", neck="batchnorm", classifier_weight=0.5, logit_scale=8.0)
    # The family's batches label both outputs alike.
    tower, model, x, y = _model_and_batch(config, cifar_subset, num_classes=6)
    labels_of_batch = y[classifier.CLASS_SCORES]
    np.testing.assert_array_equal(y[classifier.EMBEDDINGS], labels_of_batch)
    logged = model.evaluate(x, y, verbose=0, return_dict=True)
    # Both terms from the model's own outputs: the tower's embedding and its cosines to
    # the class weights, whose loss is the cross-entropy of 8 x cosine.
    outputs = model(x, training=False)
    e, scores = outputs["embeddings"], outputs["class_scores"]
    np.testing.assert_allclose(e, tower(x, training=False), rtol=1e-5, atol=1e-6)
    mining = float(losses.batch_hard_triplet_loss(labels_of_batch, e, "cosine", 0.3))
    logits = 8.0 * scores.numpy()
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    cross_entropy = -log_p[np.arange(len(logits)), labels_of_batch.numpy()].mean()
    assert logged["embeddings_loss"] == pytest.approx(mining, rel=1e-4)
    assert logged["class_scores_loss"] == pytest.approx(cross_entropy, rel=1e-4)
    assert logged["loss"] == pytest.approx(mining + 0.5 * cross_entropy, rel=1e-4)
    assert 0.0 <= logged["embeddings_violating_fraction"] <= 1.0
    steps = [float(model.train_on_batch(x, y, return_dict=True)["loss"]) for _ in range(15)]
    assert steps[-1] < steps[0], steps


def test_mining_batches_under_a_classifier_label_both_outputs(cifar_subset):
    from keras_siamese.training import trainer

    dataset, _, _ = cifar_subset
    config = _config(
        "batch_all", split="50_50", split_order="random", split_seed=3, classifier_weight=1.0
    )
    assert trainer.best_weights_monitor(config, True) == "val_embeddings_violating_fraction"
    split = splits.make_split("50_50", 100, "random", 3)
    part = splits.partition(dataset, split, 0.1, seed=3)
    train_ds, val_ds = objectives.objective_of(config).tf_datasets(
        config, part, steps=2, first_epoch=0
    )
    seen = sorted(split.seen)
    ((_, y),) = val_ds.take(1)
    assert set(y) == {"embeddings", "class_scores"}
    np.testing.assert_array_equal(y["embeddings"], y["class_scores"])
    assert {seen[i] for i in y["class_scores"].numpy()} <= set(part.val_labels)
    # Index k is the k-th seen class; a P x K batch holds K images of each of P classes.
    for _, y in train_ds.take(2):
        indices = y["class_scores"].numpy()
        assert indices.min() >= 0 and indices.max() < 50
        assert sorted(np.unique(indices, return_counts=True)[1]) == [4] * 4


def test_the_weight_average_warms_up_and_is_swapped_in_and_out():
    config = _config(
        "normsoftmax", optimizer="sgd", momentum=0.0, learning_rate=1e-3, ema_decay=0.9
    )
    optimizer = build.optimizer(config)
    variable = keras.Variable(np.zeros(2, np.float32))
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    optimizer.build([variable])
    # Plain SGD at 1e-3 with a gradient of -1000: the variable rises by 1 a step.
    expected_average, value = 0.0, 0.0
    for step in range(4):
        optimizer.apply([tf.constant([-1000.0, -1000.0])], [variable])
        value += 1.0
        decay = min(0.9, (1 + step) / (10 + step))
        expected_average = decay * expected_average + (1 - decay) * value
    average = optimizer._model_variables_moving_average[0].numpy()
    np.testing.assert_allclose(average, [expected_average] * 2, rtol=1e-5)
    np.testing.assert_allclose(variable.numpy(), [4.0, 4.0])

    model.compile(optimizer=build.optimizer(config), loss="mse")
    model.optimizer.build(model.trainable_variables)
    kernel = model.trainable_variables[0]
    kernel.assign(np.ones((2, 1), np.float32))
    model.optimizer._model_variables_moving_average[0].assign(np.full((2, 1), 0.5, np.float32))
    with build.averaged_weights(model):
        np.testing.assert_allclose(kernel.numpy(), 0.5)
    np.testing.assert_allclose(kernel.numpy(), 1.0)


def test_soft_targets_give_the_cross_entropy_of_their_mixture():
    scores = np.array([[0.2, -0.1, 0.5], [0.9, 0.0, -0.3]], np.float32)
    targets = np.array([[0.7, 0.3, 0.0], [0.0, 0.25, 0.75]], np.float32)
    scale, margin = 4.0, 0.1
    got = losses.classification_loss(targets, scores, scale=scale, margin=margin)
    logits = scale * (scores - margin * targets)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(got, -(targets * log_p).sum(axis=1), rtol=1e-5)
    # Int labels are one-hot targets.
    hard = losses.classification_loss(np.array([2, 0]), scores, scale=scale)
    onehot = np.eye(3, dtype=np.float32)[[2, 0]]
    np.testing.assert_allclose(hard, losses.classification_loss(onehot, scores, scale=scale))
    np.testing.assert_array_equal(losses.class_accuracy(targets, scores), [0.0, 0.0])
    np.testing.assert_array_equal(losses.class_accuracy(np.array([[2], [0]]), scores), [1, 1])


def test_the_rotation_task_adds_its_weighted_loss_to_the_upright_images_class_loss(cifar_subset):
    config = _config("normsoftmax", rotation_weight=0.5, batch_size=8)
    assert objectives.objective_of(config).images_per_step(config) == 32
    dataset, images, labels = cifar_subset
    keras.utils.set_random_seed(0)
    tower = build.build_tower(config, dataset.info)
    model = build.build_training_model(config, tower, num_classes=6)
    ds = pipeline.class_dataset(images, labels, 8, steps_per_epoch=1, seed=0, rotations=True)
    x, (class_labels, turns) = next(iter(ds))
    scores = model.predict_on_batch(x)
    upright = class_labels.numpy() >= 0
    assert upright.sum() == 8 and x.shape[0] == 32
    class_part = losses.classification_loss(
        class_labels.numpy()[upright], scores[classifier.CLASS_SCORES][upright], scale=16.0
    )
    logits = scores[classifier.ROTATION_SCORES]
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    rotation_part = -log_p[np.arange(32), turns.numpy()]
    logs = model.test_on_batch(
        x,
        {classifier.CLASS_SCORES: class_labels, classifier.ROTATION_SCORES: turns},
        return_dict=True,
    )
    expected = float(np.mean(class_part)) + 0.5 * float(np.mean(rotation_part))
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-4)
    assert [w.name for w in model.weights if "rotation" in w.path]  # a head of its own
    assert not [w for w in tower.weights if "rotation" in w.path]  # left out of the export


class _Interrupt(keras.callbacks.Callback):
    """Stops a fit by an error at the end of epoch `epoch` (0-based), after its backup."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_the_weight_average_resumes_exactly_from_the_backup(tmp_path):
    config = _config("normsoftmax", optimizer="sgd", learning_rate=0.05, ema_decay=0.95)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5]], np.float32)

    def fit(backup: str, epochs_done_before_interrupt: int | None = None):
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer=build.optimizer(config), loss="mse")
        callbacks = [keras.callbacks.BackupAndRestore(backup)]
        if epochs_done_before_interrupt is not None:
            # After the backup: that epoch's backup is written before the stop.
            callbacks.append(_Interrupt(epochs_done_before_interrupt))
        model.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0, callbacks=callbacks)
        return model.get_weights()

    straight = fit(str(tmp_path / "straight"))
    with pytest.raises(KeyboardInterrupt):
        fit(str(tmp_path / "resumed"), epochs_done_before_interrupt=1)
    resumed = fit(str(tmp_path / "resumed"))
    for a, b in zip(straight, resumed, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    # What both end with is the average (Keras writes it in at the end), not the last step.
    keras.utils.set_random_seed(1)
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    plain.compile(optimizer=build.optimizer(dataclasses_replace(config, ema_decay=0.0)), loss="mse")
    plain.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0)
    assert not np.allclose(plain.get_weights()[0], straight[0])


def test_the_proxies_step_at_their_multiple_of_the_learning_rate(cifar_subset):
    dataset, images, labels = cifar_subset
    config = _config("proxy_nca", optimizer="sgd", momentum=0.0, learning_rate=0.05, batch_size=12)
    x, y = images[:12], (labels[:12] % 6).astype(np.int32)

    def one_step(multiplier: float):
        keras.utils.set_random_seed(0)
        run = dataclasses_replace(config, proxy_lr_multiplier=multiplier)
        tower = build.build_tower(run, dataset.info)
        model = build.build_training_model(run, tower, num_classes=6)
        before = {v.path: v.numpy().copy() for v in model.trainable_variables}
        model.train_on_batch(x, y)
        return {v.path: v.numpy() - before[v.path] for v in model.trainable_variables}

    plain, faster = one_step(1.0), one_step(10.0)
    (proxies,) = [path for path in plain if "proxies" in path]
    # The same weights and batch: the same gradient, ten times the step for the proxies only
    # (a step is the difference of two float32 weights of up to a few units: 1e-6 apart).
    np.testing.assert_allclose(faster[proxies], 10 * plain[proxies], rtol=1e-3, atol=2e-6)
    for path in plain:
        if path != proxies:
            np.testing.assert_allclose(faster[path], plain[path], rtol=1e-3, atol=2e-6)
    assert np.abs(plain[proxies]).max() > 0
