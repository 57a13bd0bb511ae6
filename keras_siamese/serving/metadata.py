"""metadata.json of an export: the one place that writes and reads it.

Every client of an export (eval_main, the canvas, a user's code) reads the
metadata through `read`, by attribute. The file carries a `format` version:
an export of a newer format than this code knows is refused in one line, and
every earlier one keeps loading.
"""

from __future__ import annotations

import dataclasses
import json
import os

from keras_siamese import files
from keras_siamese.data import splits
from keras_siamese.data.datasets import DATASETS, is_own_images
from keras_siamese.errors import UserError
from keras_siamese.evaluation.results import JsonRecord, Metrics
from keras_siamese.model import distances

FILE = "metadata.json"
FORMAT_NAME = "keras_siamese.export"
# Version 2 exports may hold test-time options (keras_siamese.model.test_time) in
# their model. An export without them is written as version 1, which older code reads.
FORMAT_VERSION = 2
FORMAT = f"{FORMAT_NAME}/1"


@dataclasses.dataclass(frozen=True)
class ExportMetadata(JsonRecord):
    """What an export records of its model, its data and the run that trained it."""

    dataset: str
    split: str
    split_order: str
    split_seed: int
    val_fraction: float
    distance: str
    format: str = FORMAT
    data_source: str | None = None
    input_shape: list[int] | None = None
    input_dtype: str = "uint8"
    seen_classes: list[int] | None = None
    unseen_classes: list[int] | None = None
    class_names: list[str] | None = None
    margin: float | None = None
    depth: int | None = None
    embedding: str | None = None
    embedding_size: int | None = None
    l2_normalize: bool = False
    tta: str = "none"
    center: str = "none"
    # The Keras dtype policies that trained the tower and that the exported tower computes
    # in (None in exports written before they were recorded).
    precision: str | None = None
    export_precision: str | None = None
    # The tower (None: the CIFAR ResNet of `depth`) and the weights it started from (a name,
    # or a file and its SHA-256).
    backbone: str | None = None
    backbone_weights: dict | None = None
    # The fewest validation images a seen class gave (None: an export written when it was
    # one; now `splits.VALIDATION_IMAGES_PER_CLASS`), so that the partition is rebuilt exactly.
    min_val_images: int | None = None
    normalization: dict | None = None
    config: dict = dataclasses.field(default_factory=dict)
    versions: dict = dataclasses.field(default_factory=dict)
    metrics: Metrics | None = None

    def class_split(self) -> splits.ClassSplit:
        """The split of classes into seen and unseen that the exported model was trained on."""
        if self.seen_classes is not None and self.unseen_classes is not None:
            return splits.ClassSplit(tuple(self.seen_classes), tuple(self.unseen_classes))
        num_classes = DATASETS[self.dataset].num_classes
        return splits.make_split(self.split, num_classes, self.split_order, self.split_seed)

    @property
    def has_options(self) -> bool:
        """Whether the exported model applies test-time options (flip averaging, centring)."""
        return self.tta != "none" or self.center != "none"

    def threshold(self) -> tuple[float, str]:
        """The distance at or under which two images count as one class, and its source.

        The threshold calibrated on validation pairs when the run's evaluation
        recorded one; else the reference's fixed rule for the distance.
        """
        calibrated = self.metrics.seen.pair.calibrated if self.metrics else None
        if calibrated is not None:
            return float(calibrated.threshold), "calibrated on validation pairs"
        return distances.FIXED_THRESHOLDS[self.distance], "the reference's fixed rule"


def write(export_dir: str, metadata: ExportMetadata) -> None:
    """Writes `export_dir/metadata.json` atomically, in the oldest format that holds it."""
    version = 2 if metadata.has_options else 1
    metadata = dataclasses.replace(metadata, format=f"{FORMAT_NAME}/{version}")
    files.write_json_atomic(os.path.join(export_dir, FILE), metadata.to_json())


def _check_format(path: str, value) -> None:
    name, _, version = str(value).partition("/")
    if name != FORMAT_NAME or not version.isdigit():
        raise UserError(f"{path} has the format {value!r}: it is not a keras_siamese export.")
    if int(version) > FORMAT_VERSION:
        raise UserError(
            f"{path} is of export format {version}, newer than the {FORMAT_VERSION} this "
            "keras_siamese reads: upgrade keras_siamese to use it."
        )


def read(export_dir: str) -> ExportMetadata:
    """The metadata of the complete export in `export_dir`.

    Raises:
        UserError: when the export is missing, incomplete, unreadable, of a
            newer format, or names an unknown data set.
    """
    path = os.path.join(export_dir, FILE)
    inner = os.path.join(export_dir, "export")
    if not os.path.isfile(path) and os.path.isfile(os.path.join(inner, FILE)):
        raise UserError(f"{export_dir} is a run folder, not its export: give {inner}.")
    if not os.path.isfile(path):
        raise UserError(
            f"{export_dir} holds no complete export ({FILE} is missing: not an export); "
            "train the run with keras-siamese train first."
        )
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is unreadable ({e}).") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} holds no JSON object: it is not a keras_siamese export.")
    _check_format(path, data.get("format", FORMAT))
    try:
        metadata = ExportMetadata.from_json(data)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise UserError(f"{path} is not a complete keras_siamese export ({e}).") from None
    if metadata.dataset not in DATASETS and not (
        is_own_images(metadata.dataset) and metadata.input_shape and metadata.class_names
    ):
        raise UserError(
            f"{path} names the data set {metadata.dataset!r}, which is not one of "
            f"{', '.join(DATASETS)}."
        )
    return metadata
