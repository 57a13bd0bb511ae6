"""The first generation of a self-distilled run (`--distill_from`): a finished run's
tower and classifier, frozen, giving class scores over the same seen classes.

The tower comes from the run's export and the classifier's weights from its
best-epoch checkpoint (the weights its export was made from), so the run must
have kept one: a classification run of this split without `--ema_decay`.
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras

from keras_siamese import objectives
from keras_siamese import workdir as wd
from keras_siamese.data import splits
from keras_siamese.errors import UserError
from keras_siamese.evaluation.results import Budget
from keras_siamese.model import classifier, test_time
from keras_siamese.serving import export, metadata


@dataclasses.dataclass(frozen=True)
class Teacher:
    """A frozen classifier: uint8 images in, class scores out, and what its scores mean."""

    model: keras.Model
    logit_scale: float  # makes its scores logits (1 for a linear classifier)
    images: int  # images through the tower its training spent


def load_teacher(run_dir: str, dataset: str, split: splits.ClassSplit) -> Teacher:
    """The tower and classifier of the finished run in `run_dir`, frozen.

    Raises:
        UserError: when `run_dir` is not a finished run, not a classification run without
            a weight average, or of another data set or other seen classes than `split`'s.
    """
    flag = f"--distill_from={run_dir}"
    export_dir = os.path.join(run_dir, wd.EXPORT_DIR)
    best = os.path.join(run_dir, wd.BEST_WEIGHTS)
    if not (
        os.path.isfile(os.path.join(run_dir, wd.METRICS_FILE))
        and os.path.isfile(os.path.join(export_dir, metadata.FILE))
    ):
        raise UserError(f"{flag} is not a finished run: it has no metrics.json and export.")
    meta = metadata.read(export_dir)
    config = meta.config
    objectives.CLASSIFICATION.check_teacher(config, flag)
    if meta.dataset != dataset:
        raise UserError(f"{flag} was trained on {meta.dataset}, not on {dataset}.")
    seen = meta.class_split().seen
    leaked = sorted(set(seen) & set(split.unseen))
    if leaked:
        raise UserError(
            f"{flag} was trained on {len(leaked)} of the classes that split {split.name} holds "
            f"out as unseen (class {leaked[0]} first): its one-shot scores would not be one-shot."
        )
    if sorted(seen) != sorted(split.seen):
        raise UserError(
            f"{flag} was trained on {len(seen)} classes, not on the "
            f"{len(split.seen)} seen classes of split {split.name}: its scores would not match."
        )
    if not os.path.isfile(best):
        raise UserError(
            f"{flag} kept no classifier weights ({wd.BEST_WEIGHTS}; a run with --ema_decay "
            "keeps none): train the teacher without a weight average."
        )
    cosine = objectives.CLASSIFICATION.is_cosine(config["objective"])
    tower = test_time.base_tower(export.load_tower(export_dir))
    model = classifier.classifier_model(tower, len(split.seen), cosine=cosine)
    try:
        model.load_weights(best)
    except (ValueError, KeyError) as e:
        raise UserError(f"{flag}: its {wd.BEST_WEIGHTS} does not fit its export ({e}).") from None
    teacher = keras.Model(model.inputs[0], model.outputs[0], name="teacher")
    teacher.trainable = False
    with open(os.path.join(run_dir, wd.METRICS_FILE), encoding="utf-8") as f:
        budget = json.load(f).get("budget") or {}
    images = Budget.from_json(budget).images if budget else 0
    scale = float(config.get("logit_scale", 1.0)) if cosine else 1.0
    return Teacher(model=teacher, logit_scale=scale, images=images)
