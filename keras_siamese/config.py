"""Every setting of the programs, declared once and validated before anything is written.

Each concern declares its settings in a frozen dataclass of its own: the data
(`keras_siamese.data.settings`), the tower (`keras_siamese.model.settings`), the
objective (`keras_siamese.objectives.settings`), and here optimisation, the levers,
the run's control, the export and the devices. `TrainConfig` composes them, field
order as declared; `TuneConfig` is the search's (the evaluation's, `EvalConfig`,
is `keras_siamese.evaluation.settings`). The absl flags of the programs and their
parsing are generated from these declarations (`keras_siamese.cli`), so a run's
resolved configuration can be written as a flagfile that reproduces it. Defaults
are the reference project's protocol.
"""

from __future__ import annotations

import dataclasses
import math

from keras_siamese import objectives
from keras_siamese.choices import (
    CENTERS,
    EXPORT_PRECISIONS,
    JIT_CHOICES,
    LR_SCHEDULES,
    OPTIMIZERS,
    PRECISION_CHOICES,
    STRATEGIES,
    TTAS,
    TUNERS,
    check_margin,
)
from keras_siamese.data.settings import DataSettings
from keras_siamese.errors import ConfigError
from keras_siamese.model.settings import TowerSettings
from keras_siamese.objectives.settings import LossCatalogueSettings, ObjectiveSettings
from keras_siamese.settings import check_choices, flag_lines, setting

RUN_AND_DATA = DataSettings.TITLE


@dataclasses.dataclass(frozen=True)
class OptimizationSettings:
    """The optimizer, its schedule and the run's length."""

    TITLE = "Optimisation and schedule"

    learning_rate: float = setting(
        1e-3, "Learning rate: the constant one, or the peak of --lr_schedule."
    )
    optimizer: str = setting(
        "adam", "adam, adamw (decoupled weight decay), or sgd (Nesterov momentum).", OPTIMIZERS
    )
    momentum: float = setting(0.9, "sgd: momentum, in [0, 1).")
    weight_decay: float = setting(
        0.0, "Decoupled weight decay of every optimizer (0: none; adamw needs it above 0)."
    )
    lr_schedule: str = setting(
        "constant",
        "constant; cosine: decay to 0 over --epochs after --warmup_epochs of linear warm-up; "
        "onecycle: warm up from a 25th of the rate (over --warmup_epochs, or the first 30% "
        "of the run when 0), then cosine decay to 1e-4 of it. Steps per batch.",
        LR_SCHEDULES,
    )
    warmup_epochs: float = setting(
        0.0, "Epochs of linear warm-up before the schedule's decay (cosine, onecycle)."
    )
    batch_size: int = setting(
        128,
        "Triplets (or pairs, or images for softmax and normsoftmax) per batch; batch_*: P x K "
        "instead.",
    )
    epochs: int = setting(150, "Training epochs.")
    steps_per_epoch: int = setting(0, "Batches per epoch; 0 = seen train images / batch size.")

    def check_optimization(self) -> None:
        """Raises ConfigError for an optimizer or schedule that cannot train."""
        if not self.learning_rate > 0:
            raise ConfigError(f"--learning_rate={self.learning_rate} must be greater than 0.")
        if self.weight_decay < 0:
            raise ConfigError(f"--weight_decay={self.weight_decay} must be 0 or positive.")
        if self.optimizer == "adamw" and not self.weight_decay > 0:
            raise ConfigError(
                "--optimizer=adamw needs --weight_decay above 0 (with 0 it is --optimizer=adam)."
            )
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"--momentum={self.momentum} must be in [0, 1).")
        if self.warmup_epochs < 0:
            raise ConfigError(f"--warmup_epochs={self.warmup_epochs} must be 0 or positive.")
        if self.warmup_epochs and self.lr_schedule == "constant":
            raise ConfigError(
                "--warmup_epochs needs --lr_schedule=cosine or onecycle: a constant rate has "
                "no warm-up."
            )
        if self.warmup_epochs >= self.epochs:
            raise ConfigError(
                f"--warmup_epochs={self.warmup_epochs} must be shorter than the run's "
                f"--epochs={self.epochs}."
            )


