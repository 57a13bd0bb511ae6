"""The numpy batches of the backends without tf.data, checked by hand."""

import itertools

import numpy as np
import pytest

from keras_siamese.data import numpy_batches
from keras_siamese.data.sampling import (
    CROP_PADDING,
    Augmentation,
    PKSampler,
    TripletIndex,
    fixed_pk_indices,
)
from keras_siamese.errors import ConfigError

LABELS = np.repeat(np.arange(5), 6)[np.random.default_rng(0).permutation(30)]
# Image i is filled with i, so a batch's pixels say which images it took.
IMAGES = np.broadcast_to(np.arange(30, dtype=np.uint8)[:, None, None, None], (30, 8, 8, 3)).copy()


def test_flip_mirrors_about_half_the_images_and_nothing_else():
    images = np.random.default_rng(1).integers(0, 256, (400, 5, 7, 3), dtype=np.uint8)
    out = numpy_batches.augment(images, np.random.default_rng(2), Augmentation(flip=True))
    mirrored = np.array([np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images, strict=True)])
    kept = np.array([np.array_equal(o, i) for o, i in zip(out, images, strict=True)])
    assert np.all(mirrored ^ kept)
    assert 160 < mirrored.sum() < 240


def test_crop_is_a_window_of_the_zero_padded_image():
    images = np.random.default_rng(3).integers(1, 256, (50, 6, 6, 1), dtype=np.uint8)
    out = numpy_batches.augment(
        images, np.random.default_rng(4), Augmentation(flip=False, crop=True)
    )
    assert out.shape == images.shape and out.dtype == np.uint8
    pad = CROP_PADDING
    offsets = set()
    for o, i in zip(out, images, strict=True):
        padded = np.pad(i, ((pad, pad), (pad, pad), (0, 0)))
        found = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if np.array_equal(padded[dy : dy + 6, dx : dx + 6], o)
        ]
        assert found, "a crop that is no window of the padded image"
        offsets.add(found[0])
    assert len(offsets) > 10  # the windows vary


def test_triplets_take_two_images_of_one_class_and_one_of_another():
    triplets = TripletIndex(LABELS).sample(2000, np.random.default_rng(5))
    anchor, positive, negative = LABELS[triplets.T]
    assert np.all(anchor == positive) and np.all(anchor != negative)
    assert np.all(triplets[:, 0] != triplets[:, 1])
    # Every class is an anchor's, and every image is drawn.
    assert set(anchor) == set(range(5)) and set(triplets.ravel()) == set(range(30))


def test_a_class_of_one_image_is_refused():
    with pytest.raises(ConfigError, match="fewer than two train images"):
        TripletIndex(np.array([0, 0, 1]))


def test_triplet_batches_name_the_models_inputs_and_resume_at_their_epoch():
    names = ("a", "p", "n")
    batches = numpy_batches.triplet_batches(IMAGES, LABELS, 4, 3, names=names, seed=7)
    first_three_epochs = list(itertools.islice(batches, 9))
    inputs, targets = first_three_epochs[0]
    assert sorted(inputs) == sorted(names) and inputs["a"].shape == (4, 8, 8, 3)
    assert np.array_equal(targets, np.zeros(4))
    images_of = {n: inputs[n][:, 0, 0, 0] for n in names}  # the pixel is the image's index
    assert np.all(LABELS[images_of["a"]] == LABELS[images_of["p"]])
    assert np.all(LABELS[images_of["a"]] != LABELS[images_of["n"]])
    resumed = numpy_batches.triplet_batches(
        IMAGES, LABELS, 4, 3, names=names, seed=7, first_epoch=2
    )
    for (expected, _), (got, _) in zip(
        first_three_epochs[6:], list(itertools.islice(resumed, 3)), strict=True
    ):
        for n in names:
            np.testing.assert_array_equal(expected[n], got[n])
    other_seed = next(numpy_batches.triplet_batches(IMAGES, LABELS, 4, 3, names=names, seed=8))
    assert not np.array_equal(other_seed[0]["a"], inputs["a"])


def test_class_batches_visit_each_image_once_an_epoch_with_its_label():
    batches = numpy_batches.class_batches(IMAGES, LABELS, 6, 5, seed=1)
    epoch = list(itertools.islice(batches, 5))
    taken = np.concatenate([images[:, 0, 0, 0] for images, _ in epoch])
    assert sorted(taken) == list(range(30))
    for images, labels in epoch:
        np.testing.assert_array_equal(labels, LABELS[images[:, 0, 0, 0]])
    resumed = next(numpy_batches.class_batches(IMAGES, LABELS, 6, 5, seed=1, first_epoch=1))
    assert np.array_equal(list(itertools.islice(batches, 1))[0][0], resumed[0])


def test_pk_batches_take_the_samplers_indices():
    batches = numpy_batches.pk_batches(IMAGES, LABELS, 3, 2, steps_per_epoch=4, seed=2)
    expected = PKSampler(LABELS, 3, 2, seed=2).epoch_indices(0, 4)
    for row, (images, labels) in zip(expected, list(itertools.islice(batches, 4)), strict=True):
        np.testing.assert_array_equal(images[:, 0, 0, 0], row)
        np.testing.assert_array_equal(labels, LABELS[row])


def test_fixed_triplets_are_the_same_every_time():
    first = numpy_batches.fixed_triplets(IMAGES, LABELS, 12, names=("a", "p", "n"), seed=3)
    again = numpy_batches.fixed_triplets(IMAGES, LABELS, 12, names=("a", "p", "n"), seed=3)
    for n in ("a", "p", "n"):
        np.testing.assert_array_equal(first[0][n], again[0][n])
    assert first[0]["a"].shape == (12, 8, 8, 3)


def test_fixed_pk_validation_batches_are_the_same_every_time_and_never_repeat_an_image():
    # 30 images, P x K = 3 x 2: five batches, each three classes of two images.
    first = fixed_pk_indices(LABELS, 3, 2, seed=4)
    np.testing.assert_array_equal(first, fixed_pk_indices(LABELS, 3, 2, seed=4))
    assert first.shape == (5, 6)
    assert len(np.unique(first)) == 30
    for row in first:
        classes, counts = np.unique(LABELS[row], return_counts=True)
        assert len(classes) == 3 and set(counts) == {2}
