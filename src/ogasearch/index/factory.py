"""Open a vector index by backend name, and the checks every backend applies to its input.

Backends are imported here lazily, so the package imports without faiss or pymilvus and a
missing one is reported as `IndexUnavailable` with what to install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ogasearch.errors import ConfigError, OgasearchError
from ogasearch.index.base import VectorIndex

BACKENDS = ("local", "milvus")


class IndexUnavailable(OgasearchError):
    """The backend cannot run here (a missing package or an unreachable server); the message says what to do."""

    exit_code = 2


class IndexMismatch(OgasearchError, ValueError):
    """Vectors or a stored index do not fit this index (another dimension or layout): rebuild it from the catalog."""


def open_index(
    backend: str,
    *,
    path: Path | None = None,
    uri: str | None = None,
    collection: str,
    dim: int,
    **opts: Any,
) -> VectorIndex:
    """The index `collection` of `dim`-d vectors: 'local' files under `path`, or 'milvus' at `uri`.

    `opts` go to the backend (both: m, ef_construction, ef_search; local: approx_threshold; milvus: token,
    consistency_level, batch_size, timeout).
    """
    if backend == "local":
        if path is None:
            raise ConfigError("the local index needs a directory (path)")
        try:
            from ogasearch.index.local import LocalIndex
        except ImportError as exc:
            raise IndexUnavailable(f"the local index needs faiss: pip install faiss-cpu ({exc})") from exc
        return LocalIndex(Path(path), collection, dim, **opts)
    if backend == "milvus":
        if not uri:
            raise ConfigError("the milvus index needs a URI: a Milvus Lite file ending in .db or http://host:19530")
        from ogasearch.index.milvus import MilvusIndex

        return MilvusIndex(uri, collection, dim, **opts)
    raise ConfigError(f"unknown index backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def check_batch(ids: np.ndarray, vectors: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids int64, vectors float32 C-contiguous (n, dim)); an id given twice keeps its last vector.

    Both backends replace by id, so a repeated id inside one batch must not add two rows.
    """
    ids = check_ids(ids)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise IndexMismatch(f"vectors have shape {vectors.shape}, but this index holds {dim}-d vectors")
    if len(ids) != len(vectors):
        raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
    _, last_from_end = np.unique(ids[::-1], return_index=True)
    if len(last_from_end) < len(ids):
        keep = np.sort(len(ids) - 1 - last_from_end)
        ids, vectors = ids[keep], vectors[keep]
    return ids, vectors


def check_ids(ids: np.ndarray) -> np.ndarray:
    """1-D int64 item ids, none negative (-1 marks a missing search result)."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1:
        raise ValueError(f"ids must be one-dimensional, not of shape {ids.shape}")
    if len(ids) and ids.min() < 0:
        raise ValueError("item ids must be >= 0 (-1 marks a missing search result)")
    return ids


def check_queries(queries: np.ndarray, k: int, dim: int) -> np.ndarray:
    """Queries as float32 C-contiguous (n, dim)."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise IndexMismatch(f"queries have shape {queries.shape}, but this index holds {dim}-d vectors")
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    return queries
