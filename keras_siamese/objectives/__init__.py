"""The training objectives, one module per family, and the one place that picks a family.

`objective_of(config)` is the dispatch: the rest of the package asks the family
for its batches, model, loss and costs. `check(config, num_seen)` runs the
family's own checks after one generic rule: a setting that another family owns
keeps its default.
"""

from __future__ import annotations

from keras_siamese.errors import ConfigError
from keras_siamese.objectives.base import Head, Inputs, Objective, Owned, RunSettings
from keras_siamese.objectives.classification import Classification
from keras_siamese.objectives.pair_based import PairBased
from keras_siamese.objectives.pairs import Pairs
from keras_siamese.objectives.pk_mining import PKMining
from keras_siamese.objectives.proxy_based import ProxyBased
from keras_siamese.objectives.triplets import Triplets
from keras_siamese.settings import defaults_of

__all__ = [
    "CLASSIFICATION",
    "FAMILIES",
    "OBJECTIVES",
    "Head",
    "Inputs",
    "Objective",
    "Owned",
    "RunSettings",
    "check",
    "check_backend",
    "objective_of",
    "takes",
]

CLASSIFICATION = Classification()
FAMILIES: tuple[Objective, ...] = (
    Triplets(),
    PKMining(),
    Pairs(),
    CLASSIFICATION,
    PairBased(),
    ProxyBased(),
)
# The reference's objective first: the default of --objective.
OBJECTIVES = tuple(name for family in FAMILIES for name in family.names)
_BY_NAME = {name: family for family in FAMILIES for name in family.names}


def objective_of(config_or_name: RunSettings | str) -> Objective:
    """The family that serves a configuration's `--objective` (or an objective's name)."""
    name = getattr(config_or_name, "objective", config_or_name)
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ConfigError(
            f"--objective={name} is unknown: choose one of {', '.join(OBJECTIVES)}."
        ) from None


def _owner(setting: str) -> tuple[Objective, Owned] | None:
    for family in FAMILIES:
        if setting in family.owns:
            return family, family.owns[setting]
    return None


def takes(objective: str, setting: str) -> bool:
    """Whether `--objective=objective` reads `setting` (every setting no family owns)."""
    owner = _owner(setting)
    if owner is None:
        return True
    family, owned = owner
    return objective in (owned.objectives or family.names)


def check(config: RunSettings, num_seen: int | None) -> None:
    """Raises ConfigError for a setting the objective does not read, or its family refuses.

    A setting owned by other objectives is refused unless it keeps its default.
    """
    defaults = defaults_of(config)
    for family in FAMILIES:
        for name, owned in family.owns.items():
            value = getattr(config, name)
            if value == defaults[name] or takes(config.objective, name):
                continue
            who = family.who(owned.objectives)
            lead = f"--{name} {owned.purpose}: it is for" if owned.purpose else f"--{name} is for"
            raise ConfigError(f"{lead} {who}, not --objective={config.objective}.")
    objective_of(config).check(config, num_seen)


def check_backend(config: RunSettings, backend: str) -> None:
    """Raises ConfigError when `config` needs batches that only tf.data builds."""
    family = objective_of(config)
    for name in family.tf_only:
        value = getattr(config, name)
        if value:
            flag = f"--objective={value}" if name == "objective" else f"--{name}"
            raise ConfigError(
                f"{flag} needs the TensorFlow backend (its batches are built with tf.data); "
                f"KERAS_BACKEND={backend} trains the other objectives and levers."
            )
