"""Keep a vector index equal to the catalog's vectors for one model: add what is new, drop what vanished."""

from __future__ import annotations

import numpy as np

from ogasearch.catalog import Catalog
from ogasearch.index.base import VectorIndex

BATCH = 20_000


def sync_index(catalog: Catalog, index: VectorIndex, model: str) -> tuple[int, int]:
    """Returns (added, removed); the index is saved afterwards."""
    want = set(catalog.embedded_ids(model))
    have = {int(i) for i in index.ids()}
    new = sorted(want - have)
    gone = sorted(have - want)
    for start in range(0, len(new), BATCH):
        rows = catalog.vectors(model, new[start : start + BATCH])
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), index.dim)
        index.add(ids, vectors)
    if gone:
        index.remove(np.array(gone, dtype=np.int64))
    index.save()
    return len(new), len(gone)
