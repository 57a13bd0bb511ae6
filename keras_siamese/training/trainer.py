"""One training run, end to end: data, split, model, fit, evaluation, export.

The run folder's layout is described in `keras_siamese.workdir`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import sys
import time
from typing import TYPE_CHECKING

import keras

from keras_siamese import files, objectives
from keras_siamese import workdir as wd
from keras_siamese.choices import EXPORT_PRECISIONS
from keras_siamese.config import TrainConfig
from keras_siamese.data import splits
from keras_siamese.data.datasets import ImageDataset
from keras_siamese.data.sources import load_dataset
from keras_siamese.errors import ConfigError, UserError
from keras_siamese.evaluation import protocol
from keras_siamese.evaluation.results import Budget, Metrics
from keras_siamese.model import backbones, test_time
from keras_siamese.serving import export
from keras_siamese.serving.metadata import ExportMetadata
from keras_siamese.training import build, devices, generations, teacher, warm_start
from keras_siamese.training.callbacks import (
    BestWeights,
    EpochSnapshots,
    RunEstimate,
    TimeBudget,
)

if TYPE_CHECKING:
    import tensorflow as tf


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What a finished run produced."""

    metrics: Metrics | None  # None on the workers of a multi-worker run that are not chief
    export_dir: str
    is_chief: bool = True  # a multi-worker run's other workers evaluate and export nothing


def _run_precision(config: TrainConfig) -> tuple[str, str]:
    """The dtype policy of this run and why: a resumed `auto` run keeps its first choice."""
    if config.precision == "auto":
        recorded = wd.recorded_precision(config.workdir, config.to_flagfile())
        if recorded:
            return recorded, "auto, as this run chose when it started"
    return devices.resolve_precision(config.precision)


def steps_per_epoch(config: TrainConfig, num_train_images: int) -> int:
    """`--steps_per_epoch`, or one pass over the train images when it is 0."""
    if config.steps_per_epoch:
        return config.steps_per_epoch
    per_step = objectives.objective_of(config).samples_per_step(config)
    steps = num_train_images // per_step
    if steps < 1:
        raise ConfigError(
            f"A batch of {per_step} exceeds the {num_train_images} seen train images: use "
            "smaller batches or set --steps_per_epoch."
        )
    return steps


def best_weights_monitor(config: TrainConfig, has_validation: bool) -> str:
    """The logged value whose lowest epoch gives the run's best (exported) weights: the
    objective's monitored value, on the validation images where there are some."""
    name = objectives.objective_of(config).monitor(config)
    return f"val_{name}" if has_validation else name


def _callbacks(
    config: TrainConfig, tower: keras.Model, has_validation: bool, steps_left: int
) -> list[keras.callbacks.Callback]:
    workdir = config.workdir
    objective = objectives.objective_of(config)
    callbacks = [
        RunEstimate(steps_left, objective.images_per_step(config)),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(os.path.join(workdir, wd.HISTORY_FILE), append=True),
    ]
    if _on_tensorflow():  # TensorBoard's event files are written by TensorFlow
        callbacks.append(
            keras.callbacks.TensorBoard(os.path.join(workdir, wd.LOGS_DIR), write_graph=False)
        )
    if not config.ema_decay:
        # With a weight average, the average at the end is what the run keeps.
        callbacks.append(
            BestWeights(
                os.path.join(workdir, wd.BEST_WEIGHTS),
                best_weights_monitor(config, has_validation),
                first_epoch=objective.first_monitored_epoch(config),
            )
        )
    if config.snapshot_every:
        callbacks.append(
            EpochSnapshots(tower, os.path.join(workdir, wd.SNAPSHOTS_DIR), config.snapshot_every)
        )
    if config.time_budget_minutes:
        callbacks.append(TimeBudget(config.time_budget_minutes))
    # The backup comes last: an epoch counts as done only once it is logged.
    callbacks.append(keras.callbacks.BackupAndRestore(os.path.join(workdir, wd.BACKUP_DIR)))
    return callbacks


