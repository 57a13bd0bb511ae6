"""The model code: free of TensorFlow, and the one-call tower variant of the triplet model."""

from __future__ import annotations

import ast
import os

import numpy as np

from tests.conftest import ROOT

MODEL_MODULES = ("resnet", "losses", "siamese", "models")


def _top_level_imports(module: str) -> set[str]:
    with open(os.path.join(ROOT, "keras_siamese", f"{module}.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names = set()
    for node in tree.body:  # module level: what importing the module loads
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            if node.module == "keras_siamese":
                names.update(f"keras_siamese.{alias.name}" for alias in node.names)
    return names


def test_model_and_loss_code_loads_no_tensorflow():
    seen, todo = set(), list(MODEL_MODULES)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for name in _top_level_imports(module):
            assert not name.startswith(("tensorflow", "tf")), f"{module} imports {name}"
            if name.startswith("keras_siamese."):
                todo.append(name.split(".")[1])
    # The walk reached the project modules the models depend on, and only TF-free ones.
    assert {"resnet", "losses", "siamese", "models", "config"} <= seen
    assert "pipeline" not in seen and "training" not in seen


def test_the_one_call_tower_computes_the_same_loss_at_inference_and_trains():
    import keras

    from keras_siamese import models, siamese
    from keras_siamese.config import TrainConfig
    from keras_siamese.datasets import DATASETS

    rng = np.random.default_rng(0)
    x = {n: rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8) for n in siamese.INPUT_NAMES}
    config = TrainConfig(workdir="unused", depth=8)
    tower = models.build_tower(config, DATASETS["cifar100"])
    three = siamese.triplet_model(tower, "cosine", 0.3)
    one = siamese.triplet_model(tower, "cosine", 0.3, concat_tower=True)
    np.testing.assert_allclose(
        np.asarray(three(x, training=False)), np.asarray(one(x, training=False)), atol=1e-6
    )
    # In training, batch normalisation sees 3N images at once: the losses differ slightly.
    assert not np.allclose(np.asarray(three(x, training=True)), np.asarray(one(x, training=True)))

    keras.utils.set_random_seed(0)
    concat = TrainConfig(workdir="unused", depth=8, concat_tower=True)
    model = models.build_training_model(concat, models.build_tower(concat, DATASETS["cifar100"]))
    assert [layer.name for layer in model.layers if "stack" in layer.name] == ["stack", "unstack"]
    losses = [float(model.train_on_batch(x, np.zeros(6))) for _ in range(3)]
    assert all(np.isfinite(losses))
