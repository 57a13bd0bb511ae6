"""The reference's objective: random triplets through the three-input network.

The shared tower embeds the anchor, the positive and the negative; a Lambda
layer computes each triplet's loss and training minimises it as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keras_siamese.objectives.base import Head, Inputs, Objective, Owned, RunSettings

if TYPE_CHECKING:
    from keras_siamese.data.splits import Partition


class Triplets(Objective):
    """`--objective=triplet`: 3 x --batch_size images a step."""

    names = ("triplet",)
    owns = {"concat_tower": Owned()}

    def images_per_step(self, config: RunSettings) -> int:
        return 3 * config.batch_size

    def input_names(self) -> tuple[str, ...]:
        """The model's input names, the keys of a batch's dict."""
        from keras_siamese.model import siamese

        return siamese.INPUT_NAMES

    def tf_datasets(self, config: RunSettings, part: Partition, steps: int, first_epoch: int):
        from keras_siamese.data import pipeline

        return self._drawn(
            config,
            part,
            steps,
            first_epoch,
            pipeline.triplet_dataset,
            pipeline.fixed_triplet_dataset,
        )

    def _drawn(self, config, part, steps, first_epoch, make, make_fixed):
        """Triplets and pairs are drawn alike; only their grouping differs."""
        from keras_siamese.data import pipeline

        names = self.input_names()
        train = make(
            part.train_images,
            part.train_labels,
            config.batch_size,
            steps,
            names=names,
            seed=config.seed,
            augmentation=pipeline.Augmentation(flip=config.flip, crop=config.crop),
            first_epoch=first_epoch,
        )
        validation = None
        if len(part.val_labels):
            validation = make_fixed(
                part.val_images,
                part.val_labels,
                len(part.val_labels),
                config.batch_size,
                names=names,
                seed=config.seed + 1,
            )
        return train, validation

    def numpy_inputs(
        self, config: RunSettings, part: Partition, steps: int, first_epoch: int
    ) -> Inputs:
        from keras_siamese.data import numpy_batches
        from keras_siamese.data.sampling import Augmentation

        names = self.input_names()
        train = numpy_batches.triplet_batches(
            part.train_images,
            part.train_labels,
            config.batch_size,
            steps,
            names=names,
            seed=config.seed,
            augmentation=Augmentation(flip=config.flip, crop=config.crop),
            first_epoch=first_epoch,
        )
        validation = None
        if len(part.val_labels):
            validation = numpy_batches.fixed_triplets(
                part.val_images,
                part.val_labels,
                len(part.val_labels),
                names=names,
                seed=config.seed + 1,
            )
        return Inputs(train, validation, config.batch_size)

    def example_batch(self, config: RunSettings, rng, num_classes: int, image_shape):
        import numpy as np

        size = config.batch_size
        x = {
            n: rng.integers(0, 256, (size, *image_shape), dtype=np.uint8)
            for n in self.input_names()
        }
        # Pairs read these as same (1) and different (0); triplets ignore them.
        y = np.tile(np.array([1.0, 0.0], np.float32), size // 2 + 1)[:size]
        return x, y

    def head(
        self,
        config: RunSettings,
        tower: Any,
        optimizer: Any,
        num_classes: int | None = None,
        steps_per_epoch: int | None = None,
        teacher: Any = None,
    ) -> Head:
        from keras_siamese.model import siamese

        model = siamese.triplet_model(
            tower, config.distance, config.resolved_margin, config.concat_tower
        )
        return Head(model, siamese.identity_loss)
