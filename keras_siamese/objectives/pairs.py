"""Pairs of one class or two, through the two-input network (`--objective=contrastive`).

Half of each batch are same-class pairs, half different-class pairs; the
model's output is either the pair's distance, under the contrastive loss, or
the probability of "same" from a sigmoid unit, under binary cross-entropy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keras_siamese.errors import ConfigError
from keras_siamese.objectives.base import Head, Inputs, Owned, RunSettings
from keras_siamese.objectives.triplets import Triplets

if TYPE_CHECKING:
    from keras_siamese.data.splits import Partition


class Pairs(Triplets):
    """`--objective=contrastive`: 2 x --batch_size images a step; tf.data only."""

    names = ("contrastive",)
    owns = {"pair_head": Owned()}
    tf_only = ("objective",)

    def check(self, config: RunSettings, num_seen: int | None) -> None:
        if config.batch_size % 2:
            raise ConfigError(
                f"--batch_size={config.batch_size} must be even for --objective=contrastive "
                "(half same-class, half different-class pairs)."
            )

    def images_per_step(self, config: RunSettings) -> int:
        return 2 * config.batch_size

    def uses_margin(self, config: RunSettings) -> bool:
        return config.pair_head == "contrastive"

    def input_names(self) -> tuple[str, ...]:
        from keras_siamese.model import siamese

        return siamese.PAIR_INPUT_NAMES

    def tf_datasets(self, config: RunSettings, part: Partition, steps: int, first_epoch: int):
        from keras_siamese.data import pipeline

        return self._drawn(
            config, part, steps, first_epoch, pipeline.pair_dataset, pipeline.fixed_pair_dataset
        )

    def numpy_inputs(
        self, config: RunSettings, part: Partition, steps: int, first_epoch: int
    ) -> Inputs:
        raise ConfigError("--objective=contrastive needs the TensorFlow backend.")

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

        from keras_siamese.model import losses, siamese

        model = siamese.pair_model(tower, config.distance, config.pair_head)
        if config.pair_head == "bce":
            return Head(
                model,
                keras.losses.BinaryCrossentropy(),
                metrics=[keras.metrics.BinaryAccuracy(name="pair_accuracy")],
            )
        return Head(model, losses.ContrastiveLoss(config.resolved_margin))
