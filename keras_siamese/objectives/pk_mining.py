"""Triplets mined inside batches of P classes x K images (`--objective=batch_*`).

The tower is trained alone on labelled images; the loss forms every valid
(anchor, positive, negative) of the batch and keeps all the violating ones
(batch_all), each anchor's hardest (batch_hard), or each pair's semi-hard
negative (batch_semihard). With `--classifier_weight`, a cosine classifier
over the seen classes learns beside it on the same batches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keras_siamese.choices import BATCH_MINING
from keras_siamese.errors import ConfigError
from keras_siamese.objectives.base import Head, Inputs, Objective, Owned, RunSettings

if TYPE_CHECKING:
    from keras_siamese.data.splits import Partition


class PKMining(Objective):
    """`--objective=batch_all`, `batch_hard` or `batch_semihard`: P x K images a step."""

    names = BATCH_MINING
    label = "the batch_* objectives"
    owns = {
        "soft_margin": Owned(("batch_hard",)),
        "selective_contrast": Owned(("batch_hard",)),
        "root_distance": Owned(),
        "semihard_rule": Owned(("batch_semihard",)),
        "mining_warmup_epochs": Owned(("batch_hard",)),
        "classifier_weight": Owned(),
    }
    tf_only = ("classifier_weight",)

    def check(self, config: RunSettings, num_seen: int | None) -> None:
        if config.selective_contrast and config.distance != "cosine":
            raise ConfigError(
                "--selective_contrast is for --objective=batch_hard with --distance=cosine, not "
                f"--objective={config.objective} with --distance={config.distance}."
            )
        if config.root_distance and config.selective_contrast:
            raise ConfigError(
                "--selective_contrast compares cosines, so it does not take --root_distance."
            )
        if config.mining_warmup_epochs and not 0 < config.mining_warmup_epochs < config.epochs:
            raise ConfigError(
                f"--mining_warmup_epochs={config.mining_warmup_epochs} must be 0 or positive "
                f"and shorter than the run's --epochs={config.epochs}."
            )
        if config.classifier_weight and not config.classifier_weight > 0:
            raise ConfigError(
                f"--classifier_weight={config.classifier_weight} must be 0 or positive."
            )
        if config.classes_per_batch < 2:
            raise ConfigError(
                f"--classes_per_batch={config.classes_per_batch} must be at least 2 for "
                f"--objective={config.objective}: a batch needs negatives."
            )
        if config.images_per_class < 2:
            raise ConfigError(
                f"--images_per_class={config.images_per_class} must be at least 2 for "
                f"--objective={config.objective}: a batch needs positives."
            )
        if num_seen is not None and config.classes_per_batch > num_seen:
            raise ConfigError(
                f"--classes_per_batch={config.classes_per_batch} exceeds the {num_seen} seen "
                f"classes of --split={config.split}."
            )

    def images_per_step(self, config: RunSettings) -> int:
        return config.classes_per_batch * config.images_per_class

    def samples_per_step(self, config: RunSettings) -> int:
        return self.images_per_step(config)

    def classes_per_step(self, config: RunSettings) -> int | None:
        return config.classes_per_batch

    def replica_unit(self, config: RunSettings) -> tuple[str, int]:
        return "classes_per_batch", config.classes_per_batch

    def monitor(self, config: RunSettings) -> str:
        """The loss, except for batch_all: its loss is the mean over the triplets that
        still violate the margin, which rises as the easy ones drop out, so the share of
        triplets violating it judges the embedding instead (beside a classifier, Keras
        names it after the embedding output)."""
        if config.objective != "batch_all":
            return "loss"
        if config.classifier_weight:
            from keras_siamese.model import classifier

            return f"{classifier.EMBEDDINGS}_violating_fraction"
        return "violating_fraction"

    def uses_margin(self, config: RunSettings) -> bool:
        return not config.soft_margin

    def first_monitored_epoch(self, config: RunSettings) -> int:
        # The warm-up's batch-all loss is not comparable with the hardest triplets' loss.
        return config.mining_warmup_epochs

    def _labels(self, config: RunSettings, part: Partition):
        """The train and validation labels: seen-class indices where a classifier reads them."""
        from keras_siamese.data import splits

        if not config.classifier_weight:
            return part.train_labels, part.val_labels
        return (
            splits.seen_class_indices(part.split, part.train_labels),
            splits.seen_class_indices(part.split, part.val_labels),
        )

    def tf_datasets(self, config: RunSettings, part: Partition, steps: int, first_epoch: int):
        from keras_siamese.data import pipeline, sampling
        from keras_siamese.model import classifier

        train_labels, val_labels = self._labels(config, part)
        train = pipeline.pk_dataset(
            part.train_images,
            train_labels,
            config.classes_per_batch,
            config.images_per_class,
            steps,
            config.seed,
            pipeline.Augmentation(flip=config.flip, crop=config.crop),
            first_epoch=first_epoch,
        )
        validation = None
        val_k = sampling.validation_images_per_class(config.images_per_class, part.val_labels)
        if val_k >= 2:
            validation = pipeline.fixed_pk_dataset(
                part.val_images, val_labels, config.classes_per_batch, val_k, config.seed + 1
            )
        if config.classifier_weight:

            def both_outputs(images, labels):
                return images, classifier.labels_of_both_outputs(labels)

            train = train.map(both_outputs)
            validation = validation if validation is None else validation.map(both_outputs)
        return train, validation

    def numpy_inputs(
        self, config: RunSettings, part: Partition, steps: int, first_epoch: int
    ) -> Inputs:
        import numpy as np

        from keras_siamese.data import numpy_batches
        from keras_siamese.data.sampling import (
            Augmentation,
            fixed_pk_indices,
            validation_images_per_class,
        )

        train = numpy_batches.pk_batches(
            part.train_images,
            part.train_labels,
            config.classes_per_batch,
            config.images_per_class,
            steps,
            config.seed,
            Augmentation(flip=config.flip, crop=config.crop),
            first_epoch,
        )
        # The validation images in the P x K batches tf_datasets draws.
        k = validation_images_per_class(config.images_per_class, part.val_labels)
        if k < 2:
            return Inputs(train, None, None)
        indices = fixed_pk_indices(part.val_labels, config.classes_per_batch, k, config.seed + 1)
        indices = indices.reshape(-1)
        labels = np.asarray(part.val_labels, np.int32)[indices]
        return Inputs(train, (part.val_images[indices], labels), config.classes_per_batch * k)

    def example_batch(self, config: RunSettings, rng, num_classes: int, image_shape):
        import numpy as np

        from keras_siamese.model import classifier

        labels = np.repeat(np.arange(config.classes_per_batch), config.images_per_class)
        images = rng.integers(0, 256, (len(labels), *image_shape), dtype=np.uint8)
        labels = labels.astype(np.int32)
        if config.classifier_weight:
            return images, classifier.labels_of_both_outputs(labels)
        return images, labels

    def head(
        self,
        config: RunSettings,
        tower: Any,
        optimizer: Any,
        num_classes: int | None = None,
        steps_per_epoch: int | None = None,
        teacher: Any = None,
    ) -> Head:
        import keras

        from keras_siamese.model import classifier, losses, siamese

        margin = config.resolved_margin
        if config.mining_warmup_epochs and not steps_per_epoch:
            raise ValueError("--mining_warmup_epochs needs the steps per epoch")
        loss = losses.BatchTripletLoss(
            config.objective,
            config.distance,
            margin,
            soft_margin=config.soft_margin,
            selective=config.selective_contrast,
            warmup_steps=config.mining_warmup_epochs * (steps_per_epoch or 0),
            root=config.root_distance,
            semihard_rule=config.semihard_rule,
        )
        loss.count_steps_with(optimizer.iterations)
        metrics = [
            keras.metrics.MeanMetricWrapper(
                losses.violating_fraction,
                name="violating_fraction",
                distance=config.distance,
                margin=margin,
                root=config.root_distance,
            )
        ]
        if not config.classifier_weight:
            return Head(siamese.mining_model(tower), loss, metrics=metrics)
        if num_classes is None:
            raise ValueError("--classifier_weight needs the number of classes")
        return Head(
            classifier.embedding_classifier_model(tower, num_classes),
            {
                classifier.EMBEDDINGS: loss,
                classifier.CLASS_SCORES: losses.ClassificationLoss(
                    scale=config.logit_scale,
                    margin=config.class_margin,
                    label_smoothing=config.label_smoothing,
                ),
            },
            loss_weights={
                classifier.EMBEDDINGS: 1.0,
                classifier.CLASS_SCORES: config.classifier_weight,
            },
            metrics={classifier.EMBEDDINGS: metrics},
        )
