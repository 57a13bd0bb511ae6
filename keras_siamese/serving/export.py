"""Export of the embedding tower: a SavedModel, a .keras file and metadata.json.

The SavedModel's `serving_default` signature takes uint8 images `[N, H, W, C]`
(named `images`) and returns float32 embeddings; preprocessing is inside, so
clients never need the normalisation constants. The export is assembled in a
temporary folder and renamed into place, metadata.json last, so a crash never
leaves half an export that looks complete.
"""

from __future__ import annotations

import hashlib
import os
import platform

import keras
import numpy as np
import tensorflow as tf

import keras_siamese
from keras_siamese import files
from keras_siamese.serving import metadata as export_metadata

SAVED_MODEL_ENDPOINT = "serve"
KERAS_FILE = "tower.keras"
METADATA_FILE = export_metadata.FILE


def package_versions() -> dict[str, str]:
    """Versions of the packages that a run's results depend on."""
    return {
        "keras_siamese": keras_siamese.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def export_tower(
    tower: keras.Model, export_dir: str, metadata: export_metadata.ExportMetadata
) -> None:
    """Writes the tower's SavedModel, its .keras file and metadata.json to `export_dir`.

    Any previous export at `export_dir` stays intact until the new one is
    complete.
    """

    def fill(staging: str) -> None:
        archive = keras.export.ExportArchive()
        archive.track(tower)
        spec = tf.TensorSpec([None, *tower.input_shape[1:]], tf.uint8, name="images")
        archive.add_endpoint(
            SAVED_MODEL_ENDPOINT,
            lambda images: tower(images, training=False),
            input_signature=[spec],
        )
        archive.write_out(staging, verbose=False)
        tower.save(os.path.join(staging, KERAS_FILE))
        export_metadata.write(staging, metadata)

    files.write_directory(export_dir, fill)


def load_tower(export_dir: str) -> keras.Model:
    """Loads the exported tower as a Keras model (registers its custom layer)."""
    from keras_siamese.model import resnet  # noqa: F401 - registers ShortcutA for deserialisation

    return keras.models.load_model(os.path.join(export_dir, KERAS_FILE))


def load_saved_model(export_dir: str):
    """Loads an exported SavedModel; call `.serve(uint8_images)` for embeddings."""
    return tf.saved_model.load(export_dir)


def fingerprint(export_dir: str) -> str:
    """A SHA-256 of the export's SavedModel and metadata: equal for the same weights."""
    digest = hashlib.sha256()
    paths = [os.path.join(export_dir, "saved_model.pb"), os.path.join(export_dir, METADATA_FILE)]
    variables = os.path.join(export_dir, "variables")
    paths += [os.path.join(variables, n) for n in sorted(os.listdir(variables))]
    for path in paths:
        digest.update(os.path.relpath(path, export_dir).encode())
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
