import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.data import pipeline
from keras_siamese.errors import ConfigError

# The model's input names, as the training code passes them.
TRIPLET = ("anchor", "positive", "negative")
PAIR = ("left", "right")


def _indexed_images(labels):
    """Images whose pixels encode their own index (row 0, col 0: index // 256, index % 256)."""
    n = len(labels)
    images = np.zeros((n, 8, 8, 3), np.uint8)
    images[:, :, :, 0] = (np.arange(n) // 256)[:, None, None]
    images[:, :, :, 1] = (np.arange(n) % 256)[:, None, None]
    return images


def _decode(batch):
    return batch[:, 0, 0, 0].astype(np.int64) * 256 + batch[:, 0, 0, 1]


def _first_batches(dataset, count):
    return [({k: v.numpy() for k, v in x.items()}, y.numpy()) for x, y in dataset.take(count)]


LABELS = np.repeat(np.arange(6), [2, 3, 5, 4, 7, 2])


def test_sampler_draws_valid_triplets():
    sampler = pipeline.TripletSampler(LABELS, seed=3)
    triplets = sampler.sample(2000, epoch=0).numpy()
    a, p, n = triplets.T
    assert np.all(LABELS[a] == LABELS[p])
    assert np.all(a != p)
    assert np.all(LABELS[a] != LABELS[n])
    # Every class serves as anchor and as negative.
    assert set(LABELS[a]) == set(LABELS) and set(LABELS[n]) == set(LABELS)


def test_sampler_is_seeded_and_new_each_epoch():
    first = pipeline.TripletSampler(LABELS, seed=3).sample(100, epoch=0).numpy()
    again = pipeline.TripletSampler(LABELS, seed=3).sample(100, epoch=0).numpy()
    next_epoch = pipeline.TripletSampler(LABELS, seed=3).sample(100, epoch=1).numpy()
    other_seed = pipeline.TripletSampler(LABELS, seed=4).sample(100, epoch=0).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, next_epoch)
    assert not np.array_equal(first, other_seed)


def test_sampler_refuses_a_class_with_one_image():
    with pytest.raises(ConfigError, match="fewer than two"):
        pipeline.TripletSampler(np.array([0, 0, 1]))


def test_triplet_dataset_batches_only_given_images_with_valid_labels():
    # Only the images passed in may appear: pass a subset (the "seen" part).
    labels = np.repeat(np.arange(5), 6)
    images = _indexed_images(labels)
    seen = labels < 3
    ds = pipeline.triplet_dataset(
        images[seen],
        labels[seen],
        batch_size=8,
        steps_per_epoch=4,
        names=TRIPLET,
        seed=0,
        augmentation=pipeline.Augmentation(flip=False),
    )
    seen_index = np.flatnonzero(seen)
    for x, y in _first_batches(ds, 8):
        assert set(x) == {"anchor", "positive", "negative"}
        assert x["anchor"].shape == (8, 8, 8, 3) and x["anchor"].dtype == np.uint8
        assert y.shape == (8,)
        a, p, n = (seen_index[_decode(x[k])] for k in ("anchor", "positive", "negative"))
        assert np.all(labels[a] == labels[p]) and np.all(a != p)
        assert np.all(labels[a] != labels[n])
        assert np.all(labels[np.concatenate([a, p, n])] < 3)


def test_triplet_dataset_is_deterministic_and_epochs_differ():
    labels = np.repeat(np.arange(4), 5)
    images = _indexed_images(labels)

    def anchors(first_epoch=0):
        ds = pipeline.triplet_dataset(
            images,
            labels,
            batch_size=4,
            steps_per_epoch=2,
            names=TRIPLET,
            seed=7,
            first_epoch=first_epoch,
        )
        return [_decode(x["anchor"]) for x, _ in _first_batches(ds, 4)]

    run1, run2 = anchors(), anchors()
    for b1, b2 in zip(run1, run2, strict=True):
        np.testing.assert_array_equal(b1, b2)
    epoch0 = np.concatenate(run1[:2])
    epoch1 = np.concatenate(run1[2:])
    assert not np.array_equal(epoch0, epoch1)
    # Starting at epoch 1 reproduces epoch 1 exactly (what resuming needs).
    np.testing.assert_array_equal(np.concatenate(anchors(first_epoch=1)[:2]), epoch1)


