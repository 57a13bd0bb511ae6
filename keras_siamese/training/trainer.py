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

from keras_siamese import files
from keras_siamese import workdir as wd
from keras_siamese.config import TrainConfig
from keras_siamese.data import splits
from keras_siamese.data.datasets import ImageDataset, load_dataset
from keras_siamese.errors import ConfigError, UserError
from keras_siamese.evaluation import protocol
from keras_siamese.evaluation.results import Budget, Metrics
from keras_siamese.model import build, classifier, test_time
from keras_siamese.serving import export
from keras_siamese.serving.metadata import ExportMetadata
from keras_siamese.training import devices, numpy_inputs, teacher, warm_start
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
    per_step = config.images_per_batch if config.uses_pk_batches else config.batch_size
    steps = num_train_images // per_step
    if steps < 1:
        raise ConfigError(
            f"A batch of {per_step} exceeds the {num_train_images} seen train images: use "
            "smaller batches or set --steps_per_epoch."
        )
    return steps


def best_weights_monitor(config: TrainConfig, has_validation: bool) -> str:
    """The logged value whose lowest epoch gives the run's best (exported) weights.

    The validation loss, except for batch_all: its loss is the mean over the triplets
    that still violate the margin, which rises as the easy ones drop out, so the share of
    triplets violating it judges the embedding instead (beside a classifier, Keras names it
    after the embedding output).
    """
    name = "loss"
    if config.objective == "batch_all":
        name = "violating_fraction"
        if config.classifier_weight:
            name = f"{classifier.EMBEDDINGS}_{name}"
    return f"val_{name}" if has_validation else name


