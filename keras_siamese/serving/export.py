"""Export of the embedding tower: a SavedModel, a .keras file and metadata.json.

The SavedModel takes uint8 images `[N, H, W, C]` (named `images`); preprocessing
is inside, so clients never need the normalisation constants. Its `serve`
function returns the float32 embeddings; its `serving_default` signature (what
TensorFlow Serving calls) returns them as `embeddings` and, ready for the
export's distance, as `search_vectors`: unit length for cosine distance, so that
a client's dot product is the cosine, and unchanged for squared euclidean.

The export is assembled in a temporary folder and renamed into place,
metadata.json last, so a crash never leaves half an export that looks complete.
Writing the SavedModel takes TensorFlow; a run trained without it (Keras's JAX
backend) exports the .keras file and metadata.json alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import platform
import shutil

import keras
import numpy as np

import keras_siamese
from keras_siamese import files
from keras_siamese.choices import HUB_PREFIX
from keras_siamese.errors import UserError
from keras_siamese.serving import metadata as export_metadata

SAVED_MODEL_ENDPOINT = "serve"
SERVING_SIGNATURE = "serving_default"
# The outputs of the serving signature.
EMBEDDINGS_OUTPUT = "embeddings"
SEARCH_VECTORS_OUTPUT = "search_vectors"
KERAS_FILE = "tower.keras"
METADATA_FILE = export_metadata.FILE


def package_versions() -> dict[str, str]:
    """Versions of the packages that a run's results depend on."""
    versions = {"keras_siamese": keras_siamese.__version__}
    if tensorflow_installed():
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    backend = keras.backend.backend()
    if backend != "tensorflow":
        versions["keras_backend"] = backend
        versions[backend] = importlib.import_module(backend).__version__
    versions.update(keras=keras.__version__, numpy=np.__version__, python=platform.python_version())
    return versions


def tensorflow_installed() -> bool:
    """Whether TensorFlow can be imported here (it writes and loads SavedModels)."""
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        return False


def export_tower(
    tower: keras.Model, export_dir: str, metadata: export_metadata.ExportMetadata
) -> bool:
    """Writes the tower's SavedModel, its .keras file and metadata.json to `export_dir`.

    Any previous export at `export_dir` stays intact until the new one is
    complete. Returns whether the SavedModel was written: without TensorFlow
    the export holds the .keras file and metadata.json alone.
    """
    with_saved_model = tensorflow_installed()

    def fill(staging: str) -> None:
        if with_saved_model:
            _write_saved_model(tower, staging, metadata.distance)
        tower.save(os.path.join(staging, KERAS_FILE))
        export_metadata.write(staging, metadata)

    files.write_directory(export_dir, fill)
    return with_saved_model


def _write_saved_model(tower: keras.Model, staging: str, distance: str) -> None:
    import tensorflow as tf

    from keras_siamese.model.distances import distance_of

    space = distance_of(distance).mean_space  # unit length for cosine, as the index stores
    archive = keras.export.ExportArchive()
    archive.track(tower)
    spec = tf.TensorSpec([None, *tower.input_shape[1:]], tf.uint8, name="images")
    archive.add_endpoint(
        SAVED_MODEL_ENDPOINT,
        lambda images: tower(images, training=False),
        input_signature=[spec],
    )

    def signature(images):
        embeddings = tower(images, training=False)
        return {EMBEDDINGS_OUTPUT: embeddings, SEARCH_VECTORS_OUTPUT: space(embeddings)}

    archive.add_endpoint(SERVING_SIGNATURE, signature, input_signature=[spec])
    archive.write_out(staging, verbose=False)


def add_saved_model(export_dir: str) -> bool:
    """Writes the SavedModel of an export that lacks one (a run trained without TensorFlow).

    The export is rewritten whole, as `export_tower` writes it. Returns False,
    changing nothing, when the export has its SavedModel already.

    Raises:
        UserError: when `export_dir` holds no .keras file, or TensorFlow is not installed.
    """
    if os.path.exists(os.path.join(export_dir, "saved_model.pb")):
        return False
    for name in (KERAS_FILE, METADATA_FILE):
        if not os.path.isfile(os.path.join(export_dir, name)):
            raise UserError(f"{export_dir} is not an export: it has no {name}.")
    if not tensorflow_installed():
        raise UserError("Writing a SavedModel takes TensorFlow: pip install tensorflow.")
    tower = load_tower(export_dir)
    distance = export_metadata.read(export_dir).distance

    def fill(staging: str) -> None:
        _write_saved_model(tower, staging, distance)
        for name in (KERAS_FILE, METADATA_FILE):
            shutil.copy2(os.path.join(export_dir, name), os.path.join(staging, name))

    files.write_directory(export_dir, fill)
    return True