def _fit_keras(
    config: TrainConfig,
    part: splits.Partition,
    steps: int,
    first_epoch: int,
    model: keras.Model,
    tower: keras.Model,
    verbose: int,
) -> list[float]:
    """model.fit on one machine (default or mirrored strategy); the epochs' losses."""
    # A resumed run continues with the batches of the epoch it stopped at.
    objective = objectives.objective_of(config)
    validation_batch_size = None
    if _on_tensorflow():
        train, validation = objective.tf_datasets(config, part, steps, first_epoch)
    else:
        train, validation, validation_batch_size = objective.numpy_inputs(
            config, part, steps, first_epoch
        )
    history = model.fit(
        train,
        epochs=config.epochs,
        steps_per_epoch=steps,
        validation_data=validation,
        validation_batch_size=validation_batch_size,
        callbacks=_callbacks(
            config, tower, validation is not None, (config.epochs - first_epoch) * steps
        ),
        shuffle=False,  # the batches are drawn at random already
        verbose=verbose,
    )
    return history.history.get("loss", [])


def _on_tensorflow() -> bool:
    return keras.backend.backend() == "tensorflow"


def _backend_note() -> str:
    """`, with Keras's jax backend` where it is not TensorFlow; else nothing."""
    return "" if _on_tensorflow() else f", with Keras's {keras.backend.backend()} backend"


def _check_replica_split(config: TrainConfig, replicas: int) -> None:
    """Each replica of a multi-worker run takes an equal share of every batch."""
    name, value = objectives.objective_of(config).replica_unit(config)
    if value % replicas:
        whole = ": each takes whole classes" if name == "classes_per_batch" else ""
        raise ConfigError(
            f"--{name}={value} must be a multiple of the {replicas} replicas of "
            f"--strategy=multi_worker{whole}."
        )


def _fit_multi_worker(
    config: TrainConfig,
    part: splits.Partition,
    steps: int,
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    chief: bool,
    verbose: int,
) -> tuple[int, list[float]]:
    """The multi-worker loop; each input pipeline draws its own seeded batches."""
    from keras_siamese.training import multi_worker

    workdir = config.workdir
    replicas = strategy.num_replicas_in_sync
    objective = objectives.objective_of(config)

    def make_dataset(context: tf.distribute.InputContext, first_epoch: int, skip: int):
        share = objective.replica_share(config, replicas, context.input_pipeline_id)
        return objective.tf_datasets(share, part, steps, first_epoch)[0].skip(skip)

    def log_epoch(epoch: int, loss: float) -> None:
        if chief:
            wd.append_history(workdir, epoch, {"loss": loss})

    return multi_worker.fit(
        model,
        strategy,
        make_dataset,
        config.epochs,
        steps,
        os.path.join(workdir, wd.BACKUP_DIR),
        on_epoch_end=log_epoch,
        time_budget_seconds=60.0 * config.time_budget_minutes,
        verbose=verbose,
    )


def train_and_evaluate(
    config: TrainConfig,
    dataset: ImageDataset | None = None,
    overwrite: bool = False,
    verbose: int | None = None,
) -> RunResult:
    """Trains the Siamese model of `config`, evaluates it and exports the tower.

    Rerunning the same config in the same workdir after an interruption
    resumes from the last completed epoch.

    Args:
        config: the run's settings.
        dataset: the data set of `config`, if the caller has loaded it already.
        overwrite: replace a run of another configuration found in the workdir.
        verbose: Keras verbosity; default: a progress bar on a terminal, else
            one line per epoch.

    Raises:
        UserError: for invalid settings or data, before anything is written.
        TrainingDiverged: when the loss became NaN; nothing is exported then.
    """
    if config.generations > 1:
        _train_earlier_generations(config, dataset, overwrite, verbose)
    try:
        return _train_and_evaluate(config, dataset, overwrite, verbose)
    finally:
        wd.release(config.workdir)


def _train_earlier_generations(
    config: TrainConfig, dataset: ImageDataset | None, overwrite: bool, verbose: int | None
) -> None:
    """Trains the generations before the last, each in its own folder, skipping finished ones.

    Every generation's settings and folder are checked before any of them trains.
    """
    config.validate()
    earlier = generations.earlier_generations(config)
    for settings in earlier:
        settings.validate()
        wd.check(settings.workdir, settings.to_flagfile(), overwrite)
    wd.check(config.workdir, config.to_flagfile(), overwrite)
    total = config.generations
    for number, settings in enumerate(earlier, 1):
        if wd.finished(settings.workdir, settings.to_flagfile()):
            print(f"Generation {number} of {total} is finished: {settings.workdir}.", flush=True)
            continue
        print(f"Generation {number} of {total}, in {settings.workdir}:", flush=True)
        train_and_evaluate(settings, dataset, overwrite, verbose)
    print(f"Generation {total} of {total}, in {config.workdir}:", flush=True)


