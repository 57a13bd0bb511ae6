"""Builds a searchable gallery of images with a trained export, grows it, and queries it.

keras-siamese search build --export=runs/90_10/export --images=DIR|FILE.npz --out=gallery
keras-siamese search add   --index=gallery --images=MORE
keras-siamese search query --index=gallery --images=QUERIES [--k=10]

With --backend=milvus the index is a Milvus collection, not a folder: --out and
--index name a Milvus Lite file (gallery.db, one process at a time) or a Milvus
server (http://HOST:PORT; `milvus-lite server --data-dir DIR --port N` serves a
file to several processes), optionally followed by #COLLECTION (default
gallery). Each addition is stored as it is made. Needs
`pip install 'keras-siamese[milvus]'`.

Images are a folder of PNG, JPEG, BMP or GIF files, or of class folders of them
(ids: their paths, which keep the class folder), one image file, or
an .npz file with a uint8 `images` array `[N, H, W, C]` of the export's input
shape (ids: its `ids` array if it has one, else FILE.npz[i]).
"""

from __future__ import annotations

import sys

from absl import flags

from keras_siamese import cli
from keras_siamese.errors import UserError
from keras_siamese.serving.index import BACKENDS

COMMANDS = ("build", "add", "query")


def define_flags(flag_values: flags.FlagValues) -> None:
    """Defines this program's flags."""
    where = {"flag_values": flag_values}
    flags.DEFINE_string(
        "export",
        None,
        "Export folder of a trained run (build; query and add "
        "default to the one that built the index).",
        **where,
    )
    flags.DEFINE_string("images", None, "Images: a folder, an image file or an .npz file.", **where)
    flags.DEFINE_string(
        "out", None, "build: the index folder to write, or the Milvus collection.", **where
    )
    flags.DEFINE_string(
        "index", None, "add, query: the index folder, or the Milvus collection.", **where
    )
    flags.DEFINE_enum(
        "backend",
        "exact",
        list(BACKENDS),
        "build: exact search, FAISS's HNSW graph or IVF cells (approximate; need faiss-cpu), "
        "or a Milvus collection (HNSW; needs pymilvus).",
        **where,
    )
    flags.DEFINE_integer("k", 10, "query: neighbours shown per query image.", **where)


def run(flag_values: flags.FlagValues, command: str) -> int:
    """Runs `command` with the parsed `flag_values`; returns the exit code."""
    needed = {
        "build": ("export", "images", "out"),
        "add": ("index", "images"),
        "query": ("index", "images"),
    }[command]
    missing = [f"--{name}" for name in needed if not flag_values[name].value]
    if missing:
        print(f"error: {command} needs {' and '.join(missing)}.", file=sys.stderr)
        return 2
    if command == "query" and flag_values.k < 1:
        print(f"error: --k={flag_values.k} must be at least 1.", file=sys.stderr)
        return 2
    try:
        return _COMMANDS[command](flag_values)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def _build(fv: flags.FlagValues) -> int:
    from keras_siamese.serving.backends import is_database
    from keras_siamese.serving.index import EmbeddingIndex
    from keras_siamese.serving.similarity import Similarity

    database = fv.backend == "milvus"
    if database != is_database(fv.out):
        raise UserError(
            f"--backend=milvus writes to a Milvus database: --out=gallery.db or "
            f"http://HOST:PORT, not {fv.out}."
            if database
            else f"--out={fv.out} names a Milvus database: add --backend=milvus, or name a folder."
        )
    sim = Similarity.load(fv.export)
    images, ids = _images(fv.images)
    location = fv.out if database else None
    index = EmbeddingIndex.build(sim, images, ids, backend=fv.backend, location=location)
    if not index.stored_as_added:
        index.save(fv.out)
    print(
        f"Indexed {len(index)} images of {fv.images} with {fv.export} ({fv.backend} search, "
        f"{index.distance} distance) in {fv.out}."
    )
    return 0


def _load(fv: flags.FlagValues):
    from keras_siamese.serving import index as index_module

    export = fv.export or index_module.recorded_export(fv.index)
    from keras_siamese.serving.similarity import Similarity

    return index_module.EmbeddingIndex.load(fv.index, Similarity.load(export))


def _add(fv: flags.FlagValues) -> int:
    index = _load(fv)
    images, ids = _images(fv.images)
    before = len(index)
    index.add(images, ids)
    if not index.stored_as_added:
        index.save(fv.index)
    print(f"Added {len(index) - before} images of {fv.images} to {fv.index} ({len(index)} in all).")
    return 0


def _query(fv: flags.FlagValues) -> int:
    index = _load(fv)
    images, names = _images(fv.images)
    if names is None:
        names = index.similarity.image_paths(images)
    found, distances = index.search(images, k=fv.k)
    if fv.k > len(index):
        print(
            f"note: the gallery holds {len(index)} images; showing all of them, not {fv.k}.",
            file=sys.stderr,
        )
    for row, (ids, dists) in enumerate(zip(found, distances, strict=True)):
        print(names[row])
        for rank, (item, dist) in enumerate(zip(ids, dists, strict=True), start=1):
            print(f"  {rank:>3}  {dist:.4f}  {item}")
    return 0


def _images(source: str):
    """`source` for the API (a path, or an .npz's array) and its ids (None: the paths)."""
    if not source.endswith(".npz"):
        return source, None
    import numpy as np

    try:
        with np.load(source, allow_pickle=False) as data:
            if "images" not in data:
                raise UserError(f"{source} has no 'images' array (it has {', '.join(data)}).")
            images = data["images"]
            ids = data["ids"] if "ids" in data else [f"{source}[{i}]" for i in range(len(images))]
    except (OSError, ValueError) as e:
        raise UserError(f"{source} is not a readable .npz file ({e}).") from None
    return images, ids


_COMMANDS = {"build": _build, "add": _add, "query": _query}


def main() -> None:
    """The program's entry point: `keras-siamese search` and `search_main.py`."""
    cli.run_program(define_flags, run, flags.FLAGS, COMMANDS, doc=__doc__)
