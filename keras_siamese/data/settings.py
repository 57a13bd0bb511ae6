"""The settings of a run's data: the data set, its source, its class split and the
validation images, and how a user's own images are read; checked before any is read."""

from __future__ import annotations

import dataclasses

from keras_siamese.data import splits
from keras_siamese.data.datasets import (
    DATASETS,
    FOLDER,
    SOURCES,
    dataset_info,
    is_own_images,
    is_tfds_name,
)
from keras_siamese.data.folder import FolderOptions
from keras_siamese.errors import ConfigError
from keras_siamese.settings import defaults_of, setting

# `folder`: a folder of class subfolders of images (keras_siamese.data.folder); any
# `tfds:NAME` is taken too (keras_siamese.data.tfds_source).
DATASET_NAMES = (*DATASETS, FOLDER)
# The settings of how a run reads its own images, which other data sets must leave alone.
OWN_IMAGE_SETTINGS = ("image_size", "channels", "test_fraction", "skip_bad_images")
OWN_IMAGES = "Your own images (--dataset=folder)"


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """Where a run's images come from and how its classes are split."""

    TITLE = "Run and data"

    workdir: str = setting("", "Folder of this run (created if missing).")
    dataset: str = setting(
        "cifar100",
        "Data set: cifar100, mnist, folder (your own images in --data_dir, one subfolder "
        "per class, optionally inside train/ and test/), or tfds:NAME (an image-classification "
        "data set of tensorflow-datasets already prepared under --data_dir).",
    )
    data_dir: str | None = setting(
        None,
        "Folder with the data files (or its parent); the tfds cache folder for --data_source=tfds.",
    )
    data_source: str = setting(
        "auto", "Where the images come from; auto picks from the files in --data_dir.", SOURCES
    )
    image_size: int = setting(
        32,
        "folder, tfds:NAME: the side of the square images the model takes; each is resized "
        "whole to it (32 for the CIFAR-style tower, 64 or 96 for larger photos).",
        group=OWN_IMAGES,
    )
    channels: int = setting(
        3, "folder, tfds:NAME: 3 (colour) or 1 (grey), converted.", group=OWN_IMAGES
    )
    test_fraction: float = setting(
        0.2,
        "folder without train/ and test/, tfds:NAME without a test split: share of each "
        "class's images held out as test images (seeded by --split_seed, at least one).",
        group=OWN_IMAGES,
    )
    skip_bad_images: bool = setting(
        False,
        "folder: leave out (and count) files that are not readable images; off by default, "
        "so that a damaged file is noticed, not silently lost.",
        group=OWN_IMAGES,
    )
    split: str = setting(
        "90_10", "SEEN_UNSEEN class counts, e.g. 90_10 or 100_0; must sum to all classes."
    )
    unseen_classes: str = setting(
        "",
        "Hold out these classes, by name (comma-separated), instead of --split's counts: "
        "the classes to recognise one-shot.",
    )
    unseen_classes_file: str = setting(
        "", "A file naming the classes to hold out, one per line (# starts a comment)."
    )
    split_order: str = setting(
        "sequential",
        "sequential: seen = first class indices (the reference); random: seeded partition.",
        splits.SPLIT_ORDERS,
    )
    split_seed: int = setting(0, "Seed of the random split and of the validation carve-out.")
    val_fraction: float = setting(
        0.1, "Fraction of each seen class's train images held out for validation."
    )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The shape of the model's input images."""
        if self.reads_its_own_images:
            return (self.image_size, self.image_size, self.channels)
        return dataset_info(self.dataset).image_shape

    @property
    def known_num_seen(self) -> int | None:
        """The number of seen classes where it is known before the data are read."""
        if self.reads_its_own_images or self.holds_out_by_name:
            return None
        return splits.parse_split(self.split, dataset_info(self.dataset).num_classes)[0]

    @property
    def holds_out_by_name(self) -> bool:
        """Whether the unseen classes are named (--unseen_classes or its file)."""
        return bool(self.unseen_classes or self.unseen_classes_file)

    def unseen_class_names(self) -> list[str] | None:
        """The named unseen classes, or None when --split's counts decide.

        Raises:
            ConfigError: when the file of names cannot be read.
        """
        if self.unseen_classes:
            return [n.strip() for n in self.unseen_classes.split(",") if n.strip()]
        if not self.unseen_classes_file:
            return None
        try:
            with open(self.unseen_classes_file, encoding="utf-8") as f:
                lines = [line.split("#", 1)[0].strip() for line in f]
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(
                f"--unseen_classes_file={self.unseen_classes_file} cannot be read ({e})."
            ) from None
        return [line for line in lines if line]

    def folder_options(self) -> FolderOptions:
        """How `--dataset=folder` reads its images."""
        return FolderOptions(
            image_size=self.image_size,
            channels=self.channels,
            test_fraction=self.test_fraction,
            seed=self.split_seed,
            skip_bad_images=self.skip_bad_images,
        )

    @property
    def reads_its_own_images(self) -> bool:
        """Whether images are made to --image_size and --channels (a folder, a tfds set)."""
        return is_own_images(self.dataset)

    def check_data(self) -> None:
        """Raises ConfigError for a data setting that cannot work, before any image is read."""
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"--val_fraction={self.val_fraction} must be in [0, 1).")
        if self.dataset not in DATASET_NAMES and not is_tfds_name(self.dataset):
            raise ConfigError(
                f"--dataset={self.dataset} is unknown: choose one of "
                f"{', '.join(DATASET_NAMES)}, or tfds:NAME."
            )
        if self.unseen_classes and self.unseen_classes_file:
            raise ConfigError("Give --unseen_classes or --unseen_classes_file, not both.")
        if self.holds_out_by_name and not self.unseen_class_names():
            raise ConfigError("--unseen_classes names no class.")
        if not self.reads_its_own_images:
            defaults = defaults_of(self)
            for name in OWN_IMAGE_SETTINGS:
                # A Keras Applications tower computes at --image_size, resizing the images.
                resized = name == "image_size" and getattr(self, "uses_application", False)
                if getattr(self, name) != defaults[name] and not resized:
                    raise ConfigError(
                        f"--{name} is for --dataset=folder or tfds:NAME; {self.dataset} images "
                        "have a fixed size and test split."
                    )
            return
        if self.dataset == FOLDER and not self.data_dir:
            raise ConfigError("--dataset=folder needs --data_dir: the folder of class folders.")
        if not 8 <= self.image_size <= 512:
            raise ConfigError(f"--image_size={self.image_size} must be from 8 to 512 pixels.")
        if self.channels not in (1, 3):
            raise ConfigError(f"--channels={self.channels} must be 1 (grey) or 3 (colour).")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"--test_fraction={self.test_fraction} must be between 0 and 1.")
