"""The Milvus backend: one code path for a Milvus Lite file (uri ending in .db) and a Milvus server.

A collection holds an INT64 primary key `id` and a FLOAT_VECTOR `vector` with an HNSW index on inner
product. pymilvus is imported when an index is opened, so the package imports without it. Milvus Lite
runs in-process and locks its data directory, so the last index closed on a .db file stops its server:
then another process can open the file.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ogasearch.index.factory import IndexMismatch, IndexUnavailable, check_batch, check_ids, check_queries

_lite_lock = threading.Lock()
_lite_users: Counter[str] = Counter()  # open indexes per Milvus Lite data directory (absolute path)


def is_lite(uri: str) -> bool:
    """pymilvus's own rule: a URI ending in .db is a Milvus Lite data directory."""
    return uri.endswith(".db")


class MilvusIndex:
    """A Milvus collection behind the VectorIndex interface.

    Writes are durable when Milvus acknowledges them; `save()` flushes them into sealed segments.
    """

    def __init__(
        self,
        uri: str,
        collection: str,
        dim: int,
        *,
        token: str = "",
        m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
        consistency_level: str = "Strong",
        batch_size: int = 1000,
        timeout: float | None = None,
    ) -> None:
        try:
            from pymilvus import DataType, MilvusClient
            from pymilvus.exceptions import MilvusException
        except ImportError as exc:
            raise IndexUnavailable(
                f"the milvus index needs pymilvus (and milvus-lite for a .db file): "
                f"pip install pymilvus milvus-lite ({exc})"
            ) from exc
        self.dim = dim
        self.uri = uri
        self.collection = collection
        self._ef_search = ef_search
        self._batch_size = batch_size
        self._timeout = timeout
        self._lite_dir = os.path.abspath(uri) if is_lite(uri) else None
        if self._lite_dir:
            Path(self._lite_dir).parent.mkdir(parents=True, exist_ok=True)
            with _lite_lock:  # counted before connecting, so a concurrent close() keeps the server
                _lite_users[self._lite_dir] += 1
        try:
            self._client = MilvusClient(uri=uri, token=token, timeout=timeout)
        except MilvusException as exc:
            self._release_lite()
            hint = " (only one process at a time may open a Milvus Lite file)" if self._lite_dir else ""
            raise IndexUnavailable(f"cannot open Milvus at {uri}: {exc.message}{hint}") from exc
        self._closed = False
        try:
            if self._client.has_collection(collection):
                self._check_schema()
                self._client.load_collection(collection)
            else:
                schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
                schema.add_field("id", DataType.INT64, is_primary=True)
                schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
                index_params = MilvusClient.prepare_index_params()
                index_params.add_index(
                    field_name="vector",
                    index_type="HNSW",
                    metric_type="IP",
                    params={"M": m, "efConstruction": ef_construction},
                )
                self._client.create_collection(
                    collection, schema=schema, index_params=index_params, consistency_level=consistency_level
                )
        except BaseException:
            self.close()
            raise

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids, vectors = check_batch(ids, vectors, self.dim)
        for start in range(0, len(ids), self._batch_size):
            rows = [
                {"id": int(item), "vector": vector}
                for item, vector in zip(
                    ids[start : start + self._batch_size], vectors[start : start + self._batch_size], strict=True
                )
            ]
            self._client.upsert(self.collection, rows, timeout=self._timeout)

    def remove(self, ids: np.ndarray) -> None:
        ids = check_ids(ids)
        for start in range(0, len(ids), self._batch_size):
            batch = ids[start : start + self._batch_size].tolist()
            self._client.delete(self.collection, ids=batch, timeout=self._timeout)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = check_queries(queries, k, self.dim)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        ids = np.full((len(queries), k), -1, np.int64)
        if not len(queries):
            return scores, ids
        results = self._client.search(
            self.collection,
            data=list(queries),
            limit=k,
            output_fields=["id"],
            search_params={"metric_type": "IP", "params": {"ef": max(self._ef_search, k)}},
            anns_field="vector",
            timeout=self._timeout,
        )
        for row, hits in enumerate(results):
            for col, hit in enumerate(hits):
                ids[row, col] = hit["id"]
                scores[row, col] = hit["distance"]
        return scores, ids

    def ids(self) -> np.ndarray:
        found: list[int] = []
        iterator = self._client.query_iterator(
            self.collection, batch_size=max(self._batch_size, 1000), output_fields=["id"], timeout=self._timeout
        )
        try:
            while batch := iterator.next():
                found.extend(row["id"] for row in batch)
        finally:
            iterator.close()
        return np.sort(np.array(found, dtype=np.int64))

    def __len__(self) -> int:
        rows = self._client.query(self.collection, output_fields=["count(*)"], timeout=self._timeout)
        return int(rows[0]["count(*)"])

    def save(self) -> None:
        self._client.flush(self.collection, timeout=self._timeout)

    def close(self) -> None:
        """Disconnect; the last index closed on a Milvus Lite file stops its in-process server."""
        if self._closed:
            return
        self._closed = True
        self._client.close()
        self._release_lite()

    def _release_lite(self) -> None:
        """Stop the Milvus Lite server of this file when no open index uses it (a no-op for servers)."""
        if not self._lite_dir:
            return
        with _lite_lock:
            _lite_users[self._lite_dir] -= 1
            if _lite_users[self._lite_dir] > 0:
                return
            del _lite_users[self._lite_dir]
            from milvus_lite import server_manager_instance

            server_manager_instance.release_server(self._lite_dir)

    def _check_schema(self) -> None:
        fields: list[dict[str, Any]] = self._client.describe_collection(self.collection)["fields"]
        vector = next((f for f in fields if f["name"] == "vector"), None)
        if vector is None or int(vector["params"].get("dim", -1)) != self.dim:
            found = "no 'vector' field" if vector is None else f"{vector['params'].get('dim')}-d vectors"
            raise IndexMismatch(
                f"Milvus collection {self.collection!r} at {self.uri} has {found}, but this index is opened "
                f"for {self.dim}-d: rebuild it for the current embedder or use another collection"
            )