@dataclasses.dataclass(frozen=True)
class LeverSettings:
    """Augmentation and the levers beside the loss: mixing, rotation, averaging, distillation."""

    TITLE = "Augmentation and regularisation"

    flip: bool = setting(True, "Random horizontal flip augmentation.")
    crop: bool = setting(False, "Random crop augmentation with 4-pixel padding.")
    mixup: float = setting(
        0.0,
        "softmax, normsoftmax: mix each batch with itself reversed, image and target, by a "
        "share drawn from Beta(ALPHA, ALPHA) per batch (mixup); 0: off.",
    )
    cutmix: float = setting(
        0.0,
        "softmax, normsoftmax: paste a box of the reversed batch into each image, targets "
        "mixed by area, the box's share drawn from Beta(ALPHA, ALPHA) per batch (CutMix); with "
        "--mixup too, each batch takes one of the two at random; 0: off.",
    )
    rotation_weight: float = setting(
        0.0,
        "softmax, normsoftmax: also pass each image rotated by 90, 180 and 270 degrees through "
        "the tower, and add this weight times the cross-entropy of a small head that predicts "
        "the rotation (the class loss stays on the upright images); a step then costs "
        "4 x --batch_size images. The head is not exported. 0: off.",
    )
    ema_decay: float = setting(
        0.0,
        "Keep an exponential moving average of the weights (decay D, warmed up as "
        "min(D, (1 + step) / (10 + step))) and evaluate and export the average instead of the "
        "best epoch's weights; snapshots hold the average too. 0: off.",
    )
    distill_from: str = setting(
        "",
        "softmax, normsoftmax: a finished classification run of this split (its folder W) "
        "whose frozen tower and classifier give soft targets: this run, a second generation, "
        "learns (1 - --distill_weight) of the label loss plus --distill_weight of the "
        "distillation loss (born-again networks). Empty: off.",
    )
    distill_weight: float = setting(
        0.5, "--distill_from: the distillation loss's share of the loss, in (0, 1]."
    )
    distill_temperature: float = setting(
        4.0, "--distill_from: the temperature that softens both generations' predictions, > 0."
    )
    generations: int = setting(
        1,
        "softmax, normsoftmax: train this many generations in one run, each after the first "
        "distilled from the one before (as --distill_from, with --distill_weight and "
        "--distill_temperature); the earlier ones train in WORKDIR/generation_1, ..., the "
        "last in WORKDIR, whose export is the run's. 1: one generation.",
    )

    def check_levers(self) -> None:
        """Raises ConfigError for a lever's setting out of its range."""
        for name in ("mixup", "cutmix", "rotation_weight"):
            value = getattr(self, name)
            if not value >= 0 or math.isinf(value):
                raise ConfigError(f"--{name}={value} must be 0 (off) or a positive number.")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"--ema_decay={self.ema_decay} must be in [0, 1).")
        if not 0.0 < self.distill_weight <= 1.0:
            raise ConfigError(f"--distill_weight={self.distill_weight} must be in (0, 1].")
        if not 0.0 < self.distill_temperature < math.inf:
            raise ConfigError(
                f"--distill_temperature={self.distill_temperature} must be a positive number."
            )


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """What a run starts from, when it stops, and what it keeps on the way."""

    TITLE = OptimizationSettings.TITLE

    seed: int = setting(0, "Seed of weights, triplets and augmentation.", group=RUN_AND_DATA)
    init_from: str = setting(
        "",
        "Start the tower from an earlier run's export (its W/export), layer by layer by name, "
        "e.g. a classifier's to mine triplets from; layers it lacks (a --neck) start fresh. "
        "An export of this data set must not have trained on this split's unseen classes; one "
        "of another (a CIFAR-100 tower for a folder) starts any split. Empty: random weights.",
        group=RUN_AND_DATA,
    )
    time_budget_minutes: float = setting(
        0.0,
        "Stop after the first epoch that ends past this many minutes of training (per "
        "process); 0: no budget, --epochs decides.",
    )
    snapshot_every: int = setting(
        0, "Save the tower's weights every N epochs for learning curves (eval_main.py --snapshots)."
    )


