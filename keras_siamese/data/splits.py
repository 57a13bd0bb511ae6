"""Class splits: which classes are seen in training and which are held out.

A split `SEEN_UNSEEN` (e.g. `80_20`) divides the classes of a data set. As in
the reference project, the default order puts the first class indices in the
seen part and the last ones in the unseen part; `order="random"` draws a
seeded partition instead. The seen classes' train images are further divided
into a train part and a validation part (for checkpoint selection and, later,
threshold calibration); unseen classes only ever appear in test data.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence

import numpy as np

from keras_siamese.data.datasets import ImageDataset
from keras_siamese.errors import ConfigError, DataError

SPLIT_ORDERS = ("sequential", "random")


@dataclasses.dataclass(frozen=True)
class ClassSplit:
    """Seen and unseen class indices of one data set."""

    seen: tuple[int, ...]
    unseen: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"{len(self.seen)}_{len(self.unseen)}"


def parse_split(spec: str, num_classes: int) -> tuple[int, int]:
    """Parses `SEEN_UNSEEN` and checks that it covers every class.

    Raises:
        ConfigError: for a malformed string or counts that do not sum up.
    """
    match = re.fullmatch(r"(\d+)_(\d+)", spec.strip())
    if not match:
        raise ConfigError(
            f"--split={spec} is not of the form SEEN_UNSEEN (for example 80_20 or 100_0)."
        )
    seen, unseen = int(match.group(1)), int(match.group(2))
    if seen + unseen != num_classes:
        raise ConfigError(
            f"--split={spec} covers {seen + unseen} classes but the data set has "
            f"{num_classes}: the two numbers must sum to {num_classes}."
        )
    if seen < 2:
        raise ConfigError(
            f"--split={spec} leaves {seen} seen class(es): training needs at least 2."
        )
    return seen, unseen


def make_split(spec: str, num_classes: int, order: str = "sequential", seed: int = 0) -> ClassSplit:
    """Builds the class split named by `spec`.

    Args:
        spec: `SEEN_UNSEEN`, e.g. `90_10`.
        num_classes: number of classes in the data set.
        order: `sequential` (seen = first indices, as the reference) or `random`.
        seed: seed of the random partition.
    """
    num_seen, _ = parse_split(spec, num_classes)
    if order == "sequential":
        classes = np.arange(num_classes)
    elif order == "random":
        classes = np.random.default_rng(seed).permutation(num_classes)
    else:
        raise ConfigError(f"--split_order={order} is unknown: choose sequential or random.")
    seen = tuple(sorted(int(c) for c in classes[:num_seen]))
    unseen = tuple(sorted(int(c) for c in classes[num_seen:]))
    return ClassSplit(seen=seen, unseen=unseen)


def split_by_names(unseen_names: Sequence[str], class_names: Sequence[str]) -> ClassSplit:
    """The split that holds out the classes named `unseen_names` and sees the rest.

    Raises:
        ConfigError: for a name that is not a class, a name given twice, or
            fewer than two classes left to train on.
    """
    index = {name: i for i, name in enumerate(class_names)}
    missing = [n for n in unseen_names if n not in index]
    if missing:
        shown = ", ".join(list(class_names)[:5]) + (", ..." if len(class_names) > 5 else "")
        raise ConfigError(
            f"--unseen_classes names {missing[0]!r}, which is not a class of the data ({shown})."
        )
    if len(set(unseen_names)) != len(unseen_names):
        raise ConfigError("--unseen_classes names a class twice.")
    unseen = tuple(sorted(index[n] for n in unseen_names))
    seen = tuple(i for i in range(len(class_names)) if i not in unseen)
    if len(seen) < 2:
        raise ConfigError(
            f"--unseen_classes leaves {len(seen)} seen class(es): training needs at least 2."
        )
    return ClassSplit(seen=seen, unseen=unseen)


def split_of(
    spec: str,
    class_names: Sequence[str],
    order: str = "sequential",
    seed: int = 0,
    unseen_names: Sequence[str] | None = None,
) -> ClassSplit:
    """The split of a run: the named unseen classes if given, else `make_split` by counts."""
    if unseen_names:
        return split_by_names(unseen_names, class_names)
    return make_split(spec, len(class_names), order, seed)


def check_unseen_test_images(split: ClassSplit, dataset: ImageDataset) -> None:
    """Raises DataError unless every unseen class has a support and a query among its test
    images (two or more)."""
    counts = np.bincount(np.asarray(dataset.test_labels), minlength=dataset.num_classes)
    for c in split.unseen:
        if counts[c] < 2:
            raise DataError(
                f"Unseen class {dataset.class_names[c]!r} has {counts[c]} test image(s): "
                "one-shot needs a support and a query; give it more images (or a larger "
                "--test_fraction)."
            )


def hold_out(split: ClassSplit, count: int, seed: int = 0) -> tuple[ClassSplit, tuple[int, ...]]:
    """Holds `count` seeded seen classes out of training, for tuning on unseen-like classes.

    Returns:
        A split whose seen classes are the rest and that has no unseen classes
        (the real unseen classes stay out of a search entirely), and the
        held-out classes, sorted.

    Raises:
        ConfigError: unless at least two seen classes remain.
    """
    if count > len(split.seen) - 2:
        raise ConfigError(
            f"--val_classes={count} leaves fewer than 2 of the {len(split.seen)} seen classes "
            "to train on."
        )
    held = np.random.default_rng(seed).choice(split.seen, size=count, replace=False)
    held = tuple(sorted(int(c) for c in held))
    rest = tuple(c for c in split.seen if c not in held)
    return ClassSplit(seen=rest, unseen=()), held


@dataclasses.dataclass(frozen=True)
class Partition:
    """The arrays of one run, divided by role.

    Attributes:
        split: the class split.
        train_images/train_labels: seen classes' train images minus validation.
        val_images/val_labels: validation images carved from seen train images.
        test_seen_images/test_seen_labels: test images of the seen classes.
        test_unseen_images/test_unseen_labels: test images of the unseen classes.
    """

    split: ClassSplit
    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    test_seen_images: np.ndarray
    test_seen_labels: np.ndarray
    test_unseen_images: np.ndarray
    test_unseen_labels: np.ndarray


# Validation images a seen class gives when --val_fraction > 0: a positive pair, so that
# validation triplets and pairs can be drawn from every class.
VALIDATION_IMAGES_PER_CLASS = 2


def partition(
    dataset: ImageDataset,
    split: ClassSplit,
    val_fraction: float,
    seed: int = 0,
    min_val_images: int = VALIDATION_IMAGES_PER_CLASS,
) -> Partition:
    """Divides a data set's arrays by the roles of `split`.

    Validation takes `round(val_fraction * n)` images of each seen class
    (seeded, at least `min_val_images` when `val_fraction > 0`; exports written
    before that minimum took at least one), and every seen class keeps at least
    two train images so that a positive pair exists. Test images keep their
    order, so "the first test image of a class" stays the official one.

    Raises:
        ConfigError: for a bad fraction, or a class too small for the validation split
            and training both, naming the smallest class and the fraction that would do.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"--val_fraction={val_fraction} must be in [0, 1).")
    by_class = {c: np.flatnonzero(dataset.train_labels == c) for c in split.seen}
    for c in sorted(split.seen, key=lambda c: len(by_class[c])):
        _check_validation_carve_out(dataset, c, len(by_class[c]), val_fraction, min_val_images)
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for c in split.seen:
        idx = by_class[c]
        num_val = _validation_count(len(idx), val_fraction, min_val_images)
        chosen = np.zeros(len(idx), dtype=bool)
        chosen[rng.choice(len(idx), size=num_val, replace=False)] = True
        val_idx.append(idx[chosen])
        train_idx.append(idx[~chosen])
    train = np.sort(np.concatenate(train_idx))
    val = np.sort(np.concatenate(val_idx))
    seen_test = np.flatnonzero(np.isin(dataset.test_labels, split.seen))
    unseen_test = np.flatnonzero(np.isin(dataset.test_labels, split.unseen))
    return Partition(
        split=split,
        train_images=dataset.train_images[train],
        train_labels=dataset.train_labels[train],
        val_images=dataset.train_images[val],
        val_labels=dataset.train_labels[val],
        test_seen_images=dataset.test_images[seen_test],
        test_seen_labels=dataset.test_labels[seen_test],
        test_unseen_images=dataset.test_images[unseen_test],
        test_unseen_labels=dataset.test_labels[unseen_test],
    )


