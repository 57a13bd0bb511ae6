"""The models of a training configuration: the tower, the optimizer and the compiled
training model.

Imports no TensorFlow (Keras and `keras.ops` only), so the same models build
under any Keras backend.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import keras
from keras import ops

from keras_siamese import objectives
from keras_siamese.config import TrainConfig
from keras_siamese.data.datasets import DatasetInfo
from keras_siamese.errors import ConfigError
from keras_siamese.model import backbones, resnet

if TYPE_CHECKING:
    from keras_siamese.training.teacher import Teacher


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
    head = dict(
        embedding=config.embedding,
        embedding_dim=config.embedding_dim,
        l2_normalize=config.l2_normalize,
        neck=config.neck,
        pool_grid=config.pool_grid,
        float32_head=config.float32_head,
    )
    if config.uses_application:
        return backbones.backbone_tower(
            config.backbone,
            input_shape=info.image_shape,
            size=config.tower_size,
            weights=_backbone_weights(config),
            train_norm=config.train_backbone_norm,
            **head,
        )
    return resnet.resnet_tower(
        config.depth,
        input_shape=info.image_shape,
        mean=info.mean,
        std=info.std,
        fused_batch_norm=config.fused_batch_norm,
        **head,
    )


def _backbone_weights(config: TrainConfig) -> str | keras.Model:
    """`--backbone_weights`, or for an export folder the Keras Applications network of its
    tower.

    Raises:
        ConfigError: when the export's tower is not of `--backbone`.
    """
    weights = config.backbone_weights
    if not os.path.isdir(weights):
        return weights
    from keras_siamese.serving import export

    tower = export.load_tower(weights)
    network = backbones.network_of(tower)
    if network is None or tower.name != config.backbone:
        raise ConfigError(
            f"--backbone_weights={weights} is an export of a {tower.name} tower, not of "
            f"--backbone={config.backbone}."
        )
    return network


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
    config: TrainConfig, steps_per_epoch: int | None = None, tower: keras.Model | None = None
) -> keras.optimizers.Optimizer:
    """The optimizer of `config`, with its learning rate or schedule.

    With `--ema_decay`, it also keeps a moving average of the weights, which
    Keras writes into the model when `fit` ends (`averaged_weights` swaps it in
    earlier); the average is optimizer state, so a resumed run continues it. The
    variables the objective names (`learning_rate_multipliers`, e.g. a proxy-based
    loss's proxies) step at a multiple of the rate. A Keras Applications network in
    `tower` steps at `--backbone_lr_multiplier` times the rate and, for the first
    `--freeze_backbone_epochs`, not at all.
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
    if config.ema_decay:
        base = _WARM_AVERAGING[base]
        options.update(use_ema=True, ema_momentum=config.ema_decay)
    multipliers = objectives.objective_of(config).learning_rate_multipliers(config)
    network = backbones.network_of(tower) if tower is not None else None
    tuned = config.freeze_backbone_epochs or config.backbone_lr_multiplier != 1
    tower_rate = None
    if network is not None and tuned:
        if config.freeze_backbone_epochs and not steps_per_epoch:
            raise ValueError("--freeze_backbone_epochs needs the steps per epoch")
        tower_rate = VariableRate(
            config.backbone_lr_multiplier, config.freeze_backbone_epochs * (steps_per_epoch or 0)
        )
    tower_ids = {id(v) for v in network.trainable_variables} if tower_rate else set()

    def rate_of(variable: keras.Variable) -> VariableRate | None:
        if id(variable) in tower_ids:
            return tower_rate
        for part, factor in multipliers.items():
            if part in variable.path:
                return VariableRate(factor)
        return None

    if multipliers or tower_ids:
        base = _variable_rates(base, rate_of)
    return base(rate, **options)


@dataclasses.dataclass(frozen=True)
class VariableRate:
    """How one variable steps: at `factor` times the learning rate, and not at all during
    the first `frozen_steps` steps of the optimizer."""

    factor: float = 1.0
    frozen_steps: int = 0


def _variable_rates(base: type, rate_of: Callable[[keras.Variable], VariableRate | None]) -> type:
    """`base` whose step for a variable follows `rate_of(variable)` (None: the plain step).

    A multiplied rate leaves weight decay at the base rate. A frozen variable changes not
    at all during its frozen steps: no update, no weight decay, no momentum gathered (its
    decay is applied here, after the frozen steps).
    """

    class VariableRates(base):
        def build(self, var_list):
            if self.weight_decay is not None:
                frozen = [v for v in var_list if (rate_of(v) or VariableRate()).frozen_steps]
                if frozen:
                    self.exclude_from_weight_decay(var_list=frozen)
            super().build(var_list)

        def update_step(self, gradient, variable, learning_rate):
            # The backend's variable: its Keras variable is the one `rate_of` knows.
            rate = rate_of(self._trainable_variables[self._get_variable_index(variable)])
            if rate is not None:
                if rate.frozen_steps:
                    active = ops.cast(self.iterations >= rate.frozen_steps, variable.dtype)
                    if self.weight_decay is not None:
                        decay = ops.cast(self.weight_decay, variable.dtype)
                        step = ops.cast(learning_rate, variable.dtype)
                        variable.assign(variable - variable * decay * step * active)
                    gradient = gradient * ops.cast(active, gradient.dtype)
                    learning_rate = learning_rate * ops.cast(active, learning_rate.dtype)
                learning_rate = learning_rate * rate.factor
            super().update_step(gradient, variable, learning_rate)

    VariableRates.__name__ = base.__name__
    return VariableRates


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
    teacher: Teacher | None = None,
) -> keras.Model:
    """The compiled training model of `config.objective` around `tower`.

    The objective's family builds the model and its loss
    (`keras_siamese.objectives`); this compiles it with the run's optimizer.
    `num_classes`: the classes trained on, for heads with a classifier; a
    learning-rate schedule or a mining warm-up needs the run's `steps_per_epoch`;
    with `--distill_from`, `teacher` is the frozen first generation.
    """
    train_optimizer = optimizer(config, steps_per_epoch, tower)
    head = objectives.objective_of(config).head(
        config,
        tower,
        train_optimizer,
        num_classes=num_classes,
        steps_per_epoch=steps_per_epoch,
        teacher=teacher,
    )
    head.model.compile(
        optimizer=train_optimizer,
        loss=head.loss,
        loss_weights=head.loss_weights,
        metrics=list(head.metrics) if isinstance(head.metrics, tuple) else head.metrics,
        jit_compile=jit_compile,
    )
    # Without a distribution strategy Keras would build the optimizer inside the first
    # training step, and a tf.function that creates variables is traced twice; built
    # here, the step is traced once.
    train_optimizer.build(head.model.trainable_variables)
    return head.model