@dataclasses.dataclass
class _Run:
    """What a run's phases hand on: its data, its devices and its models."""

    dataset: ImageDataset
    part: splits.Partition
    steps: int
    strategy: tf.distribute.Strategy | None = None
    chief: bool = True
    precision: str = "float32"
    precision_reason: str = ""
    tower: keras.Model | None = None
    model: keras.Model | None = None
    first_generation: teacher.Teacher | None = None
    fresh_layers: list[str] = dataclasses.field(default_factory=list)
    first_epoch: int = 0

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync if self.strategy else 1


def _train_and_evaluate(
    config: TrainConfig, dataset: ImageDataset | None, overwrite: bool, verbose: int | None
) -> RunResult:
    config.validate()
    if not _on_tensorflow():
        objectives.check_backend(config, keras.backend.backend())
        devices.check_strategy_backend(config.strategy, keras.backend.backend())
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    run = _plan(config, dataset)
    _build(config, run)
    # Everything is validated: only now does the run touch the disk.
    _prepare_workdir(config, run, overwrite)
    _announce(config, run)
    start = time.time()
    if _is_multi_worker(config):
        run.first_epoch, epoch_losses = _fit_multi_worker(
            config, run.part, run.steps, run.model, run.strategy, run.chief, verbose
        )
    else:
        epoch_losses = _fit_keras(
            config, run.part, run.steps, run.first_epoch, run.model, run.tower, verbose
        )
    train_seconds = time.time() - start
    _check_finite(config.workdir, epoch_losses, run.first_epoch)
    if _is_multi_worker(config):
        _finish_multi_worker(config, run)
        if not run.chief:
            return RunResult(metrics=None, export_dir="", is_chief=False)
    best_path = os.path.join(config.workdir, wd.BEST_WEIGHTS)
    if os.path.exists(best_path):
        run.model.load_weights(best_path)
    epochs = run.first_epoch + len(epoch_losses)
    return _evaluate_and_export(config, run, epochs, train_seconds, verbose)


def _is_multi_worker(config: TrainConfig) -> bool:
    return config.strategy == "multi_worker"


def _plan(config: TrainConfig, dataset: ImageDataset | None) -> _Run:
    """The run's data: the data set, its class split and partition, and the epoch's steps."""
    if dataset is None:
        dataset = load_dataset(
            config.dataset, config.data_dir, config.data_source, config.folder_options()
        )
    split = splits.split_of(
        config.split,
        dataset.class_names,
        config.split_order,
        config.split_seed,
        config.unseen_class_names(),
    )
    splits.check_unseen_test_images(split, dataset)
    part = splits.partition(dataset, split, config.val_fraction, seed=config.split_seed)
    return _Run(dataset, part, steps_per_epoch(config, len(part.train_labels)))


def _build(config: TrainConfig, run: _Run) -> None:
    """The run's strategy, precision, tower and compiled model (and a teacher's, a warm
    start's weights); nothing is written."""
    # Created before any other TensorFlow work: a multi-worker strategy must come first.
    run.strategy = devices.make_strategy(config.strategy) if _on_tensorflow() else None
    objectives.objective_of(config).check_replicas(config, run.replicas)
    if _is_multi_worker(config):
        from keras_siamese.training import multi_worker

        _check_replica_split(config, run.replicas)
        run.chief = multi_worker.is_chief(run.strategy)
    split = run.part.split
    source = None
    if config.init_from:
        source = warm_start.load_source(config.init_from, config.dataset, split)
    run.precision, run.precision_reason = _run_precision(config)
    keras.utils.set_random_seed(config.seed)
    # The batch is global: each replica trains on its share.
    scope = run.strategy.scope() if run.strategy else contextlib.nullcontext()
    with scope, build.precision_policy(run.precision):
        # The teacher's variables, like the model's, belong to the strategy.
        teacher_dir = generations.teacher_folder(config)
        if teacher_dir:
            run.first_generation = teacher.load_teacher(teacher_dir, config.dataset, split)
        run.tower = build.build_tower(config, run.dataset.info)
        run.model = build.build_training_model(
            config,
            run.tower,
            devices.resolve_jit_compile(config.jit_compile),
            num_classes=len(split.seen),
            steps_per_epoch=run.steps,
            teacher=run.first_generation,
        )
    if source is not None:  # a resumed run's backup replaces these weights again
        flag = f"--init_from={config.init_from}"
        run.fresh_layers = warm_start.copy_weights(source, run.tower, flag)


