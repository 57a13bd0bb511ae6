"""The pair-based losses on batches of P classes x K images: multi-similarity, circle,
NT-Xent, supervised contrastive and lifted structure (`keras_siamese.model.pair_losses`).

Every pair of the batch counts; the tower is trained alone on labelled images,
as the batch-mining objectives train it, on the same P x K batches. With
`--memory_size`, each batch is also paired with the images of earlier batches
(a cross-batch memory, `keras_siamese.model.memory`); the labels then enter the
training model as a second input, since the memory stores them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keras_siamese.errors import ConfigError
from keras_siamese.objectives.base import Head, Inputs, Owned, RunSettings
from keras_siamese.objectives.pk_mining import PKMining

if TYPE_CHECKING:
    from keras_siamese.data.splits import Partition

# Each objective's hyperparameters: the setting, and the loss function's argument it sets.
HYPERPARAMETERS = {
    "multi_similarity": {"ms_alpha": "alpha", "ms_beta": "beta", "ms_base": "base"},
    "circle": {"circle_m": "m", "circle_gamma": "gamma"},
    "ntxent": {"ntxent_temperature": "temperature"},
    "supcon": {"supcon_temperature": "temperature"},
    "lifted_structure": {"lifted_neg_margin": "neg_margin", "lifted_pos_margin": "pos_margin"},
}
# The settings that must be above 0.
_POSITIVE = ("ms_alpha", "ms_beta", "circle_gamma", "ntxent_temperature", "supcon_temperature")


class PairBased(PKMining):
    """`--objective=multi_similarity`, `circle`, `ntxent`, `supcon` or `lifted_structure`:
    P x K images a step."""

    names = tuple(HYPERPARAMETERS)
    loss_arguments = HYPERPARAMETERS
    label = ""
    owns = {
        **{
            setting: Owned((objective,))
            for objective, settings in HYPERPARAMETERS.items()
            for setting in settings
        },
        "memory_size": Owned(purpose="pairs each batch with earlier images"),
        "memory_warmup_steps": Owned(purpose="delays the cross-batch memory"),
    }
    tf_only = ()

    def check(self, config: RunSettings, num_seen: int | None) -> None:
        for name in HYPERPARAMETERS[config.objective]:
            value = getattr(config, name)
            if name in _POSITIVE and not value > 0:
                raise ConfigError(f"--{name}={value} must be greater than 0.")
        if not 0 <= config.circle_m <= 1:
            raise ConfigError(f"--circle_m={config.circle_m} must be from 0 to 1.")
        super().check(config, num_seen)
        self._check_memory(config)

    def _check_memory(self, config: RunSettings) -> None:
        if config.memory_size < 0 or config.memory_warmup_steps < 0:
            bad = "memory_size" if config.memory_size < 0 else "memory_warmup_steps"
            raise ConfigError(f"--{bad}={getattr(config, bad)} must be 0 or more.")
        batch = self.images_per_step(config)
        if 0 < config.memory_size < batch:
            raise ConfigError(
                f"--memory_size={config.memory_size} is smaller than a batch of {batch} images "
                "(--classes_per_batch x --images_per_class): give it 0 or at least "
                f"{batch}."
            )
        if config.memory_warmup_steps and not config.memory_size:
            raise ConfigError("--memory_warmup_steps is for a run with --memory_size.")

    def check_replicas(self, config: RunSettings, replicas: int) -> None:
        if config.memory_size and replicas > 1:
            raise ConfigError(
                f"--memory_size keeps one memory of the batches one replica sees: it does not "
                f"train on the {replicas} replicas of --strategy={config.strategy}."
            )

    def monitor(self, config: RunSettings) -> str:
        return "loss"

    def uses_margin(self, config: RunSettings) -> bool:
        return False

    def head(
        self,
        config: RunSettings,
        tower: Any,
        optimizer: Any,
        num_classes: int | None = None,
        steps_per_epoch: int | None = None,
        teacher: Any = None,
    ) -> Head:
        from keras_siamese.model import pair_losses, siamese

        loss_class = {
            "multi_similarity": pair_losses.MultiSimilarityLoss,
            "circle": pair_losses.CircleLoss,
            "ntxent": pair_losses.NTXentLoss,
            "supcon": pair_losses.SupConLoss,
            "lifted_structure": pair_losses.LiftedStructureLoss,
        }[config.objective]
        loss = loss_class(**self.loss_options(config))
        if not config.memory_size:
            return Head(siamese.mining_model(tower), loss)
        from keras_siamese.model.memory import CrossBatchMemory

        memory = CrossBatchMemory(config.memory_size, config.memory_warmup_steps, name="memory")
        return Head(siamese.memory_model(tower, memory), memory.wrap(loss))

    def tf_datasets(self, config: RunSettings, part: Partition, steps: int, first_epoch: int):
        train, validation = super().tf_datasets(config, part, steps, first_epoch)
        if not config.memory_size:
            return train, validation

        def labels_as_input(images, labels):
            return (images, labels), labels

        train = train.map(labels_as_input)
        return train, validation if validation is None else validation.map(labels_as_input)

    def numpy_inputs(
        self, config: RunSettings, part: Partition, steps: int, first_epoch: int
    ) -> Inputs:
        inputs = super().numpy_inputs(config, part, steps, first_epoch)
        if not config.memory_size:
            return inputs
        train = (((images, labels), labels) for images, labels in inputs.train)
        validation = inputs.validation
        if validation is not None:
            validation = ((validation[0], validation[1]), validation[1])
        return Inputs(train, validation, inputs.validation_batch_size)

    def example_batch(self, config: RunSettings, rng, num_classes: int, image_shape):
        images, labels = super().example_batch(config, rng, num_classes, image_shape)
        return ((images, labels), labels) if config.memory_size else (images, labels)
