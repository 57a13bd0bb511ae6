"""The configuration of one training run, validated before anything is written.

`TrainConfig` mirrors the flags of `train_main.py` one to one, so a run's
resolved configuration can be written as a flagfile that reproduces it.
Defaults are the reference project's protocol.
"""

from __future__ import annotations

import dataclasses

from keras_siamese.data import splits
from keras_siamese.data.datasets import SOURCES, dataset_info
from keras_siamese.errors import ConfigError

# The choices are defined here, with no Keras import, so that flags can be
# checked in a fraction of a second before TensorFlow loads.
DISTANCES = ("cosine", "euclidean")
DEFAULT_MARGINS = {"cosine": 0.3, "euclidean": 1.0}
EMBEDDINGS = ("gap", "dense")
# triplet: the reference's three-input model; batch_*: mining over P x K batches;
# contrastive: the two-input pair model.
OBJECTIVES = ("triplet", "batch_all", "batch_hard", "batch_semihard", "contrastive")
PAIR_HEADS = ("contrastive", "bce")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
JIT_CHOICES = ("auto", "true", "false")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")


def check_distance(distance: str) -> None:
    """Raises ConfigError unless `distance` is a known distance."""
    if distance not in DISTANCES:
        raise ConfigError(
            f"--distance={distance} is unknown: choose one of {', '.join(DISTANCES)}."
        )


def check_margin(margin: float) -> None:
    """Raises ConfigError unless `margin` is a positive number."""
    if not margin > 0:
        raise ConfigError(f"--margin={margin} must be greater than 0.")


def check_depth(depth: int) -> None:
    """Raises ConfigError unless `depth` is a CIFAR ResNet depth, 6n + 2 with n >= 1."""
    if depth < 8 or (depth - 2) % 6:
        raise ConfigError(
            f"--depth={depth} is not a CIFAR ResNet depth: use 6n+2 (8, 20, 56, ...)."
        )


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run (see train_main.py for each flag's help)."""

    workdir: str
    dataset: str = "cifar100"
    data_dir: str | None = None
    data_source: str = "auto"
    split: str = "90_10"
    split_order: str = "sequential"
    split_seed: int = 0
    val_fraction: float = 0.1
    depth: int = 56
    embedding: str = "gap"
    embedding_dim: int = 64
    l2_normalize: bool = False
    distance: str = "cosine"
    margin: float | None = None
    objective: str = "triplet"
    classes_per_batch: int = 32
    images_per_class: int = 4
    pair_head: str = "contrastive"
    learning_rate: float = 1e-3
    batch_size: int = 128
    epochs: int = 150
    steps_per_epoch: int = 0
    flip: bool = True
    crop: bool = False
    seed: int = 0
    time_budget_minutes: float = 0.0
    snapshot_every: int = 0
    precision: str = "float32"
    concat_tower: bool = False
    jit_compile: str = "auto"
    strategy: str = "auto"

    @property
    def resolved_margin(self) -> float:
        """The margin, or the reference's default for the distance."""
        return DEFAULT_MARGINS[self.distance] if self.margin is None else self.margin

    def validate(self) -> None:
        """Raises ConfigError (one clear sentence) for any invalid setting.

        Checks everything that can be checked without reading data.
        """
        info = dataset_info(self.dataset)
        if self.data_source not in SOURCES:
            raise ConfigError(
                f"--data_source={self.data_source} is unknown: choose one of {', '.join(SOURCES)}."
            )
        num_seen, _ = splits.parse_split(self.split, info.num_classes)
        if self.split_order not in splits.SPLIT_ORDERS:
            raise ConfigError(
                f"--split_order={self.split_order} is unknown: choose sequential or random."
            )
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"--val_fraction={self.val_fraction} must be in [0, 1).")
        check_depth(self.depth)
        if self.embedding not in EMBEDDINGS:
            raise ConfigError(f"--embedding={self.embedding} is unknown: choose gap or dense.")
        if self.embedding_dim < 1:
            raise ConfigError(f"--embedding_dim={self.embedding_dim} must be at least 1.")
        check_distance(self.distance)
        check_margin(self.resolved_margin)
        self._validate_objective(num_seen)
        if not self.learning_rate > 0:
            raise ConfigError(f"--learning_rate={self.learning_rate} must be greater than 0.")
        for name in ("batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name}={getattr(self, name)} must be at least 1.")
        if self.steps_per_epoch < 0:
            raise ConfigError(
                f"--steps_per_epoch={self.steps_per_epoch} must be 0 (one pass over the seen "
                "train images) or positive."
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"--precision={self.precision} is unknown: choose one of {', '.join(PRECISIONS)}."
            )
        if self.jit_compile not in JIT_CHOICES:
            raise ConfigError(
                f"--jit_compile={self.jit_compile} is unknown: choose one of "
                f"{', '.join(JIT_CHOICES)}."
            )
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"--strategy={self.strategy} is unknown: choose one of {', '.join(STRATEGIES)}."
            )
        if self.time_budget_minutes < 0:
            raise ConfigError(
                f"--time_budget_minutes={self.time_budget_minutes} must be 0 (no budget) or "
                "positive."
            )
        if self.snapshot_every < 0:
            raise ConfigError(
                f"--snapshot_every={self.snapshot_every} must be 0 (no snapshots) or positive."
            )
        if not self.workdir:
            raise ConfigError("--workdir is required: the folder that will hold this run.")

    @property
    def uses_pk_batches(self) -> bool:
        """Whether batches are P classes x K images (the batch-mining objectives)."""
        return self.objective.startswith("batch_")

    @property
    def images_per_batch(self) -> int:
        """Images through the tower per training step."""
        if self.uses_pk_batches:
            return self.classes_per_batch * self.images_per_class
        return self.batch_size * (2 if self.objective == "contrastive" else 3)

    def _validate_objective(self, num_seen: int) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(
                f"--objective={self.objective} is unknown: choose one of {', '.join(OBJECTIVES)}."
            )
        if self.pair_head not in PAIR_HEADS:
            raise ConfigError(
                f"--pair_head={self.pair_head} is unknown: choose one of {', '.join(PAIR_HEADS)}."
            )
        if self.uses_pk_batches:
            if self.classes_per_batch < 2:
                raise ConfigError(
                    f"--classes_per_batch={self.classes_per_batch} must be at least 2 for "
                    f"--objective={self.objective}: a batch needs negatives."
                )
            if self.images_per_class < 2:
                raise ConfigError(
                    f"--images_per_class={self.images_per_class} must be at least 2 for "
                    f"--objective={self.objective}: a batch needs positives."
                )
            if self.classes_per_batch > num_seen:
                raise ConfigError(
                    f"--classes_per_batch={self.classes_per_batch} exceeds the {num_seen} seen "
                    f"classes of --split={self.split}."
                )
        if self.objective == "contrastive" and self.batch_size % 2:
            raise ConfigError(
                f"--batch_size={self.batch_size} must be even for --objective=contrastive "
                "(half same-class, half different-class pairs)."
            )

    def to_flagfile(self) -> str:
        """The configuration as flagfile lines (`--name=value`), one per setting."""
        lines = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "margin":
                value = self.resolved_margin
            if value is None:
                continue
            if isinstance(value, bool):
                lines.append(f"--{field.name}" if value else f"--no{field.name}")
            else:
                lines.append(f"--{field.name}={value}")
        return "\n".join(lines) + "\n"