def _callbacks(
    config: TrainConfig, tower: keras.Model, has_validation: bool, steps_left: int
) -> list[keras.callbacks.Callback]:
    workdir = config.workdir
    callbacks = [
        RunEstimate(steps_left, config.images_per_batch),
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
                first_epoch=config.mining_warmup_epochs,
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
    validation_batch_size = None
    if _on_tensorflow():
        from keras_siamese.training import tf_inputs

        train, validation = tf_inputs.make_datasets(config, part, steps, first_epoch)
    else:
        train, validation, validation_batch_size = numpy_inputs.make_inputs(
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
    if config.uses_pk_batches and config.classes_per_batch % replicas:
        raise ConfigError(
            f"--classes_per_batch={config.classes_per_batch} must be a multiple of the "
            f"{replicas} replicas of --strategy=multi_worker: each takes whole classes."
        )
    if not config.uses_pk_batches and config.batch_size % replicas:
        raise ConfigError(
            f"--batch_size={config.batch_size} must be a multiple of the {replicas} replicas "
            "of --strategy=multi_worker."
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
    from keras_siamese.training import multi_worker, tf_inputs

    workdir = config.workdir
    replicas = strategy.num_replicas_in_sync

    def make_dataset(context: tf.distribute.InputContext, first_epoch: int, skip: int):
        share = dataclasses.replace(
            config,
            batch_size=config.batch_size // replicas,
            classes_per_batch=config.classes_per_batch // replicas,
            seed=config.seed + 1_000_003 * context.input_pipeline_id,
        )
        return tf_inputs.make_datasets(share, part, steps, first_epoch)[0].skip(skip)

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
    try:
        return _train_and_evaluate(config, dataset, overwrite, verbose)
    finally:
        wd.release(config.workdir)


def _train_and_evaluate(
    config: TrainConfig, dataset: ImageDataset | None, overwrite: bool, verbose: int | None
) -> RunResult:
    config.validate()
    if not _on_tensorflow():
        numpy_inputs.check_supported(config, keras.backend.backend())
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
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
    steps = steps_per_epoch(config, len(part.train_labels))

    # Created before any other TensorFlow work: a multi-worker strategy must come first.
    strategy = devices.make_strategy(config.strategy) if _on_tensorflow() else None
    replicas = strategy.num_replicas_in_sync if strategy else 1
    multi = config.strategy == "multi_worker"
    chief = True
    if multi:
        from keras_siamese.training import multi_worker

        _check_replica_split(config, replicas)
        chief = multi_worker.is_chief(strategy)

    source = None
    if config.init_from:
        source = warm_start.load_source(config.init_from, config.dataset, split)

    precision, reason = _run_precision(config)
    keras.utils.set_random_seed(config.seed)
    # The batch is global: each replica trains on its share.
    scope = strategy.scope() if strategy else contextlib.nullcontext()
    with scope, build.precision_policy(precision):
        # The teacher's variables, like the model's, belong to the strategy.
        first_generation = (
            teacher.load_teacher(config.distill_from, config.dataset, split)
            if config.distill_from
            else None
        )
        tower = build.build_tower(config, dataset.info)
        model = build.build_training_model(
            config,
            tower,
            devices.resolve_jit_compile(config.jit_compile),
            num_classes=len(split.seen),
            steps_per_epoch=steps,
            teacher=first_generation.model if first_generation else None,
            teacher_scale=first_generation.logit_scale if first_generation else 1.0,
        )
    fresh = []
    if source is not None:  # a resumed run's backup replaces these weights again
        fresh = warm_start.copy_weights(source, tower, f"--init_from={config.init_from}")
        del source

    # Everything is validated: only now does the run touch the disk.
    workdir = config.workdir
    # The workers of a multi-worker run share the folder: only a lone process locks it.
    wd.prepare(workdir, config.to_flagfile(), overwrite=overwrite, exclusive=not multi)
    files.write_json_atomic(os.path.join(workdir, "versions.json"), export.package_versions())
    files.write_json_atomic(
        os.path.join(workdir, wd.PRECISION_FILE), {"precision": precision, "reason": reason}
    )
    first_epoch = 0 if multi else wd.resume_epoch(workdir)
    if not multi:
        wd.trim_history(workdir, first_epoch)
    if first_epoch == 0:
        # A fresh start must not compare against the best loss of an earlier run.
        for entry in (os.path.dirname(wd.BEST_WEIGHTS), wd.SNAPSHOTS_DIR):
            shutil.rmtree(os.path.join(workdir, entry), ignore_errors=True)
    if config.init_from:
        print(
            f"The tower starts from the weights of {config.init_from}"
            + (f", except {', '.join(fresh)} (new)." if fresh else "."),
            flush=True,
        )
    if first_generation:
        print(
            f"Distilling from {config.distill_from} (its training spent "
            f"{first_generation.images:,} images): weight {config.distill_weight}, "
            f"temperature {config.distill_temperature}.",
            flush=True,
        )
    if config.precision == "auto":
        print(f"Precision: {precision} ({reason}).", flush=True)
    warning = devices.precision_warning(precision)
    if warning:
        print(warning, flush=True)
    resuming = f", resuming at epoch {first_epoch + 1}" if first_epoch else ""
    print(
        f"Training {tower.name} ({tower.count_params():,} parameters) on {config.dataset} "
        f"split {split.name}: {len(part.train_labels)} train images of {len(split.seen)} seen "
        f"classes with --objective={config.objective}, {config.epochs} epoch(s) x {steps} "
        f"step(s) of {config.images_per_batch} images on {replicas} replica(s)"
        f"{_backend_note()}{resuming}.",
        flush=True,
    )
    start = time.time()
    if multi:
        first_epoch, epoch_losses = _fit_multi_worker(
            config, part, steps, model, strategy, chief, verbose
        )
    else:
        epoch_losses = _fit_keras(config, part, steps, first_epoch, model, tower, verbose)
    train_seconds = time.time() - start
    bad = [i for i, v in enumerate(epoch_losses) if not math.isfinite(v)]
    best_path = os.path.join(workdir, wd.BEST_WEIGHTS)
    if bad:
        # The backup holds the diverged weights: resuming from it would be useless.
        shutil.rmtree(os.path.join(workdir, wd.BACKUP_DIR), ignore_errors=True)
        kept = (
            f"the last good weights are in {best_path}"
            if os.path.exists(best_path)
            else "no epoch finished with a finite loss"
        )
        raise TrainingDiverged(
            f"The training loss became {epoch_losses[bad[0]]} in epoch {first_epoch + bad[0] + 1}: "
            f"lower --learning_rate and rerun with --overwrite; {kept}, and no export was written."
        )
    if multi:
        # Keras's fit ends by writing the weight average into the model; this loop must too.
        model.optimizer.finalize_variable_values(model.trainable_variables)
        multi_worker.remove_backup(os.path.join(workdir, wd.BACKUP_DIR), strategy)
        if not chief:
            return RunResult(metrics=None, export_dir="", is_chief=False)
        # Evaluate and export a copy outside the strategy: the other workers have left.
        trained = tower
        with build.precision_policy(precision):
            tower = build.build_tower(config, dataset.info)
        tower.set_weights(trained.get_weights())
    if os.path.exists(best_path):
        model.load_weights(best_path)

    # The protocol's own seed, not the training seed: runs are compared on the same samples.
    embeddings = protocol.embed_partition(tower, part, verbose=verbose)
    budget = Budget(
        objective=config.objective,
        epochs=first_epoch + len(epoch_losses),
        steps_per_epoch=steps,
        batch_size=config.batch_size,
        images_per_step=config.images_per_batch,
        train_seconds=round(train_seconds, 1),
        init_from=config.init_from or None,
        classifier_weight=config.classifier_weight,
        precision=precision,
        teacher_images=first_generation.images if first_generation else None,
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
    metadata = _metadata(config, dataset, part, tower, metrics)
    if not export.export_tower(served, export_dir, metadata):
        print(
            f"The export in {export_dir} holds the tower's .keras file and metadata.json: "
            "its SavedModel, which the other programs serve, takes TensorFlow: where it is "
            f"installed, keras-siamese export --export_dir={export_dir} writes it.",
            flush=True,
        )
    return RunResult(metrics=metrics, export_dir=export_dir)


def _metadata(
    config: TrainConfig,
    dataset: ImageDataset,
    part: splits.Partition,
    tower: keras.Model,
    metrics: Metrics,
) -> ExportMetadata:
    split = part.split
    return ExportMetadata(
        dataset=dataset.info.name,
        data_source=dataset.source,
        input_shape=list(dataset.info.image_shape),
        split=split.name,
        split_order=config.split_order,
        split_seed=config.split_seed,
        val_fraction=config.val_fraction,
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
        normalization={"mean": list(dataset.info.mean), "std": list(dataset.info.std)},
        config=dataclasses.asdict(config),
        versions=export.package_versions(),
        metrics=metrics,
    )
