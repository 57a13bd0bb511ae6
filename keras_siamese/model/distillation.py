"""Self-distillation: a classifier trained against an earlier generation's soft predictions.

Born-again networks (Furlanello et al., 2018): a second generation of the same
model learns from the labels and from the first generation's class
probabilities, softened by a temperature. The teacher runs frozen, in
inference mode, inside the training model; the export keeps the student's
tower alone.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from keras_siamese.model import classifier


def distillation_loss(student_logits, teacher_logits, temperature: float):
    """`T² · KL(softmax(teacher / T) ‖ softmax(student / T))` per row, shape `[B]`.

    The T² keeps the gradient's size independent of the temperature (Hinton et al., 2015).
    """
    teacher_log_probs = ops.log_softmax(ops.cast(teacher_logits, "float32") / temperature, -1)
    student_log_probs = ops.log_softmax(ops.cast(student_logits, "float32") / temperature, -1)
    kl = ops.sum(ops.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs), axis=-1)
    return temperature**2 * kl


@keras.saving.register_keras_serializable(package="keras_siamese")
class SoftTargets(layers.Layer):
    """Passes the student's class scores through and adds the distillation loss.

    Args:
        weight: the distillation loss's weight (the label loss gets `1 - weight`).
        temperature: softens both distributions, > 0.
        student_scale, teacher_scale: the scales that make each one's scores logits
            (a cosine classifier's logit scale; 1 for a linear one).
    """

    def __init__(
        self,
        weight: float,
        temperature: float,
        student_scale: float = 1.0,
        teacher_scale: float = 1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.weight, self.temperature = float(weight), float(temperature)
        self.student_scale, self.teacher_scale = float(student_scale), float(teacher_scale)

    def call(self, student_scores, teacher_scores):
        teacher_logits = ops.stop_gradient(teacher_scores) * self.teacher_scale
        per_row = distillation_loss(
            student_scores * self.student_scale, teacher_logits, self.temperature
        )
        self.add_loss(self.weight * ops.mean(per_row))
        return student_scores

    def compute_output_shape(self, student_scores_shape, teacher_scores_shape):
        return student_scores_shape

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "weight": self.weight,
            "temperature": self.temperature,
            "student_scale": self.student_scale,
            "teacher_scale": self.teacher_scale,
        }


def distilled_classifier_model(
    tower: keras.Model,
    teacher: keras.Model,
    num_classes: int,
    cosine: bool,
    soft_targets: SoftTargets,
) -> keras.Model:
    """`classifier.classifier_model` whose scores also learn `teacher`'s (frozen) ones.

    `teacher` maps the same uint8 images to `[B, num_classes]` scores; it is
    called in inference mode and none of its weights train.
    """
    student = classifier.classifier_model(tower, num_classes, cosine)
    teacher.trainable = False
    images = student.inputs[0]
    scores = soft_targets(student.outputs[0], teacher(images, training=False))
    return keras.Model(images, scores, name="distilled_classifier")
