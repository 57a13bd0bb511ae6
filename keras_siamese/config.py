"""Every setting of the programs, declared once and validated before anything is written.

Each setting is a field of a frozen dataclass (`TrainConfig`, `TuneConfig`,
`EvalConfig`) declared with `setting(default, help, choices)`; the absl flags
of `train_main.py` and `eval_main.py` and their parsing are generated from these
declarations (`keras_siamese.cli`), so a run's resolved configuration can be
written as a flagfile that reproduces it. Defaults are the reference project's
protocol.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from keras_siamese import objectives
from keras_siamese.choices import (
    CENTERS,
    DEFAULT_MARGINS,
    DISTANCES,
    EMBEDDINGS,
    JIT_CHOICES,
    LR_SCHEDULES,
    NECKS,
    OPTIMIZERS,
    PAIR_HEADS,
    PRECISION_CHOICES,
    SEMIHARD_RULES,
    STRATEGIES,
    TTAS,
    TUNERS,
    check_depth,
    check_margin,
    check_pool_grid,
)
from keras_siamese.data import splits
from keras_siamese.data.datasets import (
    DATASETS,
    FOLDER,
    SOURCES,
    dataset_info,
    is_own_images,
    is_tfds_name,
)
from keras_siamese.data.folder import FolderOptions
from keras_siamese.errors import ConfigError

# `folder`: a folder of class subfolders of images (keras_siamese.data.folder); any
# `tfds:NAME` is taken too (keras_siamese.data.tfds_source).
DATASET_NAMES = (*DATASETS, FOLDER)
# The settings of how a run reads its own images, which other data sets must leave alone.
OWN_IMAGE_SETTINGS = ("image_size", "channels", "test_fraction", "skip_bad_images")


def setting(default, help_text: str, choices: Sequence[str] | None = None):
    """A declared setting: a dataclass field with its flag's help text and choices.

    The command-line flags, their parsing and the check of every choice are all
    generated from these declarations (`keras_siamese.cli`, `check_choices`).
    """
    if isinstance(default, list):
        default = tuple(default)  # a dataclass default must be immutable
    metadata = {"help": help_text, "choices": tuple(choices) if choices else None}
    return dataclasses.field(default=default, metadata=metadata)


def check_choices(config) -> None:
    """Raises ConfigError when a setting of `config` is not one of its declared choices."""
    for field in dataclasses.fields(config):
        choices = field.metadata.get("choices")
        value = getattr(config, field.name)
        if choices and value is not None and value not in choices:
            raise ConfigError(
                f"--{field.name}={value} is unknown: choose one of {', '.join(choices)}."
            )


def flag_lines(config) -> list[str]:
    """The settings of `config` as flagfile lines (`--name=value`), None ones left out."""
    lines = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if value is None:
            continue
        if isinstance(value, bool):
            lines.append(f"--{field.name}" if value else f"--no{field.name}")
        elif isinstance(value, tuple):
            lines.append(f"--{field.name}={','.join(str(v) for v in value)}")
        else:
            lines.append(f"--{field.name}={value}")
    return lines


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run; `train_main.py` has one flag per field."""

    workdir: str = setting("", "Folder of this run (created if missing).")
    dataset: str = setting(
        "cifar100",
        "Data set: cifar100, mnist, folder (your own images in --data_dir, one subfolder "
        "per class, optionally inside train/ and test/), or tfds:NAME (an image-classification "
        "data set of tensorflow-datasets already prepared under --data_dir).",
    )
    data_dir: str | None = setting(
        None,
        "Folder with the data files (or its parent); the tfds cache folder for --data_source=tfds.",
    )
    data_source: str = setting(
        "auto", "Where the images come from; auto picks from the files in --data_dir.", SOURCES
    )
    image_size: int = setting(
        32,
        "folder, tfds:NAME: the side of the square images the model takes; each is resized "
        "whole to it (32 for the CIFAR-style tower, 64 or 96 for larger photos).",
    )
    channels: int = setting(3, "folder, tfds:NAME: 3 (colour) or 1 (grey), converted.")
    test_fraction: float = setting(
        0.2,
        "folder without train/ and test/, tfds:NAME without a test split: share of each "
        "class's images held out as test images (seeded by --split_seed, at least one).",
    )
    skip_bad_images: bool = setting(
        False,
        "folder: leave out (and count) files that are not readable images; off by default, "
        "so that a damaged file is noticed, not silently lost.",
    )
    split: str = setting(
        "90_10", "SEEN_UNSEEN class counts, e.g. 90_10 or 100_0; must sum to all classes."
    )
    unseen_classes: str = setting(
        "",
        "Hold out these classes, by name (comma-separated), instead of --split's counts: "
        "the classes to recognise one-shot.",
    )
    unseen_classes_file: str = setting(
        "", "A file naming the classes to hold out, one per line (# starts a comment)."
    )
    split_order: str = setting(
        "sequential",
        "sequential: seen = first class indices (the reference); random: seeded partition.",
        splits.SPLIT_ORDERS,
    )
    split_seed: int = setting(0, "Seed of the random split and of the validation carve-out.")
    val_fraction: float = setting(
        0.1, "Fraction of each seen class's train images held out for validation."
    )
    depth: int = setting(56, "ResNet depth, 6n+2 (56, 20, 8).")
    embedding: str = setting(
        "gap",
        "gap: 64-d global average pool (the reference); dense: projection to --embedding_dim.",
        EMBEDDINGS,
    )
    embedding_dim: int = setting(64, "Size of the dense embedding.")
    pool_grid: int = setting(
        1,
        "Average-pool the last feature map over a G x G grid of cells (neighbouring cells "
        "share a row or column when G does not divide the map) and concatenate them: "
        "G*G*64 values that keep where in the image each feature is (what --embedding=dense "
        "projects); 1: the reference's global average pool.",
    )
    neck: str = setting(
        "none",
        "batchnorm: batch-normalise the embedding (no offset), so that it starts centred "
        "instead of in one narrow cone; none: the reference's embedding.",
        NECKS,
    )
    l2_normalize: bool = setting(False, "Scale embeddings to unit length.")
    distance: str = setting("cosine", "Distance of the triplet loss.", DISTANCES)
    margin: float | None = setting(
        None, "Triplet margin; default 0.3 for cosine, 1.0 for (squared) euclidean."
    )
    soft_margin: bool = setting(
        False,
        "batch_hard: softplus(hardest positive - hardest negative) in place of the hinge at "
        "--margin (the soft margin of Hermans et al. 2017); the margin still defines "
        "violating_fraction.",
    )
    selective_contrast: bool = setting(
        False,
        "batch_hard, cosine distance: where an anchor's hardest negative is nearer than its "
        "hardest positive, only push that negative away (its cosine similarity is the loss) "
        "instead of the triplet's pull and push (Xuan et al. 2020).",
    )
    root_distance: bool = setting(
        False,
        "batch_*: the loss compares the square roots of the distances, the plain (not "
        "squared) euclidean distance of Hermans et al. 2017 (under cosine distance "
        "sqrt(1 - cos)); --margin and violating_fraction are in those units. Evaluation "
        "is unchanged: the roots keep the distances' order.",
    )
    semihard_rule: str = setting(
        "window",
        "batch_semihard: which negative each anchor-positive pair takes. window: the closest "
        "one with d(a,p) < d(a,n) < d(a,p) + margin, else the hardest negative (FaceNet's "
        "semi-hard negatives); tensorflow: the closest one with d(a,n) > d(a,p), else the "
        "farthest negative (TensorFlow's triplet_semihard_loss).",
        SEMIHARD_RULES,
    )
    mining_warmup_epochs: int = setting(
        0,
        "batch_hard: mine every violating triplet of the batch (as batch_all does) for this "
        "many epochs first, then only each anchor's hardest; 0: the hardest from the start.",
    )
    objective: str = setting(
        "triplet",
        "triplet: random triplets through the three-input model (the reference); batch_all, "
        "batch_hard, batch_semihard: triplets mined inside P x K batches; contrastive: pairs; "
        "softmax: a linear classifier over the seen classes on the embedding; normsoftmax: a "
        "cosine classifier (see --logit_scale, --class_margin). Classifiers are not exported.",
        objectives.OBJECTIVES,
    )
    classes_per_batch: int = setting(32, "P: classes per batch (batch_* objectives).")
    images_per_class: int = setting(4, "K: images per class (batch_* objectives).")
    classifier_weight: float = setting(
        0.0,
        "batch_*: add this weight times a cosine classifier's loss over the seen classes "
        "(--logit_scale, --class_margin, --label_smoothing) on the same P x K batches; the "
        "classifier is not exported. 0: the mining loss alone.",
    )
    pair_head: str = setting(
        "contrastive",
        "contrastive objective: contrastive loss on the distance, or bce: a sigmoid unit on "
        "|e1 - e2| with binary cross-entropy.",
        PAIR_HEADS,
    )
    logit_scale: float = setting(
        16.0, "normsoftmax: the scale of the cosine logits (the softmax temperature's inverse)."
    )
    class_margin: float = setting(
        0.0,
        "normsoftmax: subtracted from the true class's cosine before scaling (CosFace); 0 or "
        "negative values are allowed.",
    )
    label_smoothing: float = setting(
        0.0, "softmax, normsoftmax: share of each target spread over all classes, in [0, 1)."
    )
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
    seed: int = setting(0, "Seed of weights, triplets and augmentation.")
    init_from: str = setting(
        "",
        "Start the tower from an earlier run's export (its W/export), layer by layer by name, "
        "e.g. a classifier's to mine triplets from; layers it lacks (a --neck) start fresh. "
        "Its training must not have seen this split's unseen classes. Empty: random weights.",
    )
    time_budget_minutes: float = setting(
        0.0,
        "Stop after the first epoch that ends past this many minutes of training (per "
        "process); 0: no budget, --epochs decides.",
    )
    snapshot_every: int = setting(
        0, "Save the tower's weights every N epochs for learning curves (eval_main.py --snapshots)."
    )
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

    @property
    def resolved_margin(self) -> float:
        """The margin, or the reference's default for the distance."""
        return DEFAULT_MARGINS[self.distance] if self.margin is None else self.margin

    def validate(self) -> None:
        """Raises ConfigError (one clear sentence) for any invalid setting.

        Checks everything that can be checked without reading data.
        """
        check_choices(self)
        self._validate_data()
        num_seen = self.known_num_seen
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"--val_fraction={self.val_fraction} must be in [0, 1).")
        check_depth(self.depth)
        if self.embedding_dim < 1:
            raise ConfigError(f"--embedding_dim={self.embedding_dim} must be at least 1.")
        check_pool_grid(self.pool_grid, self.image_shape)
        check_margin(self.resolved_margin)
        objectives.check(self, num_seen)
        self._validate_levers()
        if not self.learning_rate > 0:
            raise ConfigError(f"--learning_rate={self.learning_rate} must be greater than 0.")
        self._validate_optimization()
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
    def image_shape(self) -> tuple[int, int, int]:
        """The shape of the model's input images."""
        if self.reads_its_own_images:
            return (self.image_size, self.image_size, self.channels)
        return dataset_info(self.dataset).image_shape

    @property
    def known_num_seen(self) -> int | None:
        """The number of seen classes where it is known before the data are read."""
        if self.reads_its_own_images or self.holds_out_by_name:
            return None
        return splits.parse_split(self.split, dataset_info(self.dataset).num_classes)[0]

    @property
    def holds_out_by_name(self) -> bool:
        """Whether the unseen classes are named (--unseen_classes or its file)."""
        return bool(self.unseen_classes or self.unseen_classes_file)

    def unseen_class_names(self) -> list[str] | None:
        """The named unseen classes, or None when --split's counts decide.

        Raises:
            ConfigError: when the file of names cannot be read.
        """
        if self.unseen_classes:
            return [n.strip() for n in self.unseen_classes.split(",") if n.strip()]
        if not self.unseen_classes_file:
            return None
        try:
            with open(self.unseen_classes_file, encoding="utf-8") as f:
                lines = [line.split("#", 1)[0].strip() for line in f]
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(
                f"--unseen_classes_file={self.unseen_classes_file} cannot be read ({e})."
            ) from None
        return [line for line in lines if line]

    def folder_options(self) -> FolderOptions:
        """How `--dataset=folder` reads its images."""
        return FolderOptions(
            image_size=self.image_size,
            channels=self.channels,
            test_fraction=self.test_fraction,
            seed=self.split_seed,
            skip_bad_images=self.skip_bad_images,
        )

    @property
    def reads_its_own_images(self) -> bool:
        """Whether images are made to --image_size and --channels (a folder, a tfds set)."""
        return is_own_images(self.dataset)

    @classmethod
    def from_recorded(cls, settings: dict) -> TrainConfig:
        """The configuration a run recorded (an export's `metadata.config`); settings it
        predates take their defaults."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in settings.items() if k in names})

    def _validate_data(self) -> None:
        if self.dataset not in DATASET_NAMES and not is_tfds_name(self.dataset):
            raise ConfigError(
                f"--dataset={self.dataset} is unknown: choose one of "
                f"{', '.join(DATASET_NAMES)}, or tfds:NAME."
            )
        if self.unseen_classes and self.unseen_classes_file:
            raise ConfigError("Give --unseen_classes or --unseen_classes_file, not both.")
        if self.holds_out_by_name and not self.unseen_class_names():
            raise ConfigError("--unseen_classes names no class.")
        if not self.reads_its_own_images:
            defaults = {f.name: f.default for f in dataclasses.fields(self)}
            for name in OWN_IMAGE_SETTINGS:
                if getattr(self, name) != defaults[name]:
                    raise ConfigError(
                        f"--{name} is for --dataset=folder or tfds:NAME; {self.dataset} images "
                        "have a fixed size and test split."
                    )
            return
        if self.dataset == FOLDER and not self.data_dir:
            raise ConfigError("--dataset=folder needs --data_dir: the folder of class folders.")
        if not 8 <= self.image_size <= 512:
            raise ConfigError(f"--image_size={self.image_size} must be from 8 to 512 pixels.")
        if self.channels not in (1, 3):
            raise ConfigError(f"--channels={self.channels} must be 1 (grey) or 3 (colour).")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"--test_fraction={self.test_fraction} must be between 0 and 1.")

    def _validate_optimization(self) -> None:
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

    def _validate_levers(self) -> None:
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"--ema_decay={self.ema_decay} must be in [0, 1).")
        if not 0.0 < self.distill_weight <= 1.0:
            raise ConfigError(f"--distill_weight={self.distill_weight} must be in (0, 1].")
        if not 0.0 < self.distill_temperature < math.inf:
            raise ConfigError(
                f"--distill_temperature={self.distill_temperature} must be a positive number."
            )
        if not self.logit_scale > 0:
            raise ConfigError(f"--logit_scale={self.logit_scale} must be greater than 0.")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"--label_smoothing={self.label_smoothing} must be in [0, 1).")

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


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """The settings of `eval_main.py`: an export's evaluation, or the results report."""

    workdir: str = setting("", "Run folder whose export/ is evaluated.")
    export: str = setting("", "Export folder to evaluate; default WORKDIR/export.")
    data_dir: str | None = setting(
        None,
        "Folder with the data set the run was trained on (or its parent); default: training's.",
    )
    data_source: str | None = setting(
        None, "Where the images come from; default: as in training.", SOURCES
    )
    seed: int = setting(0, "Seed of the sampled triplets, pairs, supports and episodes.")
    ways: int = setting(5, "Classes per episode of the episodic evaluation.")
    shots: tuple[int, ...] = setting((1, 5), "Support images per class, one result each.")
    batch_size: int = setting(500, "Images per forward pass.")
    snapshots: bool = setting(
        False,
        "Also evaluate every snapshot of the run (--snapshot_every in training): "
        "learning_curve.json.",
    )
    tta: str = setting(
        "none",
        "Also report the metrics with flip-averaged embeddings (a named extra row).",
        TTAS,
    )
    center: str = setting(
        "none",
        "Also report the metrics with embeddings centred on the seen classes' train mean "
        "(SimpleShot; a named extra row, combined with --tta when both are given).",
        CENTERS,
    )
    projector: bool = setting(
        False,
        "Also write the unseen classes' test embeddings, class names and images to "
        "WORKDIR/logs for TensorBoard's embedding projector.",
    )
    projector_seen: bool = setting(False, "With --projector: the seen classes' test images too.")
    report: bool = setting(False, "Write the results report of every run instead.")
    runs_dir: str = setting(
        "runs",
        "With --report: folder searched for eval.json files and for run records "
        "(metrics.json beside config.flags, as RECIPE/RUN/ for the per-split table).",
    )
    out: str = setting("docs/results", "With --report: folder of the report.")

    def validate(self) -> None:
        """Raises ConfigError (one clear sentence) for an invalid setting."""
        check_choices(self)
        if self.report:
            return
        if not self.workdir:
            raise ConfigError("--workdir is required (or --report to collect evaluations).")
        if self.ways < 2:
            raise ConfigError(f"--ways={self.ways} must be at least 2.")
        if not self.shots or min(self.shots) < 1:
            raise ConfigError(
                f"--shots={','.join(str(s) for s in self.shots)} must be at least 1 each."
            )
        if self.batch_size < 1:
            raise ConfigError(f"--batch_size={self.batch_size} must be at least 1.")
        if self.projector_seen and not self.projector:
            raise ConfigError("--projector_seen adds to --projector: pass both.")