def test_augmentation_changes_pixels_between_epochs():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(2), 2)
    images = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    ds = pipeline.triplet_dataset(
        images,
        labels,
        batch_size=64,
        steps_per_epoch=1,
        names=TRIPLET,
        seed=1,
        augmentation=pipeline.Augmentation(flip=True, crop=True),
    )
    (x0, _), (x1, _) = _first_batches(ds, 2)
    # The same source image appears many times per batch; flipped/cropped
    # copies must differ from the original and between epochs.
    originals = {img.tobytes() for img in images}
    changed = [img.tobytes() not in originals for img in x0["anchor"]]
    assert 0 < sum(changed) < len(changed)
    assert not np.array_equal(x0["anchor"], x1["anchor"])


def test_flip_only_produces_originals_or_their_mirror_images():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(2), 2)
    images = rng.integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
    ds = pipeline.triplet_dataset(
        images,
        labels,
        batch_size=32,
        steps_per_epoch=1,
        names=TRIPLET,
        seed=2,
        augmentation=pipeline.Augmentation(flip=True, crop=False),
    )
    allowed = {img.tobytes() for img in images} | {img[:, ::-1].tobytes() for img in images}
    ((x, _),) = _first_batches(ds, 1)
    assert all(img.tobytes() in allowed for img in x["positive"])


def test_fixed_triplet_dataset_repeats_the_same_triplets():
    labels = np.repeat(np.arange(3), 4)
    images = _indexed_images(labels)
    ds = pipeline.fixed_triplet_dataset(
        images, labels, num_triplets=10, batch_size=4, names=TRIPLET, seed=0
    )
    first = [_decode(x["negative"].numpy()) for x, _ in ds]
    second = [_decode(x["negative"].numpy()) for x, _ in ds]
    assert [len(b) for b in first] == [4, 4, 2]
    for b1, b2 in zip(first, second, strict=True):
        np.testing.assert_array_equal(b1, b2)


PK_LABELS = np.repeat(np.arange(10), 8)[np.random.default_rng(3).permutation(80)]


def test_pk_batches_hold_p_classes_of_k_images_and_visit_every_image():
    sampler = pipeline.PKSampler(PK_LABELS, classes_per_batch=5, images_per_class=4, seed=1)
    batches = sampler.epoch_indices(epoch=0, steps=4)  # 10 classes x 8 images = 4 x 20
    assert batches.shape == (4, 20)
    for batch in batches:
        labels = PK_LABELS[batch].reshape(5, 4)
        assert np.all(labels == labels[:, :1])  # K images of one class per group
        assert len(set(labels[:, 0])) == 5  # P distinct classes
    assert sorted(batches.ravel()) == list(range(80))  # each image exactly once
    np.testing.assert_array_equal(batches, sampler.epoch_indices(0, 4))
    assert not np.array_equal(batches, sampler.epoch_indices(1, 4))
    other_seed = pipeline.PKSampler(PK_LABELS, 5, 4, seed=2).epoch_indices(0, 4)
    assert not np.array_equal(batches, other_seed)


def test_pk_sampler_uses_only_the_given_classes_and_tops_up_short_groups():
    labels = np.array([7] * 5 + [9] * 6 + [4] * 3)  # 5 and 6 are not multiples of K=3
    batches = pipeline.PKSampler(labels, 2, 3, seed=0).epoch_indices(0, steps=6)
    assert set(labels[batches.ravel()]) <= {4, 7, 9}
    assert set(batches.ravel()) == set(range(len(labels)))
    for batch in batches:
        groups = labels[batch].reshape(2, 3)
        assert groups[0, 0] != groups[1, 0]
        assert all(len(set(batch[i * 3 : i * 3 + 3])) == 3 for i in range(2))