TUNERS = ("random", "bayesian", "hyperband")
MODES = ("train", "tune")


@dataclasses.dataclass(frozen=True)
class TuneConfig:
    """The settings of a hyperparameter search (`train_main.py --mode=tune`).

    Each trial trains with the `TrainConfig` of the search, its margin and
    learning rate (and optionally distance and embedding size) drawn by the
    tuner, on the seen classes minus `val_classes` held-out validation classes.
    """

    tuner: str = "random"
    max_trials: int = 10
    val_classes: int = 10
    tune_distance: bool = False
    tune_embedding_dim: bool = False

    def validate(self, train: TrainConfig) -> None:
        """Raises ConfigError (one clear sentence) for an invalid search setting."""
        if self.tuner not in TUNERS:
            raise ConfigError(
                f"--tuner={self.tuner} is unknown: choose one of {', '.join(TUNERS)}."
            )
        if self.max_trials < 1:
            raise ConfigError(f"--max_trials={self.max_trials} must be at least 1.")
        num_seen, _ = splits.parse_split(train.split, dataset_info(train.dataset).num_classes)
        if self.val_classes < 2:
            raise ConfigError(
                f"--val_classes={self.val_classes} must be at least 2: one-shot accuracy needs "
                "two classes to choose from."
            )
        if self.val_classes > num_seen - 2:
            raise ConfigError(
                f"--val_classes={self.val_classes} leaves fewer than 2 of the {num_seen} seen "
                f"classes of --split={train.split} to train on: hold out at most {num_seen - 2}."
            )
        if train.strategy == "multi_worker":
            raise ConfigError(
                "--mode=tune cannot use --strategy=multi_worker: spread a search over machines "
                "with keras-tuner's chief and workers instead (see the README)."
            )
        if self.tune_embedding_dim and train.embedding != "dense":
            raise ConfigError(
                "--tune_embedding_dim needs --embedding=dense: the gap embedding has a fixed size."
            )
        if train.uses_pk_batches and train.classes_per_batch > num_seen - self.val_classes:
            raise ConfigError(
                f"--classes_per_batch={train.classes_per_batch} exceeds the "
                f"{num_seen - self.val_classes} classes left to train on after --val_classes="
                f"{self.val_classes}."
            )

    def to_flagfile(self) -> str:
        """The search settings as flagfile lines, after `--mode=tune`."""
        lines = ["--mode=tune"]
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool):
                lines.append(f"--{field.name}" if value else f"--no{field.name}")
            else:
                lines.append(f"--{field.name}={value}")
        return "\n".join(lines) + "\n"