def _prepare_workdir(config: TrainConfig, run: _Run, overwrite: bool) -> None:
    """Claims the run folder, records the run, and finds the epoch to resume at."""
    workdir = config.workdir
    multi = _is_multi_worker(config)
    # The workers of a multi-worker run share the folder: only a lone process locks it.
    wd.prepare(workdir, config.to_flagfile(), overwrite=overwrite, exclusive=not multi)
    files.write_json_atomic(os.path.join(workdir, "versions.json"), export.package_versions())
    files.write_json_atomic(
        os.path.join(workdir, wd.PRECISION_FILE),
        {"precision": run.precision, "reason": run.precision_reason},
    )
    run.first_epoch = 0 if multi else wd.resume_epoch(workdir)
    if not multi:
        wd.trim_history(workdir, run.first_epoch)
    if run.first_epoch == 0:
        # A fresh start must not compare against the best loss of an earlier run.
        for entry in (os.path.dirname(wd.BEST_WEIGHTS), wd.SNAPSHOTS_DIR):
            shutil.rmtree(os.path.join(workdir, entry), ignore_errors=True)


def _announce(config: TrainConfig, run: _Run) -> None:
    """Prints what the run starts from and what it trains."""
    if config.init_from:
        fresh = run.fresh_layers
        print(
            f"The tower starts from the weights of {config.init_from}"
            + (f", except {', '.join(fresh)} (new)." if fresh else "."),
            flush=True,
        )
    if run.first_generation:
        print(
            f"Distilling from {generations.teacher_folder(config)} (its training spent "
            f"{run.first_generation.images:,} images): weight {config.distill_weight}, "
            f"temperature {config.distill_temperature}.",
            flush=True,
        )
    if config.precision == "auto":
        print(f"Precision: {run.precision} ({run.precision_reason}).", flush=True)
    warning = devices.precision_warning(run.precision)
    if warning:
        print(warning, flush=True)
    resuming = f", resuming at epoch {run.first_epoch + 1}" if run.first_epoch else ""
    split, part = run.part.split, run.part
    images = objectives.objective_of(config).images_per_step(config)
    print(
        f"Training {run.tower.name} ({run.tower.count_params():,} parameters) on "
        f"{config.dataset} split {split.name}: {len(part.train_labels)} train images of "
        f"{len(split.seen)} seen classes with --objective={config.objective}, "
        f"{config.epochs} epoch(s) x {run.steps} step(s) of {images} images on "
        f"{run.replicas} replica(s){_backend_note()}{resuming}.",
        flush=True,
    )


def _check_finite(workdir: str, epoch_losses: list[float], first_epoch: int) -> None:
    """Raises TrainingDiverged when an epoch's loss is not finite; the backup is removed."""
    bad = [i for i, v in enumerate(epoch_losses) if not math.isfinite(v)]
    if not bad:
        return
    # The backup holds the diverged weights: resuming from it would be useless.
    shutil.rmtree(os.path.join(workdir, wd.BACKUP_DIR), ignore_errors=True)
    best_path = os.path.join(workdir, wd.BEST_WEIGHTS)
    kept = (
        f"the last good weights are in {best_path}"
        if os.path.exists(best_path)
        else "no epoch finished with a finite loss"
    )
    raise TrainingDiverged(
        f"The training loss became {epoch_losses[bad[0]]} in epoch {first_epoch + bad[0] + 1}: "
        f"lower --learning_rate and rerun with --overwrite; {kept}, and no export was written."
    )


def _finish_multi_worker(config: TrainConfig, run: _Run) -> None:
    """Ends a multi-worker fit: the weight average written in, the backup removed, and on
    the chief a copy of the tower outside the strategy (the other workers have left)."""
    from keras_siamese.training import multi_worker

    # Keras's fit ends by writing the weight average into the model; this loop must too.
    run.model.optimizer.finalize_variable_values(run.model.trainable_variables)
    multi_worker.remove_backup(os.path.join(config.workdir, wd.BACKUP_DIR), run.strategy)
    if not run.chief:
        return
    trained = run.tower
    with build.precision_policy(run.precision):
        run.tower = build.build_tower(config, run.dataset.info)
    run.tower.set_weights(trained.get_weights())