@pytest.mark.parametrize(
    "p,k,message",
    [
        (1, 4, "must both be at least 2"),
        (4, 1, "must both be at least 2"),
        (11, 2, "exceeds the 10 classes"),
        (2, 9, "exceeds the 8 train images"),
    ],
)
def test_pk_sampler_refuses_impossible_batches(p, k, message):
    with pytest.raises(ConfigError, match=message):
        pipeline.PKSampler(PK_LABELS, p, k)


def test_pk_dataset_yields_labelled_batches_and_resumes_at_an_epoch():
    images = _indexed_images(PK_LABELS)
    ds = pipeline.pk_dataset(images, PK_LABELS, 5, 4, steps_per_epoch=4, seed=1)
    batches = [(x.numpy(), y.numpy()) for x, y in ds.take(8)]
    for x, y in batches:
        assert x.shape == (20, 8, 8, 3) and x.dtype == np.uint8
        np.testing.assert_array_equal(PK_LABELS[_decode(x)], y)
    sampler = pipeline.PKSampler(PK_LABELS, 5, 4, seed=1)
    np.testing.assert_array_equal(_decode(batches[5][0]), sampler.epoch_indices(1, 4)[1])
    resumed = pipeline.pk_dataset(images, PK_LABELS, 5, 4, 4, seed=1, first_epoch=1)
    first_resumed = next(iter(resumed))[0].numpy()
    np.testing.assert_array_equal(first_resumed, batches[4][0])


def test_pair_batches_are_balanced_and_labelled_right():
    images = _indexed_images(LABELS)
    ds = pipeline.pair_dataset(images, LABELS, batch_size=8, steps_per_epoch=3, names=PAIR, seed=0)
    for x, y in _first_batches(ds, 3):
        left, right = LABELS[_decode(x["left"])], LABELS[_decode(x["right"])]
        np.testing.assert_array_equal(y, (left == right).astype(np.float32))
        assert y.sum() == 4
        assert np.all(_decode(x["left"]) != _decode(x["right"]))
    with pytest.raises(ConfigError, match="even"):
        pipeline.pair_dataset(images, LABELS, batch_size=7, steps_per_epoch=1, names=PAIR)


def test_class_batches_shuffle_every_image_once_per_epoch_with_its_label():
    labels = np.repeat(np.arange(4), 6)  # 24 images, 4 steps of 6 per epoch
    images = _indexed_images(labels)
    ds = pipeline.class_dataset(images, labels, batch_size=6, steps_per_epoch=4, seed=5)
    batches = [(x.numpy(), y.numpy()) for x, y in ds.take(8)]
    for epoch in (batches[:4], batches[4:]):
        seen = np.concatenate([_decode(x) for x, _ in epoch])
        assert sorted(seen) == list(range(24))  # each image exactly once
        for x, y in epoch:
            np.testing.assert_array_equal(labels[_decode(x)], y)
    first = np.concatenate([_decode(x) for x, _ in batches[:4]])
    second = np.concatenate([_decode(x) for x, _ in batches[4:]])
    assert not np.array_equal(first, second)  # a new shuffle each epoch
    # Seeded, and a resumed run draws the batches of its epoch.
    resumed = pipeline.class_dataset(images, labels, 6, 4, seed=5, first_epoch=1)
    again = [a.numpy() for a, _ in resumed.take(4)]
    for (x, _), x2 in zip(batches[4:], again, strict=True):
        np.testing.assert_array_equal(x, x2)
    # Longer epochs continue with a new shuffle.
    long = pipeline.shuffled_indices(24, 6, 6, seed=5, epoch=0)
    assert sorted(long[:4].ravel()) == list(range(24)) and long.shape == (6, 6)


