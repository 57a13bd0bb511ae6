"""What a training objective is: the interface each family of objectives implements.

A family (the reference's triplets, pairs, P x K mining, classification) owns
everything that differs between objectives: the `--objective` names it serves,
the settings only it reads, its checks, its batches on the tf.data and numpy
paths, a synthetic batch for benchmarks and tests, its training model and loss,
the logged value that picks the best weights, and what a step costs. The rest
of the package asks `keras_siamese.objectives.objective_of(config)` and never
compares an objective's name.

Nothing here imports Keras or TensorFlow at module level: the settings are
checked before TensorFlow loads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_siamese.data.splits import Partition


class RunSettings(Protocol):
    """The settings of a run that the objectives read: a `keras_siamese.config.TrainConfig`
    (a frozen dataclass; named here by its fields, as the settings import this package)."""

    objective: str
    distance: str
    resolved_margin: float
    image_shape: tuple[int, int, int]
    split: str
    seed: int
    epochs: int
    batch_size: int
    flip: bool
    crop: bool
    # P x K mining
    classes_per_batch: int
    images_per_class: int
    soft_margin: bool
    selective_contrast: bool
    root_distance: bool
    semihard_rule: str
    mining_warmup_epochs: int
    classifier_weight: float
    # triplets and pairs
    concat_tower: bool
    pair_head: str
    # classification
    logit_scale: float
    class_margin: float
    label_smoothing: float
    mixup: float
    cutmix: float
    rotation_weight: float
    distill_from: str
    distill_weight: float
    distill_temperature: float
    generations: int
    ema_decay: float
    memory_size: int
    memory_warmup_steps: int
    strategy: str


@dataclasses.dataclass(frozen=True)
class Owned:
    """A setting that only some of a family's objectives read.

    Attributes:
        objectives: the `--objective` names that read it; empty: every name of the family.
        purpose: what the setting does, said when another objective is given it.
    """

    objectives: tuple[str, ...] = ()
    purpose: str = ""


@dataclasses.dataclass(frozen=True)
class Head:
    """What `compile` needs: the training model around the tower, its loss and metrics."""

    model: Any
    loss: Any
    loss_weights: Any = None
    metrics: Any = ()


class Inputs(NamedTuple):
    """Numpy batches: endless training batches, the validation arrays (or None), and the
    batch size validation takes them in."""

    train: Iterator
    validation: tuple | None
    validation_batch_size: int | None


# Offsets each multi-worker input pipeline's seed, so the workers draw different batches.
PIPELINE_SEED_STRIDE = 1_000_003


class Objective:
    """A family of training objectives; subclasses fill in what differs.

    Attributes:
        names: the `--objective` values it serves.
        label: how a refusal names the family's objectives ("the batch_* objectives");
            empty: by their names.
        owns: the settings only this family reads, by name; any other family refuses
            them unless they keep their defaults.
        tf_only: settings (or `objective`, for the whole family) whose batches only
            tf.data builds: the other Keras backends refuse them.
    """

    names: tuple[str, ...] = ()
    label: str = ""
    owns: Mapping[str, Owned] = {}
    tf_only: tuple[str, ...] = ()
    # Per objective, the settings that are its loss's arguments: setting -> argument.
    loss_arguments: Mapping[str, Mapping[str, str]] = {}

    def loss_options(self, config: RunSettings) -> dict:
        """The run's objective's loss arguments, from its settings (`loss_arguments`)."""
        names = self.loss_arguments.get(config.objective, {})
        return {argument: getattr(config, name) for name, argument in names.items()}

    def who(self, objectives: tuple[str, ...] = ()) -> str:
        """The objectives `objectives` (default: all of the family) as a refusal names them."""
        if not objectives or tuple(objectives) == self.names:
            if self.label:
                return self.label
            objectives = self.names
        if len(objectives) == 1:
            return f"--objective={objectives[0]}"
        return f"--objective={', '.join(objectives[:-1])} or {objectives[-1]}"

    def check(self, config: RunSettings, num_seen: int | None) -> None:
        """Raises ConfigError for a setting this family cannot train with.

        `num_seen` is the number of seen classes where it is known before the data
        are read, else None.
        """

    def images_per_step(self, config: RunSettings) -> int:
        """Images through the tower per training step."""
        raise NotImplementedError

    def samples_per_step(self, config: RunSettings) -> int:
        """What one step draws from the train images (images, triplets or pairs): the
        divisor of the train images that gives one epoch's steps."""
        return config.batch_size

    def classes_per_step(self, config: RunSettings) -> int | None:
        """The classes each batch must draw from, where the batches are built by class."""
        return None

    def replica_unit(self, config: RunSettings) -> tuple[str, int]:
        """The setting each replica of a multi-worker run takes an equal share of, and its
        value."""
        return "batch_size", config.batch_size

    def monitor(self, config: RunSettings) -> str:
        """The logged value (without `val_`) whose lowest epoch gives the best weights."""
        return "loss"

    def uses_margin(self, config: RunSettings) -> bool:
        """Whether the training loss depends on `--margin` (a search tunes it only then)."""
        return True

    def learning_rate_multipliers(self, config: RunSettings) -> dict[str, float]:
        """Variables (by a part of their path) that learn at a multiple of the rate."""
        return {}

    def first_monitored_epoch(self, config: RunSettings) -> int:
        """The first epoch whose monitored value may pick the best weights."""
        return 0

    def check_replicas(self, config: RunSettings, replicas: int) -> None:
        """Raises ConfigError when the run's settings cannot train on `replicas` replicas."""

    def replica_share(self, config: RunSettings, replicas: int, pipeline_id: int) -> RunSettings:
        """The settings one input pipeline of a multi-worker run draws its share with."""
        return dataclasses.replace(
            config,
            batch_size=config.batch_size // replicas,
            classes_per_batch=config.classes_per_batch // replicas,
            seed=config.seed + PIPELINE_SEED_STRIDE * pipeline_id,
        )

    def tf_datasets(
        self, config: RunSettings, part: Partition, steps: int, first_epoch: int
    ) -> tuple[tf.data.Dataset, tf.data.Dataset | None]:
        """The tf.data training and (where there are validation images) validation sets.

        The training batches of epoch `first_epoch` onwards are those an uninterrupted
        run draws.
        """
        raise NotImplementedError

    def numpy_inputs(
        self, config: RunSettings, part: Partition, steps: int, first_epoch: int
    ) -> Inputs:
        """The numpy batches of the other Keras backends, drawn as `tf_datasets` draws."""
        raise NotImplementedError

    def example_batch(
        self,
        config: RunSettings,
        rng: np.random.Generator,
        num_classes: int,
        image_shape: tuple[int, int, int],
    ) -> tuple[Any, Any]:
        """One training batch `(x, y)` of random images, as the model of `head` takes it."""
        raise NotImplementedError

    def head(
        self,
        config: RunSettings,
        tower: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        num_classes: int | None = None,
        steps_per_epoch: int | None = None,
        teacher: Any = None,
    ) -> Head:
        """The training model around `tower`, its loss and metrics.

        `num_classes`: the classes trained on, for the heads with a classifier;
        `steps_per_epoch`: for a loss that changes with the step; `teacher`: a
        distilled run's first generation (`keras_siamese.training.teacher.Teacher`).
        """
        raise NotImplementedError
