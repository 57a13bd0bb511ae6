"""Hyperparameter search with keras-tuner: margin and learning rate, judged on held-out classes.

A search trains each trial on the seen classes minus `--val_classes` held-out
classes and scores it by N-way one-shot accuracy on those held-out classes,
computed by the evaluation protocol's own code after every epoch. The test
images and the unseen classes are never part of a search.

Distributed search is keras-tuner's: one chief process runs the oracle and N
workers run trials, all started with the same command and told their role by
KERASTUNER_TUNER_ID (`chief`, `tuner0`, ...), KERASTUNER_ORACLE_IP and
KERASTUNER_ORACLE_PORT.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import sys

import keras
import keras_tuner
import numpy as np

from keras_siamese import files, objectives
from keras_siamese import workdir as wd
from keras_siamese.choices import DEFAULT_MARGINS, DISTANCES
from keras_siamese.config import TrainConfig, TuneConfig
from keras_siamese.data import splits
from keras_siamese.data.datasets import ImageDataset
from keras_siamese.data.sources import load_dataset
from keras_siamese.model import test_time
from keras_siamese.serving import export
from keras_siamese.training import build, callbacks, devices, trainer

# The score keras-tuner maximises: each trial's one-shot accuracy on the held-out classes.
TRIAL_SCORE = callbacks.ONESHOT_LOG
MARGIN_RANGES = {"cosine": (0.05, 1.0), "euclidean": (0.1, 2.0)}
LEARNING_RATE_RANGE = (1e-4, 1e-2)
EMBEDDING_DIMS = (32, 64, 128, 256)
HYPERBAND_FACTOR = 3


def _clamp(value: float, bounds: tuple[float, float]) -> float:
    return min(max(value, bounds[0]), bounds[1])


def trial_config(
    base: TrainConfig, tune: TuneConfig, hp: keras_tuner.HyperParameters
) -> TrainConfig:
    """The training settings of one trial: `base` with the values `hp` holds or draws.

    Registers the search space in `hp` on first use; the margin only where the
    loss uses it (not softmax, normsoftmax, the bce pair head or a soft margin).
    With `--tune_distance` each distance has its own margin range (`margin_cosine`,
    `margin_euclidean`), active only when that distance is chosen.
    """
    distance = base.distance
    if tune.tune_distance:
        distance = hp.Choice("distance", list(DISTANCES), default=base.distance)
    bounds = MARGIN_RANGES[distance]
    margin_default = (
        base.resolved_margin if distance == base.distance else DEFAULT_MARGINS[distance]
    )
    if not objectives.objective_of(base).uses_margin(base):
        margin = margin_default  # the loss ignores it: searching it would waste trials
    elif tune.tune_distance:
        with hp.conditional_scope("distance", [distance]):
            margin = hp.Float(f"margin_{distance}", *bounds, default=_clamp(margin_default, bounds))
    else:
        margin = hp.Float("margin", *bounds, default=_clamp(margin_default, bounds))
    learning_rate = hp.Float(
        "learning_rate",
        *LEARNING_RATE_RANGE,
        sampling="log",
        default=_clamp(base.learning_rate, LEARNING_RATE_RANGE),
    )
    embedding_dim = base.embedding_dim
    if tune.tune_embedding_dim:
        default = base.embedding_dim if base.embedding_dim in EMBEDDING_DIMS else 64
        embedding_dim = hp.Choice("embedding_dim", list(EMBEDDING_DIMS), default=default)
    return dataclasses.replace(
        base,
        distance=distance,
        margin=float(margin),
        learning_rate=float(learning_rate),
        embedding_dim=int(embedding_dim),
    )


def tower_of(model: keras.Model) -> keras.Model:
    """The embedding tower nested in a training model."""
    towers = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(towers) != 1:
        raise ValueError(f"expected one nested tower in {model.name}, found {len(towers)}")
    return towers[0]


class SiameseHyperModel(keras_tuner.HyperModel):
    """Builds each trial's training model with the training code itself.

    Args:
        base: the search's training settings; each trial overrides the tuned ones.
        tune: the search settings.
        dataset: the data set (only its shape and normalisation are used by build).
        val_images, val_labels: the held-out classes' images that score a trial.
        num_classes: the classes a trial trains on (for the classification objectives).
        steps_per_epoch: a trial's steps per epoch (for a learning-rate schedule).
        centring_images: the trial's train images whose mean embedding centres
            the scored embeddings under `--center=seen`.
    """

    def __init__(
        self,
        base: TrainConfig,
        tune: TuneConfig,
        dataset: ImageDataset,
        val_images: np.ndarray,
        val_labels: np.ndarray,
        num_classes: int | None = None,
        steps_per_epoch: int | None = None,
        centring_images: np.ndarray | None = None,
    ):
        super().__init__(name="siamese")
        self.centring_images = centring_images
        self.num_classes = num_classes
        self.steps_per_epoch = steps_per_epoch
        self.base = base
        self.tune = tune
        self.dataset = dataset
        self.val_images = val_images
        self.val_labels = val_labels

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        config = trial_config(self.base, self.tune, hp)
        # Every trial starts from the same seed: trials differ by their settings only.
        keras.utils.set_random_seed(config.seed)
        with build.precision_policy(devices.resolve_precision(config.precision)[0]):
            tower = build.build_tower(config, self.dataset.info)
            return build.build_training_model(
                config,
                tower,
                devices.resolve_jit_compile(config.jit_compile),
                num_classes=self.num_classes,
                steps_per_epoch=self.steps_per_epoch,
            )

    def fit(self, hp: keras_tuner.HyperParameters, model: keras.Model, *args, **kwargs):
        """model.fit(*args, **kwargs), with the objective's callback first in line."""
        config = trial_config(self.base, self.tune, hp)
        objective = callbacks.OneShotObjective(
            tower_of(model),
            self.val_images,
            self.val_labels,
            config.distance,
            tta=config.tta,
            center=config.center,
            centring_images=self.centring_images,
        )
        # Before the tuner's own callbacks, which read the objective from the logs.
        kwargs["callbacks"] = [objective, *kwargs.get("callbacks", [])]
        return model.fit(*args, **kwargs)


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """What a finished search produced (on the chief, or a single process)."""

    rows: list[dict]
    best_config: TrainConfig | None
    best_flags: str | None


