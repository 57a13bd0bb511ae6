"""Vectors in a Milvus collection: a local Milvus Lite file, or a Milvus server or cluster.

A location is `gallery.db` (Milvus Lite, Milvus's own engine inside this
process; one process at a time) or `http://HOST:PORT` (a server: `milvus-lite
server --data-dir DIR --port N` on one machine, or a Milvus cluster), with an
optional `#COLLECTION` (default `gallery`). The same calls serve both, so
moving a gallery from a laptop to a cluster changes the location, not the
code. Each collection holds an auto-numbered key, the vector and the item's
id as text, with an HNSW index; what the index needs to check a later use (the
export's fingerprint, the distance, the kind of ids) is a collection property.
Every `add` is written through Milvus's log as it is made and flushed at its
end: there is nothing to save, and a process killed while adding leaves the
rows it had inserted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time

import numpy as np

from keras_siamese.errors import UserError
from keras_siamese.serving.backends import DATABASE_SCHEMES, Store
from keras_siamese.serving.vector_search import SearchOptions

DEFAULT_COLLECTION = "gallery"
PROPERTY = "keras_siamese"  # the collection property holding the index's description
ITEM_LENGTH = 1024  # longest id, in bytes of UTF-8
_INSERT_ROWS = 5000
_QUERY_ROWS = 1000
_CONNECT_SECONDS = 10.0
_INDEX_WAIT_SECONDS = 600.0
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


def _pymilvus():
    try:
        import pymilvus
    except ImportError:
        raise UserError(
            "The milvus backend needs pymilvus and Milvus Lite: "
            "pip install 'keras-siamese[milvus]'."
        ) from None
    # Milvus Lite logs its start, each segment it indexes and each collection it loads
    # at INFO, and its in-process gRPC server logs a traceback for each call it does not
    # implement (the client probes for them, then goes on): not news to a user.
    for name in ("pymilvus", "milvus_lite", "faiss.loader"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
    return pymilvus


def split_location(location: str) -> tuple[str, str]:
    """(uri, collection) of `URI[#COLLECTION]`."""
    uri, _, collection = location.partition("#")
    collection = collection or DEFAULT_COLLECTION
    if not _NAME.fullmatch(collection):
        raise UserError(
            f"#{collection} is not a Milvus collection name (letters, digits and _, "
            "not starting with a digit)."
        )
    return uri, collection


@contextlib.contextmanager
def _failing_as(what: str):
    """Turns the database's errors (a lost connection, a refused request) into one line."""
    pymilvus = _pymilvus()
    try:
        yield
    except (pymilvus.MilvusException, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"{what} ({_reason(e)}).") from None


def _connect(uri: str):
    pymilvus = _pymilvus()
    if not uri.startswith(DATABASE_SCHEMES):
        folder = os.path.dirname(os.path.abspath(uri))
        if not os.path.isdir(folder):
            raise UserError(f"Cannot create the Milvus Lite file {uri}: {folder} is not a folder.")
    with _failing_as(f"Cannot open the Milvus database {uri}"):
        return pymilvus.MilvusClient(uri=uri, timeout=_CONNECT_SECONDS)


def _reason(error: Exception) -> str:
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return " ".join(str(message).split())


