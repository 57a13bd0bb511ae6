"""Typed evaluation results, and their JSON form (metrics.json, eval.json, learning curves).

Every reader (the report, the plots, the canvas, the programs) takes these
classes and reads by attribute; `to_json`/`from_json` are the only place that
knows the files' keys. An optional field that is None is left out of the JSON
(a split without unseen classes has no `unseen` key), and a missing key reads
back as None.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing

import numpy as np


class JsonRecord:
    """Mixin: a dataclass written as a JSON object of its fields, nested records included."""

    def to_json(self) -> dict:
        """The record as JSON-ready dicts and lists."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None:
                out[field.name] = _to_json(value)
        return out

    @classmethod
    def from_json(cls, data: dict):
        """The record that `to_json` wrote (keys it does not know are ignored).

        Raises:
            ValueError: when `data` is not an object or lacks a required key.
        """
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        values = {}
        for field in dataclasses.fields(cls):
            if field.name in data and data[field.name] is not None:
                values[field.name] = _from_json(hints[field.name], data[field.name])
            elif (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                raise ValueError(f"{cls.__name__}: the key {field.name!r} is missing")
        return cls(**values)


def _to_json(value):
    if isinstance(value, JsonRecord):
        return value.to_json()
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    return value


def _from_json(annotation, value):
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        return [_from_json(item, v) for v in value]
    if isinstance(annotation, type) and issubclass(annotation, JsonRecord):
        return annotation.from_json(value)
    return value


# The standard normal quantile of a two-sided 95% interval.
Z95 = 1.959963984540054


def wilson_interval(successes: int, count: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion: right for few trials and for
    proportions of 0 or 1, where the normal approximation's width collapses to 0."""
    p = successes / count
    scale = 1.0 + z * z / count
    centre = (p + z * z / (2 * count)) / scale
    half = z * math.sqrt(p * (1.0 - p) / count + z * z / (4 * count * count)) / scale
    return max(centre - half, 0.0), min(centre + half, 1.0)


@dataclasses.dataclass(frozen=True)
class Accuracy(JsonRecord):
    """A mean over `count` trials and its 95% confidence interval, from `low` to `high`.

    `ci95` is the interval's larger distance from the value (its half-width when it is
    symmetric); records written before `low` and `high` existed hold a normal interval's
    half-width alone.
    """

    value: float
    ci95: float
    count: int
    low: float | None = None
    high: float | None = None

    @classmethod
    def from_hits(cls, hits: np.ndarray) -> Accuracy:
        """The fraction of true `hits`, with the Wilson score interval."""
        hits = np.asarray(hits, dtype=bool)
        count = int(hits.size)
        if count == 0:
            raise ValueError("an accuracy needs at least one trial")
        p = float(hits.mean())
        low, high = wilson_interval(int(hits.sum()), count)
        return cls(value=p, ci95=max(p - low, high - p), count=count, low=low, high=high)

    @classmethod
    def from_means(cls, values: np.ndarray) -> Accuracy:
        """The mean of per-draw scores (episodes, support draws), with its normal 95% CI."""
        values = np.asarray(values, dtype=np.float64)
        count = int(values.size)
        if count == 0:
            raise ValueError("a mean needs at least one value")
        spread = float(values.std(ddof=1)) if count > 1 else 0.0
        mean, half = float(values.mean()), Z95 * spread / math.sqrt(count)
        return cls(value=mean, ci95=half, count=count, low=mean - half, high=mean + half)

    def __str__(self) -> str:
        return f"{self.value:.4f} +- {self.ci95:.4f} (n={self.count:,})"


@dataclasses.dataclass(frozen=True)
class ThresholdAccuracy(JsonRecord):
    """Pair accuracy when "same" means a distance at most `threshold`."""

    threshold: float
    accuracy: Accuracy


@dataclasses.dataclass(frozen=True)
class SeenPairs(JsonRecord):
    """Balanced same/different pairs of seen-class test images."""

    fixed: ThresholdAccuracy
    roc_auc: float
    equal_error_rate: float
    calibrated: ThresholdAccuracy | None = None


@dataclasses.dataclass(frozen=True)
class SeenMetrics(JsonRecord):
    """The seen classes' test images: triplets and pairs."""

    classes: int
    triplet_accuracy: Accuracy
    pair: SeenPairs


@dataclasses.dataclass(frozen=True)
class ReferenceFewShot(JsonRecord):
    """The reference's few-shot pair test, beside always answering "different"."""

    threshold: float
    accuracy: Accuracy
    always_different: float
    positive_fraction: float


@dataclasses.dataclass(frozen=True)
class FewShotPairs(JsonRecord):
    """Few-shot pair accuracy on the unseen classes."""

    balanced_fixed: Accuracy
    reference: ReferenceFewShot
    balanced_calibrated: Accuracy | None = None


@dataclasses.dataclass(frozen=True)
class OneShot(JsonRecord):
    """N-way one-shot classification over every unseen class."""

    ways: int
    chance: float
    first_support: Accuracy
    random_supports: Accuracy


@dataclasses.dataclass(frozen=True)
class Episodes(JsonRecord):
    """Episodic W-way K-shot classification (nearest class mean)."""

    ways: int
    shots: int
    queries: int
    episodes: int
    accuracy: Accuracy


@dataclasses.dataclass(frozen=True)
class Retrieval(JsonRecord):
    """Leave-one-out retrieval among the unseen classes' test images."""

    recall_at_1: Accuracy
    map_at_r: Accuracy


@dataclasses.dataclass(frozen=True)
class UnseenMetrics(JsonRecord):
    """The unseen classes' test images: pairs, one-shot, episodes, retrieval."""

    classes: int
    fewshot_pairs: FewShotPairs
    oneshot: OneShot
    episodes: list[Episodes]
    retrieval: Retrieval

    def episode(self, ways: int, shots: int) -> Episodes | None:
        """The episodic result of `ways`-way `shots`-shot, if it was measured."""
        for ep in self.episodes:
            if ep.ways == ways and ep.shots == shots:
                return ep
        return None


@dataclasses.dataclass(frozen=True)
class Budget(JsonRecord):
    """What a training run spent."""

    objective: str
    epochs: int
    steps_per_epoch: int
    batch_size: int
    images_per_step: int | None = None
    train_seconds: float = 0.0
    init_from: str | None = None  # the export it started from, whose images are not counted
    classifier_weight: float = 0.0  # a batch_* run's classifier beside its mining loss
    precision: str | None = None  # the dtype policy it trained with (--precision=auto resolved)
    # --distill_from: the images its teacher's training spent, not counted in `images`
    teacher_images: int | None = None
    training_seed: int | None = None  # --seed of the training (None in older records)

    @property
    def tower_images_per_step(self) -> int:
        """Images through the tower per step; records without it are of triplets (three)."""
        return self.images_per_step or 3 * self.batch_size

    @property
    def images_per_epoch(self) -> int:
        """Images through the tower per epoch."""
        return self.steps_per_epoch * self.tower_images_per_step

    @property
    def images(self) -> int:
        """Images through the tower in all."""
        return self.epochs * self.images_per_epoch


@dataclasses.dataclass(frozen=True)
class Metrics(JsonRecord):
    """The protocol's metrics of one model (metrics.json; the body of eval.json)."""

    distance: str
    # The seed of the protocol's samples (triplets, pairs, supports, episodes), not the
    # training's (`budget.training_seed`): runs are compared on the same samples.
    evaluation_seed: int
    seen: SeenMetrics
    unseen: UnseenMetrics | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    budget: Budget | None = None
    # Extra rows: the same protocol on embeddings under test-time options.
    with_options: list[OptionMetrics] | None = None

    @classmethod
    def from_json(cls, data: dict):
        """The metrics of a record; one written before the seeds were told apart has the
        evaluation's seed under `seed`."""
        if isinstance(data, dict) and "seed" in data and "evaluation_seed" not in data:
            data = {**data, "evaluation_seed": data["seed"]}
        return super().from_json(data)

    @property
    def random_support_accuracy(self) -> Accuracy | None:
        """N-way one-shot accuracy over random supports; None without unseen classes."""
        return self.unseen.oneshot.random_supports if self.unseen else None

    def episode_accuracy(self, ways: int, shots: int) -> Accuracy | None:
        """The `ways`-way `shots`-shot episodes' accuracy, if they were measured."""
        episode = self.unseen.episode(ways, shots) if self.unseen else None
        return episode.accuracy if episode else None


@dataclasses.dataclass(frozen=True)
class OptionMetrics(JsonRecord):
    """The protocol on embeddings under test-time options: a named row beside the plain one."""

    tta: str
    center: str
    metrics: Metrics

    @property
    def name(self) -> str:
        """How reports name the row, e.g. `tta=flip, center=seen`."""
        parts = [f"tta={self.tta}"] if self.tta != "none" else []
        parts += [f"center={self.center}"] if self.center != "none" else []
        return ", ".join(parts) or "no options"


@dataclasses.dataclass(frozen=True)
class RunFacts(JsonRecord):
    """What eval.json records of the evaluated run."""

    export: str
    dataset: str
    split: str
    distance: str
    margin: float | None = None
    depth: int | None = None
    embedding_size: int | None = None
    budget: Budget | None = None


@dataclasses.dataclass(frozen=True)
class EvalReport:
    """eval.json: the run's facts, its figures, and the metrics beside them."""

    run: RunFacts
    figures: list[str]
    metrics: Metrics

    def to_json(self) -> dict:
        return {"run": self.run.to_json(), "figures": list(self.figures), **self.metrics.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> EvalReport:
        """Raises ValueError when `data` is not an eval.json."""
        if not isinstance(data, dict):
            raise ValueError("eval.json: expected a JSON object")
        body = {k: v for k, v in data.items() if k not in ("run", "figures")}
        return cls(
            run=RunFacts.from_json(data.get("run")),
            figures=list(data.get("figures", [])),
            metrics=Metrics.from_json(body),
        )


@dataclasses.dataclass(frozen=True)
class CurvePoint(JsonRecord):
    """One snapshot of a learning curve: its epoch, file, training seconds and metrics."""

    epoch: int
    file: str
    train_seconds: float
    metrics: Metrics


@dataclasses.dataclass(frozen=True)
class LearningCurve(JsonRecord):
    """learning_curve.json: the protocol on every snapshot of a run."""

    split: str
    seen_test_images_per_class: int
    points: list[CurvePoint]
