"""Training batches as numpy arrays, for the Keras backends other than TensorFlow.

The same kinds of batches as the tf.data pipelines (`keras_siamese.data.pipeline`):
seeded shuffles of labelled images, P x K batches, triplets (anchor, positive,
negative), each image flipped and cropped at random. Every epoch is a function of
`(seed, epoch)`, so a resumed run draws what an uninterrupted one would; the
draws are numpy's, so the batches are not the ones tf.data draws for the same
seed. Images stay uint8: the model normalises them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from keras_siamese.data.sampling import (
    CROP_PADDING,
    Augmentation,
    PKSampler,
    TripletIndex,
    shuffled_indices,
)

Batch = tuple[object, np.ndarray]


def augment(images: np.ndarray, rng: np.random.Generator, augmentation: Augmentation) -> np.ndarray:
    """`images` (uint8 `[B, H, W, C]`) each cropped and flipped at random as `augmentation` says.

    A crop takes an `H x W` window of the image padded by `CROP_PADDING`
    zero pixels on each side; a flip mirrors left and right, each image with
    probability one half.
    """
    count, height, width = images.shape[:3]
    if augmentation.crop:
        pad = CROP_PADDING
        padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        rows = rng.integers(0, 2 * pad + 1, count)[:, None] + np.arange(height)
        cols = rng.integers(0, 2 * pad + 1, count)[:, None] + np.arange(width)
        images = padded[np.arange(count)[:, None, None], rows[:, :, None], cols[:, None, :]]
    if augmentation.flip:
        flip = rng.random(count) < 0.5
        images = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
    return images


def _indexed_batches(
    images: np.ndarray,
    labels: np.ndarray,
    epoch_indices: Callable[[int], np.ndarray],
    seed: Sequence[int],
    augmentation: Augmentation | None,
    first_epoch: int,
) -> Iterator[Batch]:
    augmentation = augmentation or Augmentation(flip=False, crop=False)
    labels = np.asarray(labels, np.int32)
    for epoch in itertools.count(first_epoch):
        rng = np.random.default_rng([*seed, epoch])
        for batch in epoch_indices(epoch):
            yield augment(images[batch], rng, augmentation), labels[batch]


def class_batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    steps_per_epoch: int,
    seed: int = 0,
    augmentation: Augmentation | None = None,
    first_epoch: int = 0,
) -> Iterator[Batch]:
    """Endless `(uint8 images [B, H, W, C], int32 labels [B])`: a new shuffle each epoch."""
    return _indexed_batches(
        images,
        labels,
        lambda epoch: shuffled_indices(len(labels), batch_size, steps_per_epoch, seed, epoch),
        (seed, 0xC1A55),
        augmentation,
        first_epoch,
    )


def pk_batches(
    images: np.ndarray,
    labels: np.ndarray,
    classes_per_batch: int,
    images_per_class: int,
    steps_per_epoch: int,
    seed: int = 0,
    augmentation: Augmentation | None = None,
    first_epoch: int = 0,
) -> Iterator[Batch]:
    """Endless P x K batches `(uint8 images [P*K, ...], int32 labels [P*K])` (`PKSampler`)."""
    sampler = PKSampler(labels, classes_per_batch, images_per_class, seed)
    return _indexed_batches(
        images,
        labels,
        lambda epoch: sampler.epoch_indices(epoch, steps_per_epoch),
        (seed, 0xA06),
        augmentation,
        first_epoch,
    )


def triplet_batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    steps_per_epoch: int,
    *,
    names: Sequence[str],
    seed: int = 0,
    augmentation: Augmentation | None = None,
    first_epoch: int = 0,
) -> Iterator[Batch]:
    """Endless `({anchor, positive, negative name: uint8 [B, ...]}, zeros [B])` batches.

    The zeros are the dummy targets of the identity loss; `names` are the
    model's three input names.
    """
    index = TripletIndex(labels)
    augmentation = augmentation or Augmentation(flip=False, crop=False)
    targets = np.zeros([batch_size], np.float32)
    for epoch in itertools.count(first_epoch):
        rng = np.random.default_rng([seed, 0x5EED, epoch])
        triplets = index.sample(batch_size * steps_per_epoch, rng)
        for group in triplets.reshape(steps_per_epoch, batch_size, 3):
            inputs = {
                name: augment(images[group[:, k]], rng, augmentation)
                for k, name in enumerate(names)
            }
            yield inputs, targets


def fixed_triplets(
    images: np.ndarray, labels: np.ndarray, num_triplets: int, *, names: Sequence[str], seed: int
) -> Batch:
    """The same `num_triplets` triplets every time, whole (validation): `(inputs, zeros)`."""
    triplets = TripletIndex(labels).sample(num_triplets, np.random.default_rng([seed, 0x5EED]))
    inputs = {name: images[triplets[:, k]] for k, name in enumerate(names)}
    return inputs, np.zeros([num_triplets], np.float32)
