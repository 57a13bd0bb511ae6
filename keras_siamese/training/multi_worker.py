"""Training across machines: MultiWorkerMirroredStrategy around Keras's own train step.

`model.fit` fails under MultiWorkerMirroredStrategy in Keras 3 (its reduction
of per-replica logs; keras-team/keras#20585), while the training step itself
works. So this loop runs `model.train_step`, the very step `fit` runs on each
replica, through `strategy.run` over a dataset made per worker by
`distribute_datasets_from_function`: one step, two drivers.

Batch normalisation's moving statistics, which each worker updates from its
own batches, are averaged across the workers at the end of every epoch.

Fault tolerance is TensorFlow's: a `tf.train.Checkpoint` of the model, the
optimizer and the step counter, saved by every worker at the end of each
epoch (the chief into the backup folder, the others into temporary folders
beside it) and restored by all from the chief's folder, which must therefore
be on storage every worker reads. A `PreemptionCheckpointHandler` also saves
when a worker receives SIGTERM, and exits; the same command resumes.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable

import keras
import tensorflow as tf

STEP_VARIABLE = "train_steps"


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process is the cluster's chief (the one that writes results)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def _write_dir(backup_dir: str, strategy: tf.distribute.Strategy) -> str:
    if is_chief(strategy):
        return backup_dir
    task_id = strategy.cluster_resolver.task_id
    return os.path.join(os.path.dirname(backup_dir), f"workertemp_{task_id}", "backup")


def _statistics_synchroniser(
    model: keras.Model, strategy: tf.distribute.Strategy
) -> Callable[[], None]:
    """A function that sets every worker's non-trainable variables to their mean.

    Batch normalisation updates its moving statistics from each worker's own
    batches; averaging them makes every worker, checkpoint and export alike.
    """

    @tf.function
    def average_statistics():
        def replica_mean():
            context = tf.distribute.get_replica_context()
            values = [tf.identity(v.value) for v in model.non_trainable_variables]
            return context.all_reduce("MEAN", values)

        return strategy.run(replica_mean)

    def synchronise_statistics() -> None:
        for variable, mean in zip(model.non_trainable_variables, average_statistics(), strict=True):
            variable.assign(strategy.experimental_local_results(mean)[0])

    return synchronise_statistics


def fit(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    make_dataset: Callable[[tf.distribute.InputContext, int, int], tf.data.Dataset],
    epochs: int,
    steps_per_epoch: int,
    backup_dir: str,
    on_epoch_end: Callable[[int, float], None] | None = None,
    time_budget_seconds: float = 0.0,
    verbose: int = 2,
) -> tuple[int, list[float]]:
    """Trains `model` (built in `strategy.scope()`) for `epochs` x `steps_per_epoch` steps.

    Resumes from the chief's checkpoint in `backup_dir` when there is one.

    Args:
        model: a compiled training model.
        strategy: a MultiWorkerMirroredStrategy.
        make_dataset: `(input_context, first_epoch, skip_steps)` -> this
            worker's dataset of per-replica batches, starting at the batch an
            uninterrupted run would reach.
        epochs, steps_per_epoch: the schedule.
        backup_dir: the chief's checkpoint folder.
        on_epoch_end: called with (epoch, mean loss) after each epoch's checkpoint.
        time_budget_seconds: stop after the first epoch that ends past this; 0: none.
        verbose: 0 silent, else one line per epoch.

    Returns:
        The epoch this call started at, and the mean training loss of each
        epoch it ran.
    """
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
        steps_done = tf.Variable(0, dtype=tf.int64, trainable=False, name=STEP_VARIABLE)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, step=steps_done)
    handler = tf.distribute.experimental.PreemptionCheckpointHandler(
        strategy.cluster_resolver, checkpoint, checkpoint_dir=backup_dir
    )  # restores the chief's latest checkpoint, if any
    writer = tf.train.CheckpointManager(checkpoint, _write_dir(backup_dir, strategy), max_to_keep=1)

    synchronise_statistics = _statistics_synchroniser(model, strategy)

    @tf.function
    def train_step(iterator):
        logs = strategy.run(model.train_step, args=(next(iterator),))
        # Counted with the step, so that a checkpoint saved after it counts it too.
        steps_done.assign_add(1)
        return strategy.reduce("MEAN", logs["loss"], axis=None)

    done = int(steps_done.numpy())
    first_epoch, skip = divmod(done, steps_per_epoch)
    if done and verbose:
        print(f"Resuming at epoch {first_epoch + 1}, step {skip + 1}.", flush=True)
    iterator = iter(
        strategy.distribute_datasets_from_function(
            lambda context: make_dataset(context, first_epoch, skip)
        )
    )
    start = time.time()
    epoch_losses = []
    for epoch in range(first_epoch, epochs):
        losses = []
        for _ in range(skip if epoch == first_epoch else 0, steps_per_epoch):
            losses.append(float(handler.run(train_step, iterator)))
        mean = sum(losses) / max(len(losses), 1)
        epoch_losses.append(mean)
        synchronise_statistics()
        writer.save()  # every worker saves: the save itself is collective
        if on_epoch_end is not None:
            on_epoch_end(epoch, mean)
        if verbose:
            print(f"Epoch {epoch + 1}/{epochs} - loss: {mean:.4f}", flush=True)
        if mean != mean or time_budget_seconds and time.time() - start >= time_budget_seconds:
            break  # NaN: the caller reports it; budget: the caller evaluates what there is
    return first_epoch, epoch_losses


def remove_backup(backup_dir: str, strategy: tf.distribute.Strategy) -> None:
    """Removes this worker's checkpoints after a finished run."""
    target = backup_dir if is_chief(strategy) else os.path.dirname(_write_dir(backup_dir, strategy))
    shutil.rmtree(target, ignore_errors=True)
