"""Self-distillation in one command (`--generations=G`): the generations of one run.

Each generation but the last trains in a sub-folder of the run folder
(`generation_1`, ...), each after the first distilled from the one before; the
last trains in the run folder itself, distilled from the one before it, and its
export is the run's. Every generation is an ordinary run of its folder, so a
kill anywhere resumes in the generation it stopped in.
"""

from __future__ import annotations

import dataclasses
import os

from keras_siamese.config import TrainConfig

FOLDER = "generation_{}"


def folder(config: TrainConfig, generation: int) -> str:
    """The folder of generation `generation` (from 1) of the run of `config`."""
    if generation == config.generations:
        return config.workdir
    return os.path.join(config.workdir, FOLDER.format(generation))


def earlier_generations(config: TrainConfig) -> list[TrainConfig]:
    """The settings of the generations before the last: the run's own but its folder,
    one generation each, and the teacher (none for the first)."""
    earlier = []
    for generation in range(1, config.generations):
        teacher = folder(config, generation - 1) if generation > 1 else ""
        earlier.append(
            dataclasses.replace(
                config,
                workdir=folder(config, generation),
                generations=1,
                distill_from=teacher,
            )
        )
    return earlier


def teacher_folder(config: TrainConfig) -> str:
    """The finished run the run of `config` distils from: `--distill_from`, or the
    generation before its last; empty for none."""
    if config.generations > 1:
        return folder(config, config.generations - 1)
    return config.distill_from
