"""The tf.data datasets a run trains and validates on (the TensorFlow backend).

Which pipeline of `keras_siamese.data.pipeline` the objective takes, and the
targets its model's outputs need. The other Keras backends take numpy batches
(`keras_siamese.training.numpy_inputs`).
"""

from __future__ import annotations

import tensorflow as tf

from keras_siamese.config import TrainConfig
from keras_siamese.data import pipeline, sampling, splits
from keras_siamese.model import classifier, siamese


def make_datasets(
    config: TrainConfig, part: splits.Partition, steps: int, first_epoch: int
) -> tuple[tf.data.Dataset, tf.data.Dataset | None]:
    """The training and (if there are validation images) validation datasets.

    The training batches of epoch `first_epoch` onwards are those an
    uninterrupted run would draw.
    """
    augmentation = pipeline.Augmentation(flip=config.flip, crop=config.crop)
    has_validation = len(part.val_labels) > 0
    val_ds = None
    if config.uses_class_batches:
        train_ds = pipeline.class_dataset(
            part.train_images,
            splits.seen_class_indices(part.split, part.train_labels),
            config.batch_size,
            steps,
            config.seed,
            augmentation,
            first_epoch=first_epoch,
            mixing=pipeline.Mixing(len(part.split.seen), config.mixup, config.cutmix),
            rotations=bool(config.rotation_weight),
        )
        if has_validation:
            val_ds = pipeline.fixed_class_dataset(
                part.val_images,
                splits.seen_class_indices(part.split, part.val_labels),
                config.batch_size,
            )
        if config.rotation_weight:
            train_ds = train_ds.map(_label_rotation_outputs)
            if val_ds is not None:
                val_ds = val_ds.map(_label_upright)
    elif config.uses_pk_batches:
        train_labels, val_labels = part.train_labels, part.val_labels
        if config.classifier_weight:
            train_labels = splits.seen_class_indices(part.split, train_labels)
            val_labels = splits.seen_class_indices(part.split, val_labels)
        train_ds = pipeline.pk_dataset(
            part.train_images,
            train_labels,
            config.classes_per_batch,
            config.images_per_class,
            steps,
            config.seed,
            augmentation,
            first_epoch=first_epoch,
        )
        val_k = sampling.validation_images_per_class(config.images_per_class, part.val_labels)
        if val_k >= 2:
            val_ds = pipeline.fixed_pk_dataset(
                part.val_images,
                val_labels,
                config.classes_per_batch,
                val_k,
                config.seed + 1,
            )
        if config.classifier_weight:
            train_ds, val_ds = (
                ds if ds is None else ds.map(_label_both_outputs) for ds in (train_ds, val_ds)
            )
    else:
        # Triplets and pairs are drawn alike; only their grouping differs.
        if config.objective == "contrastive":
            make, make_fixed = pipeline.pair_dataset, pipeline.fixed_pair_dataset
            names = siamese.PAIR_INPUT_NAMES
        else:
            make, make_fixed = pipeline.triplet_dataset, pipeline.fixed_triplet_dataset
            names = siamese.INPUT_NAMES
        train_ds = make(
            part.train_images,
            part.train_labels,
            config.batch_size,
            steps,
            names=names,
            seed=config.seed,
            augmentation=augmentation,
            first_epoch=first_epoch,
        )
        if has_validation:
            val_ds = make_fixed(
                part.val_images,
                part.val_labels,
                len(part.val_labels),
                config.batch_size,
                names=names,
                seed=config.seed + 1,
            )
    return train_ds, val_ds


def _label_rotation_outputs(images, labels):
    """A rotation batch's `(class labels, turns)` for the two outputs of its model."""
    class_labels, turns = labels
    return images, {classifier.CLASS_SCORES: class_labels, classifier.ROTATION_SCORES: turns}


def _label_upright(images, labels):
    """Validation images are upright: turn 0 for the rotation head."""
    return _label_rotation_outputs(images, (labels, tf.zeros_like(labels)))


def _label_both_outputs(images, labels):
    """One P x K batch's labels for both outputs of the mining-and-classifier model."""
    return images, classifier.labels_of_both_outputs(labels)
