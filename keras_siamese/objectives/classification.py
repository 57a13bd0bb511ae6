"""A classifier over the seen classes on the embedding (`--objective=softmax`, `normsoftmax`).

One tower pass per image; the classifier (linear, or cosine with a scale and
a margin) is left out of the export. Its levers: mixing images and targets
(`--mixup`, `--cutmix`), a rotation task beside the classifier
(`--rotation_weight`) and self-distillation from a finished run
(`--distill_from`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keras_siamese.choices import ROTATIONS
from keras_siamese.errors import ConfigError, UserError
from keras_siamese.objectives.base import Head, Inputs, Objective, Owned, RunSettings

if TYPE_CHECKING:
    from keras_siamese.data.splits import Partition


class Classification(Objective):
    """`--objective=softmax` or `normsoftmax`: --batch_size images a step (4 times that
    with the rotation task)."""

    names = ("softmax", "normsoftmax")
    owns = {
        "mixup": Owned(purpose="mixes class targets"),
        "cutmix": Owned(purpose="mixes class targets"),
        "rotation_weight": Owned(purpose="adds a head beside the classifier"),
        "distill_from": Owned(purpose="learns a teacher's class predictions"),
        "generations": Owned(purpose="distils each generation from the one before"),
    }
    tf_only = ("mixup", "cutmix", "rotation_weight")

    def check(self, config: RunSettings, num_seen: int | None) -> None:
        shape = config.image_shape
        if config.rotation_weight and shape[0] != shape[1]:
            raise ConfigError(
                f"--rotation_weight needs square images, not {shape[0]} x {shape[1]} pixels."
            )
        if config.generations < 1:
            raise ConfigError(f"--generations={config.generations} must be at least 1.")
        distilled = "--distill_from" if config.distill_from else ""
        if config.generations > 1:
            if config.distill_from:
                raise ConfigError(
                    "Give --generations or --distill_from, not both: with --generations the "
                    "run trains its own teachers."
                )
            if config.ema_decay:
                raise ConfigError(
                    "--generations distils from each generation's best-epoch classifier, which "
                    "a run with --ema_decay does not keep: train without a weight average."
                )
            distilled = "--generations"
        if distilled and config.rotation_weight:
            raise ConfigError(
                f"{distilled} and --rotation_weight together are not supported: "
                "the teacher scores upright images only."
            )

    def check_teacher(self, recorded: dict, flag: str) -> None:
        """Raises UserError unless the recorded settings are a plain classification run's."""
        objective = recorded.get("objective")
        if objective not in self.names or recorded.get("rotation_weight"):
            raise UserError(
                f"{flag} trained with --objective={objective}"
                + (" and a rotation head" if recorded.get("rotation_weight") else "")
                + ": a teacher is a plain classification run (softmax or normsoftmax)."
            )

    def is_cosine(self, objective: str) -> bool:
        """Whether `objective`'s classifier is the cosine one (normsoftmax)."""
        return objective == "normsoftmax"

    def images_per_step(self, config: RunSettings) -> int:
        return config.batch_size * (len(ROTATIONS) if config.rotation_weight else 1)

    def uses_margin(self, config: RunSettings) -> bool:
        return False

    def tf_datasets(self, config: RunSettings, part: Partition, steps: int, first_epoch: int):
        import tensorflow as tf

        from keras_siamese.data import pipeline, splits
        from keras_siamese.model import classifier

        train = pipeline.class_dataset(
            part.train_images,
            splits.seen_class_indices(part.split, part.train_labels),
            config.batch_size,
            steps,
            config.seed,
            pipeline.Augmentation(flip=config.flip, crop=config.crop),
            first_epoch=first_epoch,
            mixing=pipeline.Mixing(len(part.split.seen), config.mixup, config.cutmix),
            rotations=bool(config.rotation_weight),
        )
        validation = None
        if len(part.val_labels):
            validation = pipeline.fixed_class_dataset(
                part.val_images,
                splits.seen_class_indices(part.split, part.val_labels),
                config.batch_size,
            )
        if not config.rotation_weight:
            return train, validation

        def both_outputs(images, labels):
            class_labels, turns = labels
            return images, {
                classifier.CLASS_SCORES: class_labels,
                classifier.ROTATION_SCORES: turns,
            }

        def upright(images, labels):
            return both_outputs(images, (labels, tf.zeros_like(labels)))

        return train.map(both_outputs), validation if validation is None else validation.map(
            upright
        )

    def numpy_inputs(
        self, config: RunSettings, part: Partition, steps: int, first_epoch: int
    ) -> Inputs:
        from keras_siamese.data import numpy_batches, splits
        from keras_siamese.data.sampling import Augmentation

        train = numpy_batches.class_batches(
            part.train_images,
            splits.seen_class_indices(part.split, part.train_labels),
            config.batch_size,
            steps,
            config.seed,
            Augmentation(flip=config.flip, crop=config.crop),
            first_epoch,
        )
        validation = None
        if len(part.val_labels):
            validation = (part.val_images, splits.seen_class_indices(part.split, part.val_labels))
        return Inputs(train, validation, config.batch_size)

    def example_batch(self, config: RunSettings, rng, num_classes: int, image_shape):
        import numpy as np

        from keras_siamese.model import classifier

        labels = rng.integers(0, num_classes, config.batch_size).astype(np.int32)
        images = rng.integers(0, 256, (config.batch_size, *image_shape), dtype=np.uint8)
        if not config.rotation_weight:
            return images, labels
        # The batch and its quarter turns; only the upright images carry a class.
        turned = [np.rot90(images, k, axes=(1, 2)) for k in ROTATIONS]
        return np.concatenate(turned), {
            classifier.CLASS_SCORES: np.concatenate([labels, np.full(3 * len(labels), -1)]),
            classifier.ROTATION_SCORES: np.repeat(np.arange(len(ROTATIONS)), len(labels)),
        }

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

        from keras_siamese.model import classifier, distillation, losses

        if num_classes is None:
            raise ValueError(f"--objective={config.objective} needs the number of classes")
        cosine = self.is_cosine(config.objective)
        loss = losses.ClassificationLoss(
            scale=config.logit_scale if cosine else 1.0,
            margin=config.class_margin if cosine else 0.0,
            label_smoothing=config.label_smoothing,
        )
        # Reads class indices and the float targets of mixed batches alike.
        metrics = [losses.ClassAccuracy(name="accuracy")]
        if config.rotation_weight:
            return Head(
                classifier.rotation_classifier_model(tower, num_classes, cosine=cosine),
                {
                    classifier.CLASS_SCORES: loss,
                    classifier.ROTATION_SCORES: keras.losses.SparseCategoricalCrossentropy(
                        from_logits=True
                    ),
                },
                loss_weights={
                    classifier.CLASS_SCORES: 1.0,
                    classifier.ROTATION_SCORES: config.rotation_weight,
                },
                metrics={classifier.CLASS_SCORES: metrics},
            )
        if teacher is None:
            return Head(
                classifier.classifier_model(tower, num_classes, cosine=cosine),
                loss,
                metrics=metrics,
            )
        soft_targets = distillation.SoftTargets(
            config.distill_weight,
            config.distill_temperature,
            student_scale=config.logit_scale if cosine else 1.0,
            teacher_scale=teacher.logit_scale,
            name="soft_targets",
        )
        model = distillation.distilled_classifier_model(
            tower, teacher.model, num_classes, cosine, soft_targets
        )
        return Head(model, loss, loss_weights=[1.0 - config.distill_weight], metrics=metrics)