def _mixed(mixup, cutmix, seed=0, batch=6):
    """A mixed batch of constant images (image i is all i * 40) with labels i % 3."""
    images = np.repeat(np.arange(batch, dtype=np.uint8)[:, None, None, None] * 40, 8, axis=1)
    images = np.repeat(np.repeat(images, 8, axis=2), 3, axis=3)
    labels = np.arange(batch) % 3
    mixing = pipeline.Mixing(num_classes=3, mixup=mixup, cutmix=cutmix)
    out, targets = pipeline.mix_batch(
        tf.constant(images), tf.constant(labels), tf.constant([seed, 1], tf.int64), mixing
    )
    return images, labels, out.numpy(), targets.numpy()


def test_mixup_blends_each_image_with_its_mirror_in_the_batch_by_the_targets_share():
    images, labels, out, targets = _mixed(mixup=0.4, cutmix=0.0)
    assert out.dtype == np.uint8 and out.shape == images.shape
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
    partner = images[::-1]
    for i in range(len(images)):
        if labels[i] == labels[::-1][i]:
            continue  # same class on both sides: the share cannot be read off the target
        share = targets[i, labels[i]]
        expected = np.round(share * images[i].astype(float) + (1 - share) * partner[i])
        np.testing.assert_array_equal(out[i], expected.astype(np.uint8))


def test_cutmix_pastes_a_box_whose_area_is_the_partners_share_of_the_target():
    for seed in range(5):
        images, labels, out, targets = _mixed(mixup=0.0, cutmix=1.0, seed=seed)
        partner = images[::-1]
        for i in range(len(images)):
            if labels[i] == labels[::-1][i]:
                continue
            from_partner = np.all(out[i] == partner[i], axis=-1)
            from_self = np.all(out[i] == images[i], axis=-1)
            assert np.all(from_partner | from_self)
            rows, cols = np.nonzero(from_partner)
            if len(rows):  # a box: every pixel between its corners came from the partner
                assert from_partner[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
            np.testing.assert_allclose(targets[i, labels[::-1][i]], from_partner.mean(), atol=1e-6)


def test_mixed_class_batches_repeat_for_a_resumed_epoch_and_carry_targets():
    images = _indexed_images(np.arange(40) % 4)
    labels = np.arange(40) % 4
    mixing = pipeline.Mixing(num_classes=4, mixup=0.2, cutmix=1.0)
    straight = pipeline.class_dataset(images, labels, 8, 5, seed=2, mixing=mixing)
    resumed = pipeline.class_dataset(images, labels, 8, 5, seed=2, mixing=mixing, first_epoch=1)
    epoch_1 = list(straight.skip(5).take(5))
    again = list(resumed.take(5))
    for (x, y), (x2, y2) in zip(epoch_1, again, strict=True):
        np.testing.assert_array_equal(x.numpy(), x2.numpy())
        np.testing.assert_array_equal(y.numpy(), y2.numpy())
    assert epoch_1[0][1].shape == (8, 4)
    shares = np.concatenate([y.numpy().max(axis=1) for _, y in epoch_1])
    assert shares.min() < 0.99  # some images really are mixed


def test_a_rotation_batch_holds_each_image_turned_four_ways_and_labels_only_the_upright():
    images = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3, 1)
    out, (labels, turns) = pipeline.rotated_batch(tf.constant(images), tf.constant([4, 7]))
    out = out.numpy()
    for k in range(4):
        for i in range(2):
            np.testing.assert_array_equal(out[2 * k + i, :, :, 0], np.rot90(images[i, :, :, 0], k))
    np.testing.assert_array_equal(labels, [4, 7, -1, -1, -1, -1, -1, -1])
    np.testing.assert_array_equal(turns, [0, 0, 1, 1, 2, 2, 3, 3])
    soft = tf.constant([[0.25, 0.75], [1.0, 0.0]])
    _, (soft_labels, _) = pipeline.rotated_batch(tf.constant(images), soft)
    np.testing.assert_array_equal(soft_labels[2:], np.zeros((6, 2)))
