"""The models of a training configuration: the tower and the compiled training model.

Model code imports no TensorFlow (Keras and `keras.ops` only), so the same
models build under any Keras backend.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras
from keras import ops

from keras_siamese.config import TrainConfig
from keras_siamese.data.datasets import DatasetInfo
from keras_siamese.model import classifier, distillation, losses, resnet, siamese


@contextlib.contextmanager
def precision_policy(precision: str) -> Iterator[None]:
    """Sets the Keras dtype policy for the layers built inside, then restores the old one.

    Under `mixed_float16` or `mixed_bfloat16` the convolutions compute in 16 bits
    while variables, the input normalisation, the embedding output and every
    loss stay float32; compile adds loss scaling for float16.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_tower(config: TrainConfig, info: DatasetInfo) -> keras.Model:
    """The embedding tower for `config` on images described by `info`."""
    return resnet.resnet_tower(
        config.depth,
        input_shape=info.image_shape,
        mean=info.mean,
        std=info.std,
        embedding=config.embedding,
        embedding_dim=config.embedding_dim,
        l2_normalize=config.l2_normalize,
        neck=config.neck,
        pool_grid=config.pool_grid,
        fused_batch_norm=config.fused_batch_norm,
    )


def learning_rate(config: TrainConfig, steps_per_epoch: int | None):
    """The learning rate of `config`: a float, or a schedule stepped once per batch.

    A schedule is a function of the optimizer's step count, which the run's
    backup keeps, so a resumed run continues it where it stopped.
    """
    if config.lr_schedule == "constant":
        return config.learning_rate
    if not steps_per_epoch:
        raise ValueError(f"--lr_schedule={config.lr_schedule} needs the steps per epoch")
    total = max(int(config.epochs * steps_per_epoch), 1)
    if config.lr_schedule == "cosine":
        warmup = int(config.warmup_epochs * steps_per_epoch)
        start = 0.0 if warmup else config.learning_rate
        target = config.learning_rate if warmup else None
        return keras.optimizers.schedules.CosineDecay(
            start, max(total - warmup, 1), warmup_target=target, warmup_steps=warmup
        )
    # onecycle: from a 25th of the peak up to it, then down to 1e-4 of the peak.
    warmup = int(config.warmup_epochs * steps_per_epoch) or max(int(0.3 * total), 1)
    return keras.optimizers.schedules.CosineDecay(
        config.learning_rate / 25,
        max(total - warmup, 1),
        alpha=1e-4,
        warmup_target=config.learning_rate,
        warmup_steps=warmup,
    )


def optimizer(
    config: TrainConfig, steps_per_epoch: int | None = None
) -> keras.optimizers.Optimizer:
    """The optimizer of `config`, with its learning rate or schedule.

    With `--ema_decay`, it also keeps a moving average of the weights, which
    Keras writes into the model when `fit` ends (`averaged_weights` swaps it in
    earlier); the average is optimizer state, so a resumed run continues it.
    """
    rate = learning_rate(config, steps_per_epoch)
    decay = config.weight_decay or None
    base = {"adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD}.get(
        config.optimizer, keras.optimizers.Adam
    )
    options: dict = {"weight_decay": decay}
    if config.optimizer == "adamw":
        options["weight_decay"] = config.weight_decay
    if config.optimizer == "sgd":
        options.update(momentum=config.momentum, nesterov=True)
    if not config.ema_decay:
        return base(rate, **options)
    return _WARM_AVERAGING[base](rate, use_ema=True, ema_momentum=config.ema_decay, **options)


def _warm_averaging(base: type) -> type:
    """`base` whose weight average warms up, so a short run's average forgets the start.

    Keras's average uses the decay D from the first step: after n steps the
    random initial weights still weigh D**n (0.36 after 1,000 steps at 0.999).
    Here step t uses min(D, (1 + t) / (10 + t)), TensorFlow's `num_updates` rule.
    """

    class WarmAveraging(base):
        def _update_model_variables_moving_average(self, trainable_variables):
            step = ops.cast(self.iterations, "float32")
            decay = ops.minimum(self.ema_momentum, (1.0 + step) / (10.0 + step))
            for var, average in zip(
                trainable_variables, self._model_variables_moving_average, strict=True
            ):
                if average is not None:
                    rate = ops.cast(decay, var.dtype)
                    average.assign(rate * average + (1.0 - rate) * var)

    WarmAveraging.__name__ = base.__name__
    return WarmAveraging


_WARM_AVERAGING = {
    base: _warm_averaging(base)
    for base in (keras.optimizers.Adam, keras.optimizers.AdamW, keras.optimizers.SGD)
}


@contextlib.contextmanager
def averaged_weights(model: keras.Model) -> Iterator[None]:
    """Inside, `model` holds its optimizer's weight average (if it keeps one)."""
    optimizer = getattr(model, "optimizer", None)
    if not getattr(optimizer, "use_ema", False):
        yield
        return
    variables = model.trainable_variables
    current = [v.numpy() for v in variables]
    optimizer.finalize_variable_values(variables)
    try:
        yield
    finally:
        for variable, value in zip(variables, current, strict=True):
            variable.assign(value)


