"""The Siamese training model: one tower shared by anchor, positive, negative.

Keras 3 functional models cannot `add_loss`, so a float32 Lambda layer outputs
the per-sample triplet loss and training minimises it through `identity_loss`.
Lambda layers serialise as Python bytecode: save and export the tower alone,
never this training model.
"""

from __future__ import annotations

import keras
from keras import layers

from keras_siamese.choices import PAIR_HEADS, check_margin
from keras_siamese.model import distances, losses

# The training models' input names; the tf.data pipelines yield dicts with these keys.
INPUT_NAMES = ("anchor", "positive", "negative")
PAIR_INPUT_NAMES = ("left", "right")


def _triplet_loss_of_list(embeddings, distance: str, margin: float):
    anchor, positive, negative = embeddings
    return losses.triplet_loss(anchor, positive, negative, distance=distance, margin=margin)


def _stack(images):
    return keras.ops.concatenate(images, axis=0)


def _unstack(embeddings):
    return keras.ops.split(embeddings, len(INPUT_NAMES), axis=0)


def triplet_model(
    tower: keras.Model, distance: str, margin: float, concat_tower: bool = False
) -> keras.Model:
    """Wraps `tower` into the three-input training model.

    Args:
        tower: maps uint8 images `[N, H, W, C]` to embeddings `[N, D]`.
        distance: `cosine` or `euclidean` (squared).
        margin: triplet margin, > 0.
        concat_tower: run the tower once on the 3N stacked images instead of
            three times on N. The weights and the loss are the same; batch
            normalisation then computes its batch statistics over all 3N
            images (not per role) and updates its moving averages once a step.

    Returns:
        A model with inputs `anchor`, `positive`, `negative` whose output is the
        per-sample loss `[N]`.
    """
    distances.distance_of(distance)
    check_margin(margin)
    image_shape = tower.input_shape[1:]
    inputs = {
        name: keras.Input(shape=image_shape, dtype="uint8", name=name) for name in INPUT_NAMES
    }
    if concat_tower:
        stacked = layers.Lambda(_stack, name="stack")([inputs[name] for name in INPUT_NAMES])
        embeddings = layers.Lambda(_unstack, name="unstack")(tower(stacked))
    else:
        embeddings = [tower(inputs[name]) for name in INPUT_NAMES]
    loss = layers.Lambda(
        _triplet_loss_of_list,
        arguments={"distance": distance, "margin": float(margin)},
        output_shape=(),
        dtype="float32",
        name="triplet_loss",
    )(embeddings)
    return keras.Model(inputs, loss, name="siamese_triplet")


def identity_loss(y_true, y_pred):
    """The model's output already is the per-sample loss; `y_true` is unused."""
    del y_true
    return y_pred


def mining_model(tower: keras.Model) -> keras.Model:
    """The tower as a one-input training model for the batch-mining losses.

    Its output is the float32 embedding of each image; the loss mines the
    triplets inside the batch from the labels.
    """
    images = keras.Input(shape=tower.input_shape[1:], dtype="uint8", name="images")
    embeddings = layers.Activation("linear", dtype="float32", name="embeddings")(tower(images))
    return keras.Model(images, embeddings, name="siamese_batch")


def memory_model(tower: keras.Model, memory: keras.layers.Layer) -> keras.Model:
    """The tower with a cross-batch memory (`keras_siamese.model.memory`) as a training
    model: images and their labels in, the memory's packed batch and memory out."""
    images = keras.Input(shape=tower.input_shape[1:], dtype="uint8", name="images")
    labels = keras.Input(shape=(), dtype="int32", name="labels")
    embeddings = layers.Activation("linear", dtype="float32", name="embeddings")(tower(images))
    return keras.Model([images, labels], memory(embeddings, labels), name="siamese_memory")


def _pair_distance_of_list(embeddings, distance: str):
    left, right = embeddings
    return distances.paired_distance(left, right, distance)


def _absolute_difference_of_list(embeddings):
    left, right = embeddings
    return keras.ops.abs(left - right)


def pair_model(tower: keras.Model, distance: str, head: str = "contrastive") -> keras.Model:
    """The two-input model that tells whether a pair shows one class.

    Args:
        tower: maps uint8 images to embeddings.
        distance: `cosine` or `euclidean` (squared).
        head: `contrastive`: the output is the pair's distance (for the
            contrastive loss); `bce`: a sigmoid unit on |e1 - e2| outputs the
            probability of "same" (for binary cross-entropy).
    """
    distances.distance_of(distance)
    if head not in PAIR_HEADS:
        raise ValueError(f"head must be one of {', '.join(PAIR_HEADS)}, not {head!r}")
    image_shape = tower.input_shape[1:]
    inputs = {
        name: keras.Input(shape=image_shape, dtype="uint8", name=name) for name in PAIR_INPUT_NAMES
    }
    embeddings = [tower(inputs[name]) for name in PAIR_INPUT_NAMES]
    if head == "contrastive":
        output = layers.Lambda(
            _pair_distance_of_list,
            arguments={"distance": distance},
            output_shape=(),
            dtype="float32",
            name="pair_distance",
        )(embeddings)
    else:
        difference = layers.Lambda(
            _absolute_difference_of_list, dtype="float32", name="absolute_difference"
        )(embeddings)
        output = layers.Dense(1, activation="sigmoid", dtype="float32", name="same_probability")(
            difference
        )
        output = layers.Reshape((), name="same")(output)
    return keras.Model(inputs, output, name=f"siamese_pair_{head}")