def is_distributed_worker() -> bool:
    """Whether this process is one of the workers of a distributed search."""
    return "KERASTUNER_ORACLE_IP" in os.environ and not is_oracle_chief()


def is_oracle_chief() -> bool:
    """Whether this process is the chief (oracle) of a distributed search."""
    return "chief" in os.environ.get("KERASTUNER_TUNER_ID", "") and (
        "KERASTUNER_ORACLE_IP" in os.environ
    )


def make_tuner(
    hypermodel: SiameseHyperModel, base: TrainConfig, tune: TuneConfig, directory: str
) -> keras_tuner.Tuner:
    """The keras-tuner tuner `tune.tuner`, resuming any search state in `directory`."""
    common = dict(
        hypermodel=hypermodel,
        objective=keras_tuner.Objective(TRIAL_SCORE, direction="max"),
        # keras-tuner reads a seed of 0 as "no seed" and picks a random one.
        seed=base.seed + 1,
        directory=os.path.dirname(directory) or ".",
        project_name=os.path.basename(directory),
        overwrite=False,
        # Each trial's model is built in the strategy's scope, as in training.
        distribution_strategy=devices.make_strategy(base.strategy),
    )
    if tune.tuner == "random":
        tuner = keras_tuner.RandomSearch(max_trials=tune.max_trials, **common)
    elif tune.tuner == "bayesian":
        tuner = keras_tuner.BayesianOptimization(max_trials=tune.max_trials, **common)
    else:
        tuner = keras_tuner.Hyperband(max_epochs=base.epochs, factor=HYPERBAND_FACTOR, **common)
    # keras-tuner resumes from the state file of this process's tuner id, so a chief taking
    # over a search begun in one process (tuner0.json) would start it afresh and run its
    # finished trials again; its oracle's own file says what is done.
    if is_oracle_chief():
        own_state = os.path.join(directory, f"{tuner.tuner_id}.json")
        if os.path.exists(os.path.join(directory, "oracle.json")) and not os.path.exists(own_state):
            tuner.oracle.reload()
    return tuner