# The policies whose layers compute in 16 bits; a float32 copy turns each into float32.
_SIXTEEN_BIT_POLICIES = ("mixed_bfloat16", "mixed_float16", "bfloat16", "float16")


def _policies_to_float32(serialized, found: set[str]):
    """The serialized model with every 16-bit dtype policy replaced by float32; the
    replaced policies' names are added to `found`."""
    if isinstance(serialized, list):
        return [_policies_to_float32(item, found) for item in serialized]
    if not isinstance(serialized, dict):
        return serialized
    config = serialized.get("config")
    if (
        str(serialized.get("class_name", "")).endswith("DTypePolicy")
        and isinstance(config, dict)
        and config.get("name") in _SIXTEEN_BIT_POLICIES
    ):
        found.add(config["name"])
        return {**serialized, "config": {**config, "name": "float32"}}
    return {key: _policies_to_float32(value, found) for key, value in serialized.items()}


def float32_tower(tower: keras.Model) -> tuple[keras.Model, str | None]:
    """The tower rebuilt to compute in float32, with the same weights.

    Returns the rebuilt tower and the 16-bit policy it replaced (None, and the
    tower itself, when every layer computed in float32 already). Variables of a
    mixed policy are float32, so the weights carry over unchanged.
    """
    found: set[str] = set()
    serialized = _policies_to_float32(keras.saving.serialize_keras_object(tower), found)
    if not found:
        return tower, None
    rebuilt = keras.saving.deserialize_keras_object(serialized)
    rebuilt.set_weights(tower.get_weights())
    return rebuilt, sorted(found)[0]


def write_float32_copy(export_dir: str, copy_dir: str) -> str:
    """Writes to `copy_dir` a copy of the export whose tower computes in float32.

    The copy serves at full speed on any CPU; its metadata records float32 as
    its export precision and keeps the source's metrics (measured on the
    16-bit tower; `keras-siamese eval --export=COPY_DIR` measures the copy).
    Returns the 16-bit policy the source computed in.

    Raises:
        UserError: when `export_dir` is not an export, computes in float32
            already, or `copy_dir` exists.
    """
    metadata = export_metadata.read(export_dir)
    if os.path.exists(copy_dir):
        raise UserError(f"{copy_dir} exists: give a new folder for the float32 copy.")
    tower, source_policy = float32_tower(load_tower(export_dir))
    if source_policy is None:
        raise UserError(f"{export_dir} computes in float32 already: it needs no copy.")
    metadata = dataclasses.replace(
        metadata,
        # Exports written before the precisions were recorded computed as they trained.
        precision=metadata.precision or source_policy,
        export_precision="float32",
    )
    export_tower(tower, copy_dir, metadata)
    return source_policy


def load_tower(export_dir: str) -> keras.Model:
    """Loads the exported tower as a Keras model (registers its custom layers).

    Raises:
        UserError: for a tower on a KerasHub backbone where KerasHub is not installed.
    """
    from keras_siamese.model import resnet  # noqa: F401 - registers ShortcutA for deserialisation

    backbone = export_metadata.read(export_dir).backbone or ""
    if backbone.startswith(HUB_PREFIX):
        try:
            import keras_hub  # noqa: F401 - registers the backbone's classes
        except ImportError:
            raise UserError(
                f"{export_dir} holds a tower on the KerasHub backbone {backbone}: loading it "
                "as a Keras model needs pip install 'keras-siamese[hub]'."
            ) from None
    return keras.models.load_model(os.path.join(export_dir, KERAS_FILE))


def load_saved_model(export_dir: str):
    """Loads an exported SavedModel; call `.serve(uint8_images)` for embeddings."""
    import tensorflow as tf

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