@dataclasses.dataclass(frozen=True)
class ExportSettings:
    """The test-time options built into the export."""

    TITLE = "Export options"

    tta: str = setting(
        "none",
        "Test-time augmentation built into the export: flip = the mean embedding of an image "
        "and its mirror image. The protocol's own rows stay without it.",
        TTAS,
    )
    center: str = setting(
        "none",
        "Centring built into the export: seen = subtract the mean embedding of the seen classes' "
        "train images (SimpleShot). The protocol's own rows stay without it.",
        CENTERS,
    )
    export_precision: str = setting(
        "float32",
        "The arithmetic of the exported tower, whatever precision trained it: float32 runs at "
        "full speed on every CPU (its weights are the training's, cast once); bfloat16 or "
        "float16 keep 16-bit compute, for machines with those units. Evaluation measures "
        "what is exported.",
        tuple(EXPORT_PRECISIONS),
    )


@dataclasses.dataclass(frozen=True)
class SpeedSettings:
    """Where and how fast the arithmetic runs."""

    TITLE = "Speed and devices"

    precision: str = setting(
        "float32",
        "Keras dtype policy of the tower; mixed_* compute in 16 bits, losses and outputs stay "
        "float32. auto: mixed_float16 on a GPU with float16 tensor cores, mixed_bfloat16 on a "
        "CPU with bfloat16 instructions (AVX-512 BF16 or AMX), else float32; printed at the "
        "start, kept by a resumed run.",
        PRECISION_CHOICES,
    )
    fused_batch_norm: bool = setting(
        True,
        "Batch normalisation in TensorFlow's fused kernel: the same math as Keras's layer in "
        "one pass (a shorter step on CPUs); off: Keras's element-wise ops. Other Keras "
        "backends always use Keras's.",
    )
    concat_tower: bool = setting(
        False,
        "--objective=triplet: run the tower once on the stacked anchors, positives and "
        "negatives instead of three times; batch normalisation then sees all 3N images together.",
    )
    jit_compile: str = setting(
        "auto",
        "XLA compilation of the training step; auto: on with a GPU, off on CPU (slower there).",
        JIT_CHOICES,
    )
    strategy: str = setting(
        "auto",
        "tf.distribute strategy: auto (mirrored with 2+ GPUs), default (one device), mirrored "
        "(every local GPU), multi_worker (the machines of TF_CONFIG, one process each), tpu.",
        STRATEGIES,
    )


