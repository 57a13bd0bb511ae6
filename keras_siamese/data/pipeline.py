"""tf.data pipelines of triplets (anchor, positive, negative) of uint8 images.

Triplets are drawn with TensorFlow's stateless random ops from a seed that is
a function of `(seed, epoch)`: the same seed gives the same triplets, each
epoch gets new ones, and an epoch can be regenerated on its own (for example
after resuming). Anchor and positive are two different images of one class;
the negative is an image of another class. Augmentation (random horizontal
flip, optional 4-pixel-padded random crop) is drawn per sample and per epoch
the same way. Images stay uint8: the model normalises them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from keras_siamese.data.sampling import (  # noqa: F401  (part of this module's API)
    CROP_PADDING,
    Augmentation,
    PKSampler,
    TripletIndex,
    fixed_pk_indices,
    shuffled_indices,
)
from keras_siamese.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Mixing:
    """Per-batch mixing of labelled images (classification objectives).

    `mixup` and `cutmix` are the Beta distributions' alphas (0: off); with both,
    each batch takes one of the two at random. `num_classes` sizes the targets.
    """

    num_classes: int
    mixup: float = 0.0
    cutmix: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.mixup or self.cutmix)


def _cut_box_mask(height: int, width: int, share: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """A float `[H, W, 1]` mask of ones in a random box of about `share` of the image.

    The box's sides are `sqrt(share)` of the image's, centred at a uniform
    pixel and clipped at the borders (as in the CutMix paper).
    """
    centre = tf.random.stateless_uniform([2], seed, maxval=1.0)
    side = tf.sqrt(share)
    cy, cx = centre[0] * height, centre[1] * width
    half_h, half_w = side * height / 2.0, side * width / 2.0
    rows = tf.range(height, dtype=tf.float32)[:, None] + 0.5
    cols = tf.range(width, dtype=tf.float32)[None, :] + 0.5
    inside = tf.logical_and(
        tf.logical_and(rows >= cy - half_h, rows < cy + half_h),
        tf.logical_and(cols >= cx - half_w, cols < cx + half_w),
    )
    return tf.cast(inside, tf.float32)[:, :, None]


def mix_batch(
    images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor, mixing: Mixing
) -> tuple[tf.Tensor, tf.Tensor]:
    """Mixes a uint8 batch with itself reversed: `(uint8 images, float targets [B, C])`.

    mixup blends whole images by a share `lam` ~ Beta(alpha, alpha), rounded
    back to uint8; CutMix pastes a box of the partner image covering about
    `1 - lam` of it, and the targets take the box's exact area. The targets
    are `lam * onehot(label) + (1 - lam) * onehot(partner's label)`.
    """
    choice_seed, share_seed, box_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=3)
    )
    targets = tf.one_hot(labels, mixing.num_classes)
    partner_images = tf.reverse(images, axis=[0])
    partner_targets = tf.reverse(targets, axis=[0])
    x = tf.cast(images, tf.float32)
    partner = tf.cast(partner_images, tf.float32)
    if mixing.mixup and mixing.cutmix:
        use_cutmix = tf.random.stateless_uniform([], choice_seed) < 0.5
    else:
        use_cutmix = tf.constant(bool(mixing.cutmix))
    alpha = tf.where(use_cutmix, float(mixing.cutmix or 1.0), float(mixing.mixup or 1.0))
    # Drawn with the chosen method's alpha: one gamma sampler for both keeps resumes exact.
    lam = _draw_share(share_seed, alpha)
    height, width = int(images.shape[1]), int(images.shape[2])
    box = _cut_box_mask(height, width, 1.0 - lam, box_seed)
    cut = x * (1.0 - box) + partner * box
    blended = lam * x + (1.0 - lam) * partner
    mixed = tf.where(use_cutmix, cut, blended)
    share = tf.where(use_cutmix, 1.0 - tf.reduce_mean(box), lam)
    mixed_images = tf.cast(tf.clip_by_value(tf.round(mixed), 0.0, 255.0), images.dtype)
    return mixed_images, share * targets + (1.0 - share) * partner_targets


def rotated_batch(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tuple]:
    """A batch and its three quarter turns: `(images [4B, ...], (class labels, turns))`.

    The images are the batch upright, then turned by 90, 180 and 270 degrees
    counter-clockwise, in that order; `turns` are 0, 1, 2, 3 accordingly. The
    turned copies carry no class: their class labels are -1 (int labels) or
    rows of zeros (float targets of mixed batches).
    """
    turns = [tf.image.rot90(images, k) for k in range(4)]
    size = tf.shape(labels)[0]
    unlabelled = -tf.ones_like(labels) if labels.dtype.is_integer else tf.zeros_like(labels)
    class_labels = tf.concat([labels] + [unlabelled] * 3, axis=0)
    turn_labels = tf.repeat(tf.range(4, dtype=tf.int32), size)
    return tf.concat(turns, axis=0), (class_labels, turn_labels)


def _draw_share(seed: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    a = tf.random.stateless_gamma([], seeds[0], alpha=alpha)
    b = tf.random.stateless_gamma([], seeds[1], alpha=alpha)
    return a / tf.maximum(a + b, 1e-12)


class TripletSampler:
    """Draws triplet indices into a labelled image array.

    Args:
        labels: int array `[N]`; every class present needs at least two images.
        seed: base seed; triplets are a function of `(seed, epoch)`.
    """

    def __init__(self, labels: np.ndarray, seed: int = 0):
        index = TripletIndex(labels)
        self.order = index.order
        self.classes = index.classes
        self._counts = tf.constant(index.counts, tf.int64)
        self._offsets = tf.constant(index.offsets, tf.int64)
        self._order = tf.constant(index.order, tf.int64)
        self.seed = seed

    def epoch_seed(self, epoch) -> tf.Tensor:
        """The stateless seed of one epoch, shape `[2]`."""
        base = tf.constant([self.seed, 0x5EED], tf.int64)
        return tf.random.experimental.stateless_fold_in(base, tf.cast(epoch, tf.int64))

    def sample(self, num_triplets: int, epoch) -> tf.Tensor:
        """Returns int64 `[num_triplets, 3]` indices (anchor, positive, negative)."""
        seeds = tf.random.experimental.stateless_split(self.epoch_seed(epoch), num=4)
        shape = [num_triplets]
        num_classes = tf.cast(tf.size(self._counts), tf.int64)

        def uniform_below(seed, upper):
            # Integers in [0, upper) with a per-element upper bound.
            u = tf.random.stateless_uniform(shape, seed, dtype=tf.float64)
            return tf.minimum(tf.cast(u * tf.cast(upper, tf.float64), tf.int64), upper - 1)

        anchor_class = uniform_below(seeds[0], tf.fill(shape, num_classes))
        count = tf.gather(self._counts, anchor_class)
        anchor = uniform_below(seeds[1], count)
        positive = (anchor + 1 + uniform_below(seeds[2], count - 1)) % count
        shift = 1 + uniform_below(seeds[3], tf.fill(shape, num_classes - 1))
        negative_class = (anchor_class + shift) % num_classes
        negative_count = tf.gather(self._counts, negative_class)
        negative = uniform_below(
            tf.random.experimental.stateless_fold_in(seeds[3], 1), negative_count
        )
        offset = tf.gather(self._offsets, anchor_class)
        negative_offset = tf.gather(self._offsets, negative_class)
        positions = tf.stack(
            [offset + anchor, offset + positive, negative_offset + negative], axis=1
        )
        return tf.gather(self._order, positions)


def augment(image: tf.Tensor, seed: tf.Tensor, augmentation: Augmentation) -> tf.Tensor:
    """Applies the random flip and crop of `augmentation` to one uint8 image."""
    flip_seed, crop_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    if augmentation.crop:
        size = tf.shape(image)
        padded = tf.pad(image, [[CROP_PADDING, CROP_PADDING], [CROP_PADDING, CROP_PADDING], [0, 0]])
        image = tf.image.stateless_random_crop(padded, size, crop_seed)
    if augmentation.flip:
        image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    return image


def triplet_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    steps_per_epoch: int,
    *,
    names: Sequence[str],
    seed: int = 0,
    augmentation: Augmentation | None = None,
    first_epoch: int = 0,
) -> tf.data.Dataset:
    """An endless dataset of training triplet batches, new triplets each epoch.

    Each element is `({names[0], names[1], names[2]}: uint8 [B, H, W, C],
    zeros [B])` (anchor, positive, negative); the zeros are the dummy targets
    of the identity loss.

    Args:
        images: uint8 `[N, H, W, C]`; only these images are ever used.
        labels: int `[N]`.
        batch_size: triplets per batch.
        steps_per_epoch: batches per epoch; each epoch draws
            `batch_size * steps_per_epoch` triplets.
        names: the model's input names of the anchor, positive and negative.
        seed: base seed of triplets and augmentation.
        augmentation: per-sample augmentation; None for none.
        first_epoch: the epoch the dataset starts at (to resume a run).
    """
    sampler = TripletSampler(labels, seed)
    per_epoch = batch_size * steps_per_epoch
    return _augmented_groups(
        images,
        sampler,
        lambda epoch: (sampler.sample(per_epoch, epoch), tf.zeros([per_epoch], tf.float32)),
        tuple(names),
        batch_size,
        augmentation,
        first_epoch,
    )


def _augmented_groups(
    images: np.ndarray,
    sampler: TripletSampler,
    draw,
    names: tuple[str, ...],
    batch_size: int,
    augmentation: Augmentation | None,
    first_epoch: int,
) -> tf.data.Dataset:
    """Endless batches of `({name: uint8 images}, targets)` from `draw(epoch)`.

    `draw(epoch)` returns image indices `[M, len(names)]` and targets `[M]`;
    each image gets its own augmentation seed, a function of (seed, epoch, element).
    """
    augmentation = augmentation or Augmentation(flip=False, crop=False)
    images_t = tf.constant(images)

    def epoch_elements(epoch):
        indices, targets = draw(epoch)
        element_seed = sampler.epoch_seed(epoch + 1_000_003)
        return (
            tf.data.Dataset.from_tensor_slices((indices, targets))
            .enumerate()
            .map(lambda i, e: (*e, tf.random.experimental.stateless_fold_in(element_seed, i)))
        )

    def load(group, target, seed_pair):
        seeds = tf.random.experimental.stateless_split(seed_pair, num=len(names))
        inputs = {
            name: augment(tf.gather(images_t, group[k]), seeds[k], augmentation)
            for k, name in enumerate(names)
        }
        return inputs, target

    return (
        tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max)
        .flat_map(epoch_elements)
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def fixed_triplet_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    num_triplets: int,
    batch_size: int,
    *,
    names: Sequence[str],
    seed: int = 0,
) -> tf.data.Dataset:
    """A finite dataset of the same `num_triplets` triplets every time (validation).

    `names` are the model's input names of the anchor, positive and negative.
    """
    triplets = TripletSampler(labels, seed).sample(num_triplets, epoch=0)
    images_t = tf.constant(images)

    def load(triplet):
        return {name: tf.gather(images_t, triplet[k]) for k, name in enumerate(names)}

    return (
        tf.data.Dataset.from_tensor_slices(triplets)
        .map(load, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .map(lambda x: (x, tf.zeros([tf.shape(x[names[0]])[0]], tf.float32)))
        .prefetch(tf.data.AUTOTUNE)
    )


def _augmented_images(images_t, indices, seed_pair, augmentation: Augmentation):
    seeds = tf.random.experimental.stateless_split(seed_pair, num=tf.size(indices))
    return tf.map_fn(
        lambda args: augment(tf.gather(images_t, args[0]), args[1], augmentation),
        (indices, seeds),
        fn_output_signature=images_t.dtype,
    )


def pk_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    classes_per_batch: int,
    images_per_class: int,
    steps_per_epoch: int,
    seed: int = 0,
    augmentation: Augmentation | None = None,
    first_epoch: int = 0,
) -> tf.data.Dataset:
    """An endless dataset of P x K batches: `(uint8 images [P*K, H, W, C], labels [P*K])`.

    Args:
        images: uint8 `[N, H, W, C]`.
        labels: int `[N]`.
        classes_per_batch: P.
        images_per_class: K.
        steps_per_epoch: batches per epoch (`N // (P * K)` visits each image once).
        seed: base seed of batches and augmentation.
        augmentation: per-sample augmentation; None for none.
        first_epoch: the epoch the dataset starts at (to resume a run).
    """
    sampler = PKSampler(labels, classes_per_batch, images_per_class, seed)
    return _indexed_batches(
        images,
        labels,
        lambda epoch: sampler.epoch_indices(epoch, steps_per_epoch),
        (steps_per_epoch, sampler.batch_size),
        tf.constant([seed, 0xA06], tf.int64),
        augmentation,
        first_epoch,
    )


def _indexed_batches(
    images: np.ndarray,
    labels: np.ndarray,
    epoch_indices,
    shape: tuple[int, int],
    base_seed: tf.Tensor,
    augmentation: Augmentation | None,
    first_epoch: int,
    mixing: Mixing | None = None,
    rotations: bool = False,
) -> tf.data.Dataset:
    """Endless `(augmented uint8 images [B, ...], labels [B])` batches.

    `epoch_indices(epoch)` gives each epoch's image indices, of `shape`
    (steps, B); each batch's augmentation seed is a function of
    (`base_seed`, epoch, step). With an active `mixing`, batches are mixed
    (`mix_batch`) and the labels become float targets `[B, C]`; with
    `rotations`, each batch is extended by its quarter turns (`rotated_batch`).
    """
    augmentation = augmentation or Augmentation(flip=False, crop=False)
    images_t = tf.constant(images)
    labels_t = tf.constant(np.asarray(labels, np.int32))

    def epoch_batches(epoch):
        indices = tf.numpy_function(lambda e: epoch_indices(int(e)), [epoch], tf.int64)
        indices = tf.ensure_shape(indices, shape)
        epoch_seed = tf.random.experimental.stateless_fold_in(base_seed, epoch)
        return (
            tf.data.Dataset.from_tensor_slices(indices)
            .enumerate()
            .map(lambda i, b: (b, tf.random.experimental.stateless_fold_in(epoch_seed, i)))
        )

    def load(batch, seed_pair):
        images = _augmented_images(images_t, batch, seed_pair, augmentation)
        labels = tf.gather(labels_t, batch)
        if mixing is not None and mixing.active:
            mix_seed = tf.random.experimental.stateless_fold_in(seed_pair, 0x313)
            images, labels = mix_batch(images, labels, mix_seed, mixing)
        if rotations:
            return rotated_batch(images, labels)
        return images, labels

    return (
        tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max)
        .flat_map(epoch_batches)
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def class_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    steps_per_epoch: int,
    seed: int = 0,
    augmentation: Augmentation | None = None,
    first_epoch: int = 0,
    mixing: Mixing | None = None,
    rotations: bool = False,
) -> tf.data.Dataset:
    """An endless dataset of shuffled labelled images: `(uint8 [B, H, W, C], labels [B])`.

    Each epoch is a new seeded shuffle of all images (the classification
    objectives); `labels` are passed through as given, or with an active
    `mixing` become mixed float targets `[B, C]` (`mix_batch`). With
    `rotations`, each batch also holds its quarter turns and the labels are
    `(class labels, turns)` (`rotated_batch`).
    """
    return _indexed_batches(
        images,
        labels,
        lambda epoch: shuffled_indices(len(labels), batch_size, steps_per_epoch, seed, epoch),
        (steps_per_epoch, batch_size),
        tf.constant([seed, 0xC1A55], tf.int64),
        augmentation,
        first_epoch,
        mixing,
        rotations,
    )


def fixed_class_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int):
    """Every image once, in order, with its label (validation)."""
    return tf.data.Dataset.from_tensor_slices((images, np.asarray(labels, np.int32))).batch(
        batch_size
    )


def fixed_pk_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    classes_per_batch: int,
    images_per_class: int,
    seed: int = 0,
) -> tf.data.Dataset:
    """The same P x K batches every time, covering `images` about once (validation)."""
    indices = fixed_pk_indices(labels, classes_per_batch, images_per_class, seed)
    return tf.data.Dataset.from_tensor_slices(
        (images[indices], np.asarray(labels, np.int32)[indices])
    )


def _pairs_from_triplets(triplets: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    # Each triplet gives one same-class pair (a, p) and one different-class pair (a, n).
    same = tf.stack([triplets[:, 0], triplets[:, 1]], axis=1)
    different = tf.stack([triplets[:, 0], triplets[:, 2]], axis=1)
    pairs = tf.reshape(tf.stack([same, different], axis=1), [-1, 2])
    targets = tf.tile(tf.constant([1.0, 0.0]), [tf.shape(triplets)[0]])
    return pairs, targets


def pair_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    steps_per_epoch: int,
    *,
    names: Sequence[str],
    seed: int = 0,
    augmentation: Augmentation | None = None,
    first_epoch: int = 0,
) -> tf.data.Dataset:
    """An endless dataset of balanced pair batches: `({names[0], names[1]}, same [B])`.

    Half of every batch are same-class pairs (target 1), half different-class
    pairs (target 0); `batch_size` must be even.
    """
    if batch_size % 2:
        raise ConfigError(f"--batch_size={batch_size} must be even for balanced pairs.")
    sampler = TripletSampler(labels, seed)
    per_epoch = batch_size * steps_per_epoch
    return _augmented_groups(
        images,
        sampler,
        lambda epoch: _pairs_from_triplets(sampler.sample(per_epoch // 2, epoch)),
        tuple(names),
        batch_size,
        augmentation,
        first_epoch,
    )


def fixed_pair_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    num_pairs: int,
    batch_size: int,
    *,
    names: Sequence[str],
    seed: int = 0,
) -> tf.data.Dataset:
    """The same balanced pairs every time (validation); `names`: the model's two inputs."""
    pairs, targets = _pairs_from_triplets(TripletSampler(labels, seed).sample(num_pairs // 2, 0))
    images_t = tf.constant(images)

    def load(pair, target):
        return {n: tf.gather(images_t, pair[k]) for k, n in enumerate(names)}, target

    return (
        tf.data.Dataset.from_tensor_slices((pairs, targets))
        .map(load, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
