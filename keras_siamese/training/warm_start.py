"""Starting a run's tower from the weights of an earlier run's export (`--init_from`).

The weights go layer by layer, by name: a `--neck` that the export lacks keeps its fresh
initialisation, and every other layer must match the export's in shape. An export of the
same data set must not have trained on a class the new run holds out as unseen, or its
one-shot scores would not be one-shot; an export of another data set (a CIFAR-100 tower
for a folder of photos) is a pretrained tower whose classes cannot be checked.
"""

from __future__ import annotations

import keras

from keras_siamese.data import splits
from keras_siamese.errors import UserError
from keras_siamese.model import test_time
from keras_siamese.serving import export, metadata


def load_source(export_dir: str, dataset: str, split: splits.ClassSplit) -> keras.Model:
    """The tower (without test-time options) of the export at `export_dir`.

    Args:
        export_dir: an export folder, a finished run's `W/export`.
        dataset: the data set of the new run.
        split: the class split of the new run.

    Raises:
        UserError: when `export_dir` holds no export, or one of the same data set trained
            on classes that `split` holds out.
    """
    meta = metadata.read(export_dir)
    flag = f"--init_from={export_dir}"
    if meta.dataset != dataset:  # class numbers of two data sets name different classes
        return test_time.base_tower(export.load_tower(export_dir))
    leaked = sorted(set(meta.class_split().seen) & set(split.unseen))
    if leaked:
        raise UserError(
            f"{flag} was trained on {len(leaked)} of the classes that split {split.name} holds "
            f"out as unseen (class {leaked[0]} first): its one-shot scores would not be one-shot."
        )
    return test_time.base_tower(export.load_tower(export_dir))


# The layers a new tower may add to its source's: they start from their initialisation.
FRESH_LAYERS = frozenset({"neck"})


def copy_weights(source: keras.Model, tower: keras.Model, flag: str) -> list[str]:
    """Sets each layer of `tower` that has weights to the same-named layer's of `source`.

    Args:
        source: the tower of an export (`load_source`).
        tower: the new run's tower, built and not yet trained.
        flag: the setting that named `source`, for error messages.

    Returns:
        The names of `tower`'s layers that `source` lacks (of `FRESH_LAYERS` only); they
        keep their initial weights.

    Raises:
        UserError: when a layer with weights of either tower is missing from the other
            (but for `FRESH_LAYERS`), or their weights differ in shape.
    """
    targets = {layer.name: layer for layer in tower.layers if layer.weights}
    pairs = []  # every pair is checked before any weight is set
    for layer in source.layers:
        if not layer.weights:
            continue
        target = targets.pop(layer.name, None)
        if target is None:
            raise UserError(
                f"The tower of {flag} has a layer {layer.name!r} that this run's tower lacks: "
                "build it alike (--depth, --embedding, --pool_grid, --neck)."
            )
        shapes = [tuple(w.shape) for w in layer.weights]
        if shapes != [tuple(w.shape) for w in target.weights]:
            raise UserError(
                f"The layer {layer.name!r} of {flag} has weights of shapes {shapes}, this run's "
                f"{[tuple(w.shape) for w in target.weights]}: build the tower alike (--depth, "
                "--embedding, --embedding_dim, --pool_grid)."
            )
        pairs.append((layer, target))
    unmatched = sorted(set(targets) - FRESH_LAYERS)
    if unmatched:
        raise UserError(
            f"This run's tower has a layer {unmatched[0]!r} that the tower of {flag} lacks: "
            "build it alike (--depth, --embedding, --pool_grid)."
        )
    for layer, target in pairs:
        target.set_weights(layer.get_weights())
    return sorted(targets)