# The bases in reverse: a dataclass takes its fields from the last base first, so the
# flags and a run's config.flags keep the declaration order, data first.
@dataclasses.dataclass(frozen=True)
class TrainConfig(
    LossCatalogueSettings,
    SpeedSettings,
    ExportSettings,
    RunSettings,
    LeverSettings,
    OptimizationSettings,
    ObjectiveSettings,
    TowerSettings,
    DataSettings,
):
    """Every setting of a training run; `train_main.py` has one flag per field."""

    def validate(self) -> None:
        """Raises ConfigError (one clear sentence) for any invalid setting.

        Checks everything that can be checked without reading data: each group's own
        checks, then the objective's (`keras_siamese.objectives.check`).
        """
        check_choices(self)
        self.check_data()
        self.check_tower(self.image_shape, self.tower_size)
        check_margin(self.resolved_margin)
        self.check_levers()
        objectives.check(self, self.known_num_seen)
        self.check_loss()
        self.check_optimization()
        if self.freeze_backbone_epochs and self.freeze_backbone_epochs >= self.epochs:
            raise ConfigError(
                f"--freeze_backbone_epochs={self.freeze_backbone_epochs} must be shorter than "
                f"the run's --epochs={self.epochs}: the tower would never fine-tune."
            )
        for name in ("batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name}={getattr(self, name)} must be at least 1.")
        if self.steps_per_epoch < 0:
            raise ConfigError(
                f"--steps_per_epoch={self.steps_per_epoch} must be 0 (one pass over the seen "
                "train images) or positive."
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
    def tower_size(self) -> int:
        """The side of the images the tower computes on: --image_size for a Keras
        Applications backbone, else the data's own."""
        return self.image_size if self.uses_application else self.image_shape[0]

    @classmethod
    def from_recorded(cls, settings: dict) -> TrainConfig:
        """The configuration a run recorded (an export's `metadata.config`); settings it
        predates take their defaults."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in settings.items() if k in names})

    def to_flagfile(self) -> str:
        """The configuration as flagfile lines (`--name=value`), the margin resolved."""
        resolved = dataclasses.replace(self, margin=self.resolved_margin)
        return "\n".join(flag_lines(resolved)) + "\n"


@dataclasses.dataclass(frozen=True)
class TuneConfig:
    """The settings of a hyperparameter search (`train_main.py --mode=tune`).

    Each trial trains with the `TrainConfig` of the search, its margin and
    learning rate (and optionally distance and embedding size) drawn by the
    tuner, on the seen classes minus `val_classes` held-out validation classes.
    """

    TITLE = "Hyperparameter search (--mode=tune)"

    tuner: str = setting(
        "random",
        "keras-tuner search: random, bayesian (Gaussian process), or hyperband (trials follow "
        "from --epochs, the most any trial trains; --max_trials does not apply).",
        TUNERS,
    )
    max_trials: int = setting(10, "Trials of a random or bayesian search.")
    val_classes: int = setting(
        10,
        "Seen classes held out of a search's training; N-way one-shot accuracy on them scores "
        "each trial. Unseen classes are never used in a search.",
    )
    tune_distance: bool = setting(False, "Also search the distance (cosine, euclidean).")
    tune_embedding_dim: bool = setting(
        False, "Also search the dense embedding's size (needs --embedding=dense)."
    )

    def validate(self, train: TrainConfig) -> None:
        """Raises ConfigError (one clear sentence) for an invalid search setting."""
        check_choices(self)
        if self.max_trials < 1:
            raise ConfigError(f"--max_trials={self.max_trials} must be at least 1.")
        num_seen = train.known_num_seen
        if self.val_classes < 2:
            raise ConfigError(
                f"--val_classes={self.val_classes} must be at least 2: one-shot accuracy needs "
                "two classes to choose from."
            )
        if num_seen is not None and self.val_classes > num_seen - 2:
            raise ConfigError(
                f"--val_classes={self.val_classes} leaves fewer than 2 of the {num_seen} seen "
                f"classes of --split={train.split} to train on: hold out at most {num_seen - 2}."
            )
        if train.init_from:
            raise ConfigError(
                "--mode=tune searches from random weights: --init_from is for training runs."
            )
        if train.distill_from:
            raise ConfigError(
                "--mode=tune searches without a teacher: --distill_from is for training runs."
            )
        if train.strategy == "multi_worker":
            raise ConfigError(
                "--mode=tune cannot use --strategy=multi_worker: spread a search over machines "
                "with keras-tuner's chief and workers instead (see docs/guide.md)."
            )
        if self.tune_embedding_dim and train.embedding != "dense":
            raise ConfigError(
                "--tune_embedding_dim needs --embedding=dense: the gap embedding has a fixed size."
            )
        needed = objectives.objective_of(train).classes_per_step(train)
        if num_seen is not None and needed and needed > num_seen - self.val_classes:
            raise ConfigError(
                f"--classes_per_batch={needed} exceeds the "
                f"{num_seen - self.val_classes} classes left to train on after --val_classes="
                f"{self.val_classes}."
            )

    def to_flagfile(self) -> str:
        """The search settings as flagfile lines, after `--mode=tune`."""
        return "\n".join(["--mode=tune", *flag_lines(self)]) + "\n"
