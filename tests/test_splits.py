import numpy as np
import pytest

from keras_siamese.data import splits
from keras_siamese.data.datasets import DATASETS, ImageDataset
from keras_siamese.errors import ConfigError


def _tiny_dataset(num_classes=10, train_per_class=10, test_per_class=3):
    info = DATASETS["mnist"]
    train_labels = np.tile(np.arange(num_classes), train_per_class)  # interleaved classes
    test_labels = np.tile(np.arange(num_classes), test_per_class)
    images = np.zeros((len(train_labels), 28, 28, 1), np.uint8)
    images[:, 0, 0, 0] = np.arange(len(train_labels)) % 256
    test_images = np.zeros((len(test_labels), 28, 28, 1), np.uint8)
    test_images[:, 0, 0, 0] = np.arange(len(test_labels))
    return ImageDataset(
        info,
        images,
        train_labels,
        test_images,
        test_labels,
        tuple(str(i) for i in range(num_classes)),
        "tiny",
    )


@pytest.mark.parametrize(
    "spec,message",
    [
        ("95_10", "covers 105 classes"),
        ("abc", "not of the form SEEN_UNSEEN"),
        ("90-10", "not of the form SEEN_UNSEEN"),
        ("1_99", "at least 2"),
    ],
)
def test_bad_split_strings(spec, message):
    with pytest.raises(ConfigError, match=message):
        splits.parse_split(spec, 100)


def test_sequential_split_is_the_reference_order():
    split = splits.make_split("80_20", 100)
    assert split.seen == tuple(range(80)) and split.unseen == tuple(range(80, 100))
    assert splits.make_split("100_0", 100).unseen == ()
    assert split.name == "80_20"


def test_random_split_is_seeded_and_a_partition():
    a = splits.make_split("7_3", 10, "random", seed=1)
    b = splits.make_split("7_3", 10, "random", seed=1)
    c = splits.make_split("7_3", 10, "random", seed=2)
    assert a == b and a != c
    assert sorted(a.seen + a.unseen) == list(range(10)) and len(a.unseen) == 3


def test_partition_keeps_unseen_classes_out_of_training_and_validation():
    ds = _tiny_dataset()
    split = splits.make_split("6_4", 10)
    part = splits.partition(ds, split, val_fraction=0.2, seed=0)
    assert set(part.train_labels) == set(range(6)) and set(part.val_labels) == set(range(6))
    assert set(part.test_seen_labels) == set(range(6))
    assert set(part.test_unseen_labels) == {6, 7, 8, 9}
    assert len(part.train_labels) == 6 * 8 and len(part.val_labels) == 6 * 2
    train_ids = set(part.train_images[:, 0, 0, 0].tolist())
    val_ids = set(part.val_images[:, 0, 0, 0].tolist())
    assert not train_ids & val_ids
    # Test images keep their order: the first test image of class 6 is the official first.
    first_six = part.test_unseen_images[part.test_unseen_labels == 6][0, 0, 0, 0]
    assert first_six == np.flatnonzero(ds.test_labels == 6)[0]


def test_validation_carve_out_is_seeded():
    ds = _tiny_dataset()
    split = splits.make_split("6_4", 10)
    a = splits.partition(ds, split, 0.3, seed=0).val_images
    b = splits.partition(ds, split, 0.3, seed=0).val_images
    c = splits.partition(ds, split, 0.3, seed=1).val_images
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_class_too_small_after_validation_is_a_config_error():
    ds = _tiny_dataset(train_per_class=2)
    with pytest.raises(ConfigError, match="training needs 2 and validation 2: give it at least"):
        splits.partition(ds, splits.make_split("6_4", 10), val_fraction=0.1)


def test_validation_holds_out_two_images_a_class_and_names_the_fraction_that_fits():
    ds = _tiny_dataset(train_per_class=5)
    split = splits.make_split("6_4", 10)
    # 1% of 5 rounds to 0: two held out all the same, a positive pair for validation.
    part = splits.partition(ds, split, 0.01)
    assert np.bincount(part.val_labels, minlength=6)[:6].tolist() == [2] * 6
    assert np.bincount(part.train_labels, minlength=6)[:6].tolist() == [3] * 6
    # 70% of 5 rounds to 4, leaving 1: the largest fraction leaving 2 is 0.5.
    with pytest.raises(ConfigError) as refused:
        splits.partition(ds, split, 0.7)
    assert str(refused.value) == (
        "The validation split (--val_fraction=0.7) takes 4 of the 5 train images of class "
        "'0', the smallest seen class, leaving 1; training needs 2 and validation 2: use "
        "--val_fraction=0.5 or less."
    )
    assert len(splits.partition(ds, split, 0.5).val_labels) == 6 * 2  # round(2.5) = 2
    # An export written before the minimum rebuilds its one validation image a class.
    old = splits.partition(ds, split, 0.01, min_val_images=1)
    assert np.bincount(old.val_labels, minlength=6)[:6].tolist() == [1] * 6
