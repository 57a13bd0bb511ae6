"""Classification heads that train the tower on the seen classes and are never exported.

`softmax`: a linear layer over the embedding. `normsoftmax`: a cosine
classifier, the cosine between the L2-normalised embedding and each class's
L2-normalised weight vector; the scale and margin live in the loss
(`losses.ClassificationLoss`). Either way the training model outputs class
scores, and the export keeps the tower alone.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from keras_siamese.model import distances


@keras.saving.register_keras_serializable(package="keras_siamese")
class CosineClassifier(layers.Layer):
    """Cosine similarity `[B, num_classes]` of each input row with each class's weights."""

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(input_shape[-1], self.num_classes), initializer="glorot_uniform"
        )

    def call(self, inputs):
        weights = ops.transpose(distances.l2_normalize(ops.transpose(self.kernel)))
        return ops.matmul(distances.l2_normalize(inputs), weights)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes}


# The outputs of `embedding_classifier_model`, named for the losses that take them.
EMBEDDINGS, CLASS_SCORES = "embeddings", "class_scores"


def _images_and_embeddings(tower: keras.Model, num_classes: int):
    """The uint8 image input of a classifier over `num_classes` and `tower`'s float32 output."""
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, not {num_classes}")
    images = keras.Input(shape=tower.input_shape[1:], dtype="uint8", name="images")
    embeddings = layers.Activation("linear", dtype="float32", name=EMBEDDINGS)(tower(images))
    return images, embeddings


def classifier_model(tower: keras.Model, num_classes: int, cosine: bool) -> keras.Model:
    """`tower` under a classification head: uint8 images in, float32 class scores out."""
    images, embeddings = _images_and_embeddings(tower, num_classes)
    if cosine:
        head = CosineClassifier(num_classes, dtype="float32", name="cosine_classifier")
    else:
        head = layers.Dense(num_classes, dtype="float32", name="classifier")
    return keras.Model(images, head(embeddings), name="classifier")


# The outputs of `rotation_classifier_model`.
ROTATION_SCORES = "rotation_scores"


def rotation_classifier_model(tower: keras.Model, num_classes: int, cosine: bool) -> keras.Model:
    """`classifier_model` with a second output: logits of an image's quarter turn (4 values).

    Outputs `{CLASS_SCORES: [B, num_classes], ROTATION_SCORES: [B, 4]}`, both
    float32; the rotation head is a linear layer on the embedding.
    """
    images, embeddings = _images_and_embeddings(tower, num_classes)
    if cosine:
        head = CosineClassifier(num_classes, dtype="float32", name=CLASS_SCORES)
    else:
        head = layers.Dense(num_classes, dtype="float32", name=CLASS_SCORES)
    rotation = layers.Dense(4, dtype="float32", name=ROTATION_SCORES)
    return keras.Model(
        images,
        {CLASS_SCORES: head(embeddings), ROTATION_SCORES: rotation(embeddings)},
        name="classifier_with_rotations",
    )


def embedding_classifier_model(tower: keras.Model, num_classes: int) -> keras.Model:
    """`tower` with two outputs: its embedding (for a mining loss) and cosine class scores.

    Both are float32 and named `EMBEDDINGS` and `CLASS_SCORES`, so a loss (and
    a label) can be given to each.
    """
    images, embeddings = _images_and_embeddings(tower, num_classes)
    head = CosineClassifier(num_classes, dtype="float32", name=CLASS_SCORES)
    return keras.Model(
        images,
        {EMBEDDINGS: embeddings, CLASS_SCORES: head(embeddings)},
        name="siamese_batch_classifier",
    )


def labels_of_both_outputs(labels) -> dict:
    """A batch's class labels, given to both outputs of `embedding_classifier_model`."""
    return {EMBEDDINGS: labels, CLASS_SCORES: labels}