def build_training_model(
    config: TrainConfig,
    tower: keras.Model,
    jit_compile: bool = False,
    num_classes: int | None = None,
    steps_per_epoch: int | None = None,
    teacher: keras.Model | None = None,
    teacher_scale: float = 1.0,
) -> keras.Model:
    """The compiled training model of `config.objective` around `tower`.

    triplet: the three-input model with the Lambda loss; batch_*: the tower
    alone, with a loss that mines the triplets of each P x K batch (with
    `--classifier_weight`, also under a cosine classifier of `num_classes`);
    contrastive: the two-input pair model; softmax and normsoftmax: the tower
    under a classifier of `num_classes` classes (the classes trained on).
    A learning-rate schedule or a mining warm-up needs the run's `steps_per_epoch`.
    With `--distill_from`, `teacher` (a frozen classifier of the same classes, whose
    scores times `teacher_scale` are logits) gives the soft targets.
    """
    margin = config.resolved_margin
    train_optimizer = optimizer(config, steps_per_epoch)
    metrics = []
    loss_weights = None
    if config.uses_class_batches:
        if num_classes is None:
            raise ValueError(f"--objective={config.objective} needs the number of classes")
        cosine = config.objective == "normsoftmax"
        loss = losses.ClassificationLoss(
            scale=config.logit_scale if cosine else 1.0,
            margin=config.class_margin if cosine else 0.0,
            label_smoothing=config.label_smoothing,
        )
        # Reads class indices and the float targets of mixed batches alike.
        metrics = [losses.ClassAccuracy(name="accuracy")]
        if config.rotation_weight:
            model = classifier.rotation_classifier_model(tower, num_classes, cosine=cosine)
            loss = {
                classifier.CLASS_SCORES: loss,
                classifier.ROTATION_SCORES: keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True
                ),
            }
            loss_weights = {
                classifier.CLASS_SCORES: 1.0,
                classifier.ROTATION_SCORES: config.rotation_weight,
            }
            metrics = {classifier.CLASS_SCORES: metrics}
        elif config.distill_from:
            if teacher is None:
                raise ValueError("--distill_from needs the teacher's model")
            soft_targets = distillation.SoftTargets(
                config.distill_weight,
                config.distill_temperature,
                student_scale=config.logit_scale if cosine else 1.0,
                teacher_scale=teacher_scale,
                name="soft_targets",
            )
            model = distillation.distilled_classifier_model(
                tower, teacher, num_classes, cosine, soft_targets
            )
            loss_weights = [1.0 - config.distill_weight]
        else:
            model = classifier.classifier_model(tower, num_classes, cosine=cosine)
    elif config.objective == "triplet":
        model = siamese.triplet_model(tower, config.distance, margin, config.concat_tower)
        loss = siamese.identity_loss
    elif config.uses_pk_batches:
        model = siamese.embedding_model(tower)
        if config.mining_warmup_epochs and not steps_per_epoch:
            raise ValueError("--mining_warmup_epochs needs the steps per epoch")
        loss = losses.BatchTripletLoss(
            config.objective,
            config.distance,
            margin,
            soft_margin=config.soft_margin,
            selective=config.selective_contrast,
            warmup_steps=config.mining_warmup_epochs * (steps_per_epoch or 0),
            root=config.root_distance,
            semihard_rule=config.semihard_rule,
        )
        loss.count_steps_with(train_optimizer.iterations)
        metrics = [
            keras.metrics.MeanMetricWrapper(
                losses.violating_fraction,
                name="violating_fraction",
                distance=config.distance,
                margin=margin,
                root=config.root_distance,
            )
        ]
        if config.classifier_weight:
            if num_classes is None:
                raise ValueError("--classifier_weight needs the number of classes")
            model = classifier.embedding_classifier_model(tower, num_classes)
            loss = {
                classifier.EMBEDDINGS: loss,
                classifier.CLASS_SCORES: losses.ClassificationLoss(
                    scale=config.logit_scale,
                    margin=config.class_margin,
                    label_smoothing=config.label_smoothing,
                ),
            }
            loss_weights = {
                classifier.EMBEDDINGS: 1.0,
                classifier.CLASS_SCORES: config.classifier_weight,
            }
            metrics = {classifier.EMBEDDINGS: metrics}
    else:
        model = siamese.pair_model(tower, config.distance, config.pair_head)
        if config.pair_head == "bce":
            loss = keras.losses.BinaryCrossentropy()
            metrics = [keras.metrics.BinaryAccuracy(name="pair_accuracy")]
        else:
            loss = losses.ContrastiveLoss(margin)
    model.compile(
        optimizer=train_optimizer,
        loss=loss,
        loss_weights=loss_weights,
        metrics=metrics,
        jit_compile=jit_compile,
    )
    # Without a distribution strategy Keras would build the optimizer inside the first
    # training step, and a tf.function that creates variables is traced twice; built
    # here, the step is traced once (seconds at every start, more the deeper the tower).
    train_optimizer.build(model.trainable_variables)
    return model