def trial_rows(tuner: keras_tuner.Tuner, base: TrainConfig, tune: TuneConfig) -> list[dict]:
    """One row per trial, in the order they were created: settings, status, objective."""
    rows = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        config = trial_config(base, tune, trial.hyperparameters.copy())
        row = {
            "trial": trial_id,
            "status": trial.status,
            "distance": config.distance,
            "margin": round(config.margin, 6),
            "learning_rate": float(f"{config.learning_rate:.6g}"),
        }
        if tune.tune_embedding_dim:
            row["embedding_dim"] = config.embedding_dim
        epochs = trial.hyperparameters.values.get("tuner/epochs")
        if epochs is not None:
            row["epochs"] = epochs
        row[TRIAL_SCORE] = None if trial.score is None else round(float(trial.score), 4)
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """The trial rows as an aligned text table."""
    if not rows:
        return "No trials."
    columns = list(rows[0])
    cells = [[("-" if row.get(c) is None else str(row.get(c))) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def _rows_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["trial"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def best_flagfile(config: TrainConfig, score: float, trial_id: str, tune: TuneConfig) -> str:
    """A flagfile that trains with the best trial's settings (no --workdir or --data_dir)."""
    lines = [
        f"# Best of a {tune.tuner} search: trial {trial_id}, {tune.val_classes}-way one-shot "
        f"accuracy {score:.4f} on held-out classes.",
        "# Training with it uses every seen class, the held-out ones included; raise --epochs",
        "# for a full run.",
    ]
    lines += [
        line
        for line in config.to_flagfile().splitlines()
        if not line.startswith(("--workdir=", "--data_dir="))
    ]
    return "\n".join(lines) + "\n"


def run_search(
    base: TrainConfig,
    tune: TuneConfig,
    dataset: ImageDataset | None = None,
    overwrite: bool = False,
    verbose: int | None = None,
) -> SearchResult:
    """Runs (or resumes) the search of `tune` around `base` in `base.workdir`.

    Rerunning the same settings after an interruption resumes: finished trials
    are kept, the interrupted one runs again. On the chief of a distributed
    search this serves the oracle until the workers are done.

    Returns:
        The trials and the best trial's settings; workers return no table.

    Raises:
        UserError: for invalid settings or data, before anything is written.
    """
    base.validate()
    tune.validate(base)
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    if dataset is None:
        dataset = load_dataset(base.dataset, base.data_dir, base.data_source, base.folder_options())
    split = splits.split_of(
        base.split,
        dataset.class_names,
        base.split_order,
        base.split_seed,
        base.unseen_class_names(),
    )
    train_split, held_out = splits.hold_out(split, tune.val_classes, seed=base.split_seed)
    part = splits.partition(dataset, train_split, base.val_fraction, seed=base.split_seed)
    steps = trainer.steps_per_epoch(base, len(part.train_labels))
    objective_mask = np.isin(dataset.train_labels, held_out)

    flagfile = base.to_flagfile() + tune.to_flagfile()
    workdir = base.workdir
    wd.prepare(workdir, flagfile, overwrite=overwrite)
    files.write_json_atomic(os.path.join(workdir, "versions.json"), export.package_versions())
    directory = os.path.join(workdir, wd.SEARCH_DIR)

    hypermodel = SiameseHyperModel(
        base,
        tune,
        dataset,
        dataset.train_images[objective_mask],
        dataset.train_labels[objective_mask],
        num_classes=len(train_split.seen),
        steps_per_epoch=steps,
        centring_images=part.train_images[test_time.centring_sample(part.train_labels)],
    )
    tuner = make_tuner(hypermodel, base, tune, directory)
    train_ds, val_ds = objectives.objective_of(base).tf_datasets(base, part, steps, first_epoch=0)
    fit_callbacks: list[keras.callbacks.Callback] = [keras.callbacks.TerminateOnNaN()]
    if base.time_budget_minutes:
        fit_callbacks.append(callbacks.TimeBudget(base.time_budget_minutes))
    names = ", ".join(dataset.class_names[c] for c in held_out)
    print(
        f"Searching with the {tune.tuner} tuner on {base.dataset} split {split.name}: "
        f"{len(part.train_labels)} train images of {len(train_split.seen)} classes, "
        f"{len(held_out)} held-out classes score each trial ({names}).",
        flush=True,
    )
    tuner.search(
        train_ds,
        epochs=base.epochs,
        steps_per_epoch=steps,
        validation_data=val_ds,
        callbacks=fit_callbacks,
        shuffle=False,
        verbose=verbose,
    )
    if is_distributed_worker():
        return SearchResult(rows=[], best_config=None, best_flags=None)
    return _record_search(tuner, base, tune)


def _record_search(tuner: keras_tuner.Tuner, base: TrainConfig, tune: TuneConfig) -> SearchResult:
    """Writes the finished search's trials table and its best trial's flagfile."""
    workdir = base.workdir
    rows = trial_rows(tuner, base, tune)
    files.write_text_atomic(os.path.join(workdir, wd.TRIALS_FILE), _rows_csv(rows))
    best = tuner.oracle.get_best_trials(1)
    if not best or best[0].score is None:
        return SearchResult(rows=rows, best_config=None, best_flags=None)
    best_config = dataclasses.replace(
        trial_config(base, tune, best[0].hyperparameters.copy()), workdir=""
    )
    best_path = os.path.join(workdir, wd.BEST_FLAGS)
    files.write_text_atomic(
        best_path, best_flagfile(best_config, float(best[0].score), best[0].trial_id, tune)
    )
    return SearchResult(rows=rows, best_config=best_config, best_flags=best_path)
