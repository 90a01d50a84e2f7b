"""The vector index interface shared by the embedded (faiss) and Milvus backends.

Indexes hold item ids (int64) and L2-normalised float32 vectors of one
embedder; scores are inner products (cosine similarity), higher is closer.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class VectorIndex(Protocol):
    dim: int

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace vectors by item id."""
        ...

    def remove(self, ids: np.ndarray) -> None:
        """Drop item ids (unknown ids are ignored)."""
        ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n_queries, k), best first; missing results have id -1."""
        ...

    def ids(self) -> np.ndarray:
        """Every item id in the index."""
        ...

    def __len__(self) -> int: ...

    def save(self) -> None:
        """Persist (atomically) so a new process can open it."""
        ...

    def close(self) -> None: ...
