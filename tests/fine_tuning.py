"""The settings of the fine-tuning tests: a MobileNetV3 tower under a cosine classifier,
stepped by SGD with weight decay at a constant rate (its weights file given by the test).
Shared by tests/test_backbones.py and the JAX script tests/backbone_freeze_under_jax.py."""

FINE_TUNING = dict(
    workdir="unused",
    backbone="mobilenetv3small",
    objective="normsoftmax",
    optimizer="sgd",
    learning_rate=0.05,
    weight_decay=5e-4,
    lr_schedule="constant",
    epochs=3,
    batch_size=8,
)
