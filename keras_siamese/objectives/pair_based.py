"""The pair-based losses on batches of P classes x K images: multi-similarity, circle,
NT-Xent, supervised contrastive and lifted structure (`keras_siamese.model.pair_losses`).

Every pair of the batch counts; the tower is trained alone on labelled images,
as the batch-mining objectives train it, on the same P x K batches.
"""

from __future__ import annotations

from typing import Any

from keras_siamese.errors import ConfigError
from keras_siamese.objectives.base import Head, Owned, RunSettings
from keras_siamese.objectives.pk_mining import PKMining

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
        setting: Owned((objective,))
        for objective, settings in HYPERPARAMETERS.items()
        for setting in settings
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
        return Head(siamese.mining_model(tower), loss_class(**self.loss_options(config)))