def _evaluate_and_export(
    config: TrainConfig, run: _Run, epochs: int, train_seconds: float, verbose: int
) -> RunResult:
    """Evaluates the tower by the protocol, writes metrics.json and exports the tower."""
    workdir, part = config.workdir, run.part
    # What is measured is what is exported: the tower in the export's precision.
    tower = _export_tower(config, run)
    # The protocol's own seed, not the training seed: runs are compared on the same samples.
    embeddings = protocol.embed_partition(tower, part, verbose=verbose)
    budget = Budget(
        objective=config.objective,
        epochs=epochs,
        steps_per_epoch=run.steps,
        batch_size=config.batch_size,
        images_per_step=objectives.objective_of(config).images_per_step(config),
        train_seconds=round(train_seconds, 1),
        init_from=config.init_from or None,
        classifier_weight=config.classifier_weight,
        precision=run.precision,
        teacher_images=run.first_generation.images if run.first_generation else None,
        training_seed=config.seed,
    )
    metrics = dataclasses.replace(
        protocol.evaluate(embeddings, config.distance).metrics, budget=budget
    )
    # The export applies the test-time options; the protocol above is the tower's alone,
    # and eval_main.py reports the options as an extra row.
    served = test_time.with_options(
        tower, config.tta, config.center, part.train_images, part.train_labels, verbose=verbose
    )
    files.write_json_atomic(os.path.join(workdir, wd.METRICS_FILE), metrics.to_json())
    export_dir = os.path.join(workdir, wd.EXPORT_DIR)
    metadata = _metadata(config, run, tower, metrics)
    if not export.export_tower(served, export_dir, metadata):
        print(
            f"The export in {export_dir} holds the tower's .keras file and metadata.json: "
            "its SavedModel, which the other programs serve, takes TensorFlow: where it is "
            f"installed, keras-siamese export --export_dir={export_dir} writes it.",
            flush=True,
        )
    return RunResult(metrics=metrics, export_dir=export_dir)


def _export_tower(config: TrainConfig, run: _Run) -> keras.Model:
    """The trained tower in the export's precision: rebuilt with its weights (float32
    variables under any policy) where the training computed otherwise."""
    policy = EXPORT_PRECISIONS[config.export_precision]
    if policy == run.precision:
        return run.tower
    with build.precision_policy(policy):
        tower = build.build_tower(config, run.dataset.info)
    tower.set_weights(run.tower.get_weights())
    return tower


def _weights_record(config: TrainConfig) -> dict:
    """The backbone's starting weights as the metadata records them: an export folder by
    its tower file."""
    weights = config.backbone_weights
    if os.path.isdir(weights):
        weights = os.path.join(weights, export.KERAS_FILE)
    return backbones.weights_record(weights)


def _metadata(
    config: TrainConfig, run: _Run, tower: keras.Model, metrics: Metrics
) -> ExportMetadata:
    dataset, part = run.dataset, run.part
    split = part.split
    return ExportMetadata(
        dataset=dataset.info.name,
        data_source=dataset.source,
        input_shape=list(dataset.info.image_shape),
        split=split.name,
        split_order=config.split_order,
        split_seed=config.split_seed,
        val_fraction=config.val_fraction,
        min_val_images=splits.VALIDATION_IMAGES_PER_CLASS,
        seen_classes=[int(c) for c in split.seen],
        unseen_classes=[int(c) for c in split.unseen],
        class_names=list(dataset.class_names),
        distance=config.distance,
        margin=config.resolved_margin,
        depth=config.depth,
        embedding=config.embedding,
        embedding_size=int(tower.output_shape[-1]),
        l2_normalize=config.l2_normalize,
        tta=config.tta,
        center=config.center,
        precision=run.precision,
        export_precision=EXPORT_PRECISIONS[config.export_precision],
        backbone=config.backbone if config.uses_application else None,
        backbone_weights=_weights_record(config) if config.uses_application else None,
        normalization={"mean": list(dataset.info.mean), "std": list(dataset.info.std)},
        config=dataclasses.asdict(config),
        versions=export.package_versions(),
        metrics=metrics,
    )
