"""The Siamese training model: one tower shared by anchor, positive, negative.

Keras 3 functional models cannot `add_loss`, so a float32 Lambda layer outputs
the per-sample triplet loss and training minimises it through `identity_loss`.
Lambda layers serialise as Python bytecode: save and export the tower alone,
never this training model.
"""

from __future__ import annotations

import keras
from keras import layers

from keras_siamese import losses
from keras_siamese.pipeline import INPUT_NAMES


def _triplet_loss_of_list(embeddings, distance: str, margin: float):
    anchor, positive, negative = embeddings
    return losses.triplet_loss(anchor, positive, negative, distance=distance, margin=margin)


def triplet_model(tower: keras.Model, distance: str, margin: float) -> keras.Model:
    """Wraps `tower` into the three-input training model.

    Args:
        tower: maps uint8 images `[N, H, W, C]` to embeddings `[N, D]`.
        distance: `cosine` or `euclidean` (squared).
        margin: triplet margin, > 0.

    Returns:
        A model with inputs `anchor`, `positive`, `negative` whose output is the
        per-sample loss `[N]`.
    """
    losses.check_distance(distance)
    losses.check_margin(margin)
    image_shape = tower.input_shape[1:]
    inputs = {
        name: keras.Input(shape=image_shape, dtype="uint8", name=name) for name in INPUT_NAMES
    }
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