def _validation_count(images: int, val_fraction: float, min_val_images: int) -> int:
    if val_fraction <= 0:
        return 0
    return max(round(val_fraction * images), min_val_images)


def _check_validation_carve_out(
    dataset: ImageDataset, c: int, images: int, val_fraction: float, min_val_images: int
) -> None:
    """Raises ConfigError when the validation split leaves class `c` under 2 train images."""
    held = _validation_count(images, val_fraction, min_val_images)
    if images - held >= 2:
        return
    name = dataset.class_names[c]
    if val_fraction <= 0:
        raise ConfigError(
            f"Class {name!r}, the smallest seen class, has {images} train image(s): "
            "training needs at least 2 (a positive pair)."
        )
    if images < 2 + min_val_images:
        fix = (
            f"give it at least {2 + min_val_images} images, or train without a validation "
            "split (--val_fraction=0)"
        )
    else:
        # The largest fraction whose rounded share still leaves two train images.
        fraction = math.floor(100 * (images - 2.5) / images) / 100
        fix = f"use --val_fraction={fraction:g} or less"
    raise ConfigError(
        f"The validation split (--val_fraction={val_fraction:g}) takes {held} of the "
        f"{images} train images of class {name!r}, the smallest seen class, leaving "
        f"{images - held}; training needs 2 and validation {min_val_images}: {fix}."
    )


def seen_class_indices(split: ClassSplit, labels: np.ndarray) -> np.ndarray:
    """`labels` as a classifier's outputs number them: the seen classes in order, from 0."""
    return np.searchsorted(np.asarray(sorted(split.seen)), labels)
