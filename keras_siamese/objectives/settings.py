"""The settings of the objective and its loss, declared once for every family.

Which family reads which of them is declared by the families themselves
(`Objective.owns`); `keras_siamese.objectives.check` refuses a setting given to
an objective that does not read it.
"""

from __future__ import annotations

import dataclasses

from keras_siamese.choices import DEFAULT_MARGINS, DISTANCES, PAIR_HEADS, SEMIHARD_RULES
from keras_siamese.errors import ConfigError
from keras_siamese.objectives import OBJECTIVES
from keras_siamese.settings import setting


@dataclasses.dataclass(frozen=True)
class ObjectiveSettings:
    """The training objective, its distance, margin and loss options."""

    TITLE = "Objective and loss"

    distance: str = setting("cosine", "Distance of the triplet loss.", DISTANCES)
    margin: float | None = setting(
        None, "Triplet margin; default 0.3 for cosine, 1.0 for (squared) euclidean."
    )
    soft_margin: bool = setting(
        False,
        "batch_hard: softplus(hardest positive - hardest negative) in place of the hinge at "
        "--margin (the soft margin of Hermans et al. 2017); the margin still defines "
        "violating_fraction.",
    )
    selective_contrast: bool = setting(
        False,
        "batch_hard, cosine distance: where an anchor's hardest negative is nearer than its "
        "hardest positive, only push that negative away (its cosine similarity is the loss) "
        "instead of the triplet's pull and push (Xuan et al. 2020).",
    )
    root_distance: bool = setting(
        False,
        "batch_*: the loss compares the square roots of the distances, the plain (not "
        "squared) euclidean distance of Hermans et al. 2017 (under cosine distance "
        "sqrt(1 - cos)); --margin and violating_fraction are in those units. Evaluation "
        "is unchanged: the roots keep the distances' order.",
    )
    semihard_rule: str = setting(
        "window",
        "batch_semihard: which negative each anchor-positive pair takes. window: the closest "
        "one with d(a,p) < d(a,n) < d(a,p) + margin, else the hardest negative (FaceNet's "
        "semi-hard negatives); tensorflow: the closest one with d(a,n) > d(a,p), else the "
        "farthest negative (TensorFlow's triplet_semihard_loss).",
        SEMIHARD_RULES,
    )
    mining_warmup_epochs: int = setting(
        0,
        "batch_hard: mine every violating triplet of the batch (as batch_all does) for this "
        "many epochs first, then only each anchor's hardest; 0: the hardest from the start.",
    )
    objective: str = setting(
        "triplet",
        "triplet: random triplets through the three-input model (the reference); batch_all, "
        "batch_hard, batch_semihard: triplets mined inside P x K batches; contrastive: pairs; "
        "softmax: a linear classifier over the seen classes on the embedding; normsoftmax: a "
        "cosine classifier (see --logit_scale, --class_margin); multi_similarity, circle, "
        "ntxent, supcon, lifted_structure: pair-based losses on P x K batches; proxy_anchor, "
        "proxy_nca, arcface, subcenter_arcface: proxy-based losses on class batches. "
        "Classifiers and proxies are not exported.",
        OBJECTIVES,
    )
    classes_per_batch: int = setting(32, "P: classes per batch (batch_* objectives).")
    images_per_class: int = setting(4, "K: images per class (batch_* objectives).")
    classifier_weight: float = setting(
        0.0,
        "batch_*: add this weight times a cosine classifier's loss over the seen classes "
        "(--logit_scale, --class_margin, --label_smoothing) on the same P x K batches; the "
        "classifier is not exported. 0: the mining loss alone.",
    )
    pair_head: str = setting(
        "contrastive",
        "contrastive objective: contrastive loss on the distance, or bce: a sigmoid unit on "
        "|e1 - e2| with binary cross-entropy.",
        PAIR_HEADS,
    )
    logit_scale: float = setting(
        16.0, "normsoftmax: the scale of the cosine logits (the softmax temperature's inverse)."
    )
    class_margin: float = setting(
        0.0,
        "normsoftmax: subtracted from the true class's cosine before scaling (CosFace); 0 or "
        "negative values are allowed.",
    )
    label_smoothing: float = setting(
        0.0, "softmax, normsoftmax: share of each target spread over all classes, in [0, 1)."
    )

    @property
    def resolved_margin(self) -> float:
        """The margin, or the reference's default for the distance."""
        return DEFAULT_MARGINS[self.distance] if self.margin is None else self.margin

    def check_loss(self) -> None:
        """Raises ConfigError for a loss option out of its range, whatever the objective."""
        if not self.logit_scale > 0:
            raise ConfigError(f"--logit_scale={self.logit_scale} must be greater than 0.")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"--label_smoothing={self.label_smoothing} must be in [0, 1).")


@dataclasses.dataclass(frozen=True)
class LossCatalogueSettings:
    """The hyperparameters of the pair-based and proxy-based losses, with the papers' and
    pytorch-metric-learning's defaults."""

    TITLE = "Pair-based and proxy-based losses"

    ms_alpha: float = setting(
        2.0, "multi_similarity: the scale of the positive pairs' term (alpha), > 0."
    )
    ms_beta: float = setting(
        50.0, "multi_similarity: the scale of the negative pairs' term (beta), > 0."
    )
    ms_base: float = setting(
        0.5, "multi_similarity: the cosine similarity the pairs are weighed against."
    )
    circle_m: float = setting(0.4, "circle: the relaxation margin m, in [0, 1].")
    circle_gamma: float = setting(80.0, "circle: the scale gamma, > 0.")
    ntxent_temperature: float = setting(0.07, "ntxent: the softmax temperature, > 0.")
    supcon_temperature: float = setting(0.1, "supcon: the softmax temperature, > 0.")
    lifted_neg_margin: float = setting(
        1.0, "lifted_structure: the margin negative pairs' distances are pushed past."
    )
    lifted_pos_margin: float = setting(
        0.0, "lifted_structure: the distance positive pairs are pulled within."
    )
    proxy_anchor_margin: float = setting(0.1, "proxy_anchor: the margin delta, in [0, 1).")
    proxy_anchor_alpha: float = setting(32.0, "proxy_anchor: the scale alpha, > 0.")
    proxy_nca_scale: float = setting(
        1.0, "proxy_nca: the scale of the distances inside the softmax, > 0."
    )
    arcface_margin: float = setting(
        28.6, "arcface, subcenter_arcface: the additive angular margin in degrees, in [0, 90)."
    )
    arcface_scale: float = setting(64.0, "arcface, subcenter_arcface: the logits' scale, > 0.")
    sub_centers: int = setting(3, "subcenter_arcface: proxies per class, at least 1.")
    memory_size: int = setting(
        0,
        "The pair-based objectives: a cross-batch memory of the last N images trained on, "
        "which each batch is paired with too; at least one batch (0: none).",
    )
    memory_warmup_steps: int = setting(
        0, "The cross-batch memory: training steps before its images pair with the batch."
    )
    proxy_lr_multiplier: float = setting(
        1.0,
        "The proxy-based objectives: the proxies' learning rate over the tower's (the "
        "Proxy-Anchor paper trains them 100 times faster), > 0.",
    )