class MilvusStore(Store):
    """An index's vectors and ids in one Milvus collection.

    Open one with `create` or `open`; `description` is what the index recorded there.
    """

    backend = "milvus"

    def __init__(self, client, uri: str, collection: str, description: dict):
        self._client, self.uri, self.collection = client, uri, collection
        self.description = description
        self.distance = str(description["distance"])
        self.dim = int(description["dim"])
        self.options = SearchOptions(**description.get("options", {}))

    @property
    def location(self) -> str:
        return f"{self.uri}#{self.collection}"

    @classmethod
    def create(
        cls, location: str, dim: int, distance: str, options: SearchOptions, description: dict
    ) -> MilvusStore:
        """A new, empty collection at `location`, its index built for `distance`.

        Raises:
            UserError: when the database cannot be reached or already holds that collection.
        """
        pymilvus = _pymilvus()
        uri, collection = split_location(location)
        client = _connect(uri)
        with _failing_as(f"Cannot create the collection {location}"):
            if client.has_collection(collection):
                raise UserError(
                    f"{uri} already holds a collection {collection!r}: add to it with "
                    f"`search add --index={location}`, or name a new one ({uri}#NAME)."
                )
            schema = client.create_schema(auto_id=True)
            schema.add_field("key", pymilvus.DataType.INT64, is_primary=True)
            schema.add_field("vector", pymilvus.DataType.FLOAT_VECTOR, dim=int(dim))
            schema.add_field("item", pymilvus.DataType.VARCHAR, max_length=ITEM_LENGTH)
            index = client.prepare_index_params()
            index.add_index(
                field_name="vector",
                index_type="HNSW",
                metric_type=_metric(distance),
                params={
                    "M": options.hnsw_neighbors,
                    "efConstruction": options.hnsw_ef_construction,
                },
            )
            description = {**description, "dim": int(dim), "distance": distance}
            description["options"] = vars(options)
            client.create_collection(
                collection,
                schema=schema,
                index_params=index,
                properties={PROPERTY: json.dumps(description)},
            )
        return cls(client, uri, collection, description)

    @classmethod
    def open(cls, location: str) -> MilvusStore:
        """The collection an index created at `location`.

        Raises:
            UserError: when it cannot be reached, does not exist, or was not made by an index.
        """
        uri, collection = split_location(location)
        client = _connect(uri)
        with _failing_as(f"Cannot read the collection {location}"):
            if not client.has_collection(collection):
                names = ", ".join(client.list_collections()) or "none"
                raise UserError(f"{uri} has no collection {collection!r} (it has: {names}).")
            properties = client.describe_collection(collection).get("properties", {})
            if PROPERTY in properties:
                client.load_collection(collection)  # a collection reopened starts released
        try:
            description = json.loads(properties[PROPERTY])
            int(description["dim"]), str(description["distance"])
        except (KeyError, TypeError, ValueError):
            raise UserError(
                f"The collection {location} was not made by keras_siamese (it has no "
                f"{PROPERTY!r} property): name another."
            ) from None
        return cls(client, uri, collection, description)

    def __len__(self) -> int:
        with _failing_as(f"Cannot count the collection {self.location}"):
            rows = self._client.query(self.collection, output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    @property
    def id_kind(self) -> str | None:
        return self.description.get("ids")

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        items = [str(i) for i in ids]
        too_long = [i for i in items if len(i.encode("utf-8")) > ITEM_LENGTH]
        if too_long:
            raise UserError(
                f"The id {too_long[0][:60]!r}... is longer than {ITEM_LENGTH} bytes, the most "
                "a Milvus gallery keeps: give shorter ids."
            )
        with _failing_as(f"Cannot add to the collection {self.location}"):
            if self.id_kind is None:
                self.description["ids"] = "str" if ids.dtype.kind == "U" else "int"
                self._client.alter_collection_properties(
                    self.collection, properties={PROPERTY: json.dumps(self.description)}
                )
            for start in range(0, len(items), _INSERT_ROWS):
                rows = [
                    {"vector": vector, "item": item}
                    for vector, item in zip(
                        vectors[start : start + _INSERT_ROWS],
                        items[start : start + _INSERT_ROWS],
                        strict=True,
                    )
                ]
                self._client.insert(self.collection, rows)
            # Sealed, the new rows are indexed in the background; left growing, each
            # search scans them one by one.
            self._client.flush(self.collection)
            self._wait_until_indexed()
            if not self.uri.startswith(DATABASE_SCHEMES):
                # Milvus Lite attaches the new segments' indexes when the collection is
                # loaded again (until then it scans them). The file is this process's
                # alone, so nobody searches while it reloads; a server's collection is
                # left loaded for the processes searching it.
                self._client.release_collection(self.collection)
                self._client.load_collection(self.collection)

    def _wait_until_indexed(self) -> None:
        """Returns once the index covers every sealed row (or after _INDEX_WAIT_SECONDS):
        an add is done when its rows are searched as fast as the others."""
        deadline = time.monotonic() + _INDEX_WAIT_SECONDS
        while time.monotonic() < deadline:
            state = self._client.describe_index(self.collection, "vector")
            if not state.get("pending_index_rows") and state.get("state") == "Finished":
                return
            time.sleep(0.2)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        params = {"metric_type": _metric(self.distance)}
        params["params"] = {"ef": max(self.options.hnsw_ef_search, k)}
        items = np.full((len(queries), k), None, dtype=object)
        distances = np.full((len(queries), k), np.inf, np.float32)
        with _failing_as(f"Cannot search the collection {self.location}"):
            for start in range(0, len(queries), _QUERY_ROWS):
                hits = self._client.search(
                    self.collection,
                    data=queries[start : start + _QUERY_ROWS].tolist(),
                    limit=k,
                    output_fields=["item"],
                    search_params=params,
                )
                for row, found in enumerate(hits, start=start):
                    for rank, hit in enumerate(found):
                        items[row, rank] = hit["entity"]["item"]
                        distances[row, rank] = hit["distance"]
        found = np.isfinite(distances)
        if self.distance == "cosine":  # Milvus scores inner products; the index serves 1 - cos
            distances[found] = 1.0 - distances[found]
        np.maximum(distances, 0.0, out=distances)
        if not found.all():
            return items, distances
        if self.id_kind == "int":
            return items.astype(np.int64), distances
        return items.astype(str), distances

    def drop(self) -> None:
        """Deletes the collection and everything in it."""
        with _failing_as(f"Cannot drop the collection {self.location}"):
            self._client.drop_collection(self.collection)

    def close(self) -> None:
        """Closes the connection. (Milvus Lite keeps its file until this process ends.)"""
        self._client.close()


def _metric(distance: str) -> str:
    # Vectors are stored unit-length for cosine; Milvus's L2 is the squared distance.
    return "IP" if distance == "cosine" else "L2"
