"""The numpy batches a run trains and validates on under Keras's JAX backend.

The counterpart of `keras_siamese.training.tf_inputs` for a machine without
TensorFlow: the classification objectives, the batch-mining ones and the
reference protocol's triplets, with flips and crops. The levers built on
tf.data alone (mixing, the rotation task, a classifier beside mining, pairs)
are refused before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from keras_siamese.config import TrainConfig
from keras_siamese.data import numpy_batches, splits
from keras_siamese.data.sampling import (
    Augmentation,
    fixed_pk_indices,
    validation_images_per_class,
)
from keras_siamese.errors import ConfigError
from keras_siamese.model import siamese


class Inputs(NamedTuple):
    """A run's batches: endless training batches, the validation arrays (or None), and the
    batch size that validation takes them in."""

    train: Iterator
    validation: tuple | None
    validation_batch_size: int


def check_supported(config: TrainConfig, backend: str) -> None:
    """Raises ConfigError when `config` needs what only the TensorFlow backend has."""
    needs_tf_data = {
        "--mixup": config.mixup,
        "--cutmix": config.cutmix,
        "--rotation_weight": config.rotation_weight,
        "--classifier_weight": config.classifier_weight,
        "--objective=contrastive": config.objective == "contrastive",
    }
    for name, value in needs_tf_data.items():
        if value:
            raise ConfigError(
                f"{name} needs the TensorFlow backend (its batches are built with tf.data); "
                f"KERAS_BACKEND={backend} trains the other objectives and levers."
            )
    if config.strategy not in ("auto", "default"):
        raise ConfigError(
            f"--strategy={config.strategy} is tf.distribute's: with KERAS_BACKEND={backend} a "
            "run trains on one device (--strategy=auto)."
        )


def make_inputs(
    config: TrainConfig, part: splits.Partition, steps: int, first_epoch: int
) -> Inputs:
    """Endless training batches and the whole validation set as arrays (or None).

    The training batches of epoch `first_epoch` onwards are those an
    uninterrupted run under this backend would draw.
    """
    augmentation = Augmentation(flip=config.flip, crop=config.crop)
    has_validation = len(part.val_labels) > 0
    if config.uses_class_batches:
        train = numpy_batches.class_batches(
            part.train_images,
            splits.seen_class_indices(part.split, part.train_labels),
            config.batch_size,
            steps,
            config.seed,
            augmentation,
            first_epoch,
        )
        validation = (
            (part.val_images, splits.seen_class_indices(part.split, part.val_labels))
            if has_validation
            else None
        )
        return Inputs(train, validation, config.batch_size)
    if config.uses_pk_batches:
        train = numpy_batches.pk_batches(
            part.train_images,
            part.train_labels,
            config.classes_per_batch,
            config.images_per_class,
            steps,
            config.seed,
            augmentation,
            first_epoch,
        )
        validation, batch_size = _fixed_pk(config, part) if has_validation else (None, 0)
        return Inputs(train, validation, batch_size)
    train = numpy_batches.triplet_batches(
        part.train_images,
        part.train_labels,
        config.batch_size,
        steps,
        names=siamese.INPUT_NAMES,
        seed=config.seed,
        augmentation=augmentation,
        first_epoch=first_epoch,
    )
    validation = None
    if has_validation:
        validation = numpy_batches.fixed_triplets(
            part.val_images,
            part.val_labels,
            len(part.val_labels),
            names=siamese.INPUT_NAMES,
            seed=config.seed + 1,
        )
    return Inputs(train, validation, config.batch_size)


def _fixed_pk(config: TrainConfig, part: splits.Partition) -> tuple[tuple | None, int]:
    """The validation images in P x K batches, as `tf_inputs` draws them, and P x K
    (None and 0 when a class has fewer than two)."""
    k = validation_images_per_class(config.images_per_class, part.val_labels)
    if k < 2:
        return None, 0
    indices = fixed_pk_indices(part.val_labels, config.classes_per_batch, k, config.seed + 1)
    indices = indices.reshape(-1)
    labels = np.asarray(part.val_labels, np.int32)[indices]
    return (part.val_images[indices], labels), config.classes_per_batch * k
