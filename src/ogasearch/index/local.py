"""The embedded vector index: faiss in one local file, exact while small, HNSW above a size threshold.

The file `<dir>/<collection>.faiss` is a faiss IndexIDMap over an IndexFlatIP (exact) or an IndexHNSWFlat,
written by faiss itself, so item ids and vectors live in one file that is replaced atomically. An HNSW graph
cannot drop nodes, so a removed or replaced vector stays as a tombstone: its id in the map becomes -1 and
searches skip it through an id selector (no over-fetch, always k results when there are k). When tombstones
pass 20% of the rows the index is rebuilt from its live vectors; crossing the size threshold rebuilds it as
the other kind. The catalog holds every vector too, so the file can always be rebuilt from scratch.

Why HNSW rather than IVF, measured on this 2-core machine: on clustered data at 1M x 256 an IVF4096 (HNSW
quantiser) built in 65-80 s against 195-235 s for HNSW M=32 efConstruction=80, both under 1 ms a query at
recall@10 >= 0.96; but on diffuse data (200k points, `bench/index_speed.py --spread 2 2`) IVF2048 at nprobe 32
fell to recall 0.62 where HNSW kept 0.93 at efSearch 128 and 0.98 at the default 256. HNSW needs no training,
so incremental adds never force a retrain. On the clustered data efSearch 256 gave recall@10 0.979 at 1M in
0.7 ms a query.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import faiss
import numpy as np

from ogasearch.errors import ConfigError
from ogasearch.index.factory import IndexMismatch, check_batch, check_ids, check_queries

TOMBSTONE = -1
MAX_TOMBSTONE_FRACTION = 0.2
# Default size limit of exact search, in stored floats: 100k x 256-d scans in 4-9 ms a query here, inside the
# 10 ms search budget; wider vectors switch to HNSW at proportionally fewer items.
EXACT_FLOATS = 100_000 * 256
# Fewer queries than this (faiss's BLAS threshold) are searched on one OpenMP thread. Waking a sleeping OpenMP
# team costs 8-16 ms on this 2-core VM, and faiss opens parallel regions even for one query (IndexIDMap maps the
# labels in one): one query took 8 ms on two threads and 0.5 ms on one (HNSW, 200k), 172 vs 78 ms (exact, 1M).
SMALL_BATCH = 20


def single_threaded_search(
    index: faiss.Index, queries: np.ndarray, k: int, params: faiss.SearchParameters | None
) -> tuple[np.ndarray, np.ndarray]:
    """Search with one OpenMP thread; the setting is per calling thread, so other threads are unaffected."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return index.search(queries, k, params=params)
    finally:
        faiss.omp_set_num_threads(threads)


class LocalIndex:
    """A faiss index in `<directory>/<collection>.faiss`; see the module docstring for the layout.

    One lock serialises searches and mutations: faiss indexes must not be read while they are written,
    and a search at 1M takes about a millisecond, so concurrent readers would gain little.
    Changes reach the file on `save()` only.
    """

    def __init__(
        self,
        directory: Path,
        collection: str,
        dim: int,
        *,
        approx_threshold: int | None = None,
        m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 256,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", collection):
            raise ConfigError(f"index collection name {collection!r} must be letters, digits, '_', '.' or '-'")
        self.dim = dim
        self.path = Path(directory) / f"{collection}.faiss"
        self.approx_threshold = approx_threshold or max(1, EXACT_FLOATS // dim)
        self.m = m
        self.ef_construction = ef_construction
        self._lock = threading.Lock()
        # Search parameters do not keep their selector alive: hold it here.
        self._live_only = faiss.IDSelectorRange(0, np.iinfo(np.int64).max)
        self._hnsw_params = faiss.SearchParametersHNSW(efSearch=ef_search)
        self._hnsw_live_params = faiss.SearchParametersHNSW(efSearch=ef_search, sel=self._live_only)
        self._flat_live_params = faiss.SearchParameters(sel=self._live_only)
        self._index: faiss.IndexIDMap | None
        if self.path.exists():
            self._index = self._read()
            self._dirty = False
        else:
            self._index = self._build(np.empty(0, np.int64), np.empty((0, dim), np.float32), approximate=False)
            self._dirty = True
        ids = self._id_map()
        live = np.flatnonzero(ids != TOMBSTONE)
        self._rows = dict(zip(ids[live].tolist(), live.tolist(), strict=True))  # item id -> row of its vector

    @property
    def kind(self) -> str:
        """'Flat' (exact) or 'HNSW<M>', as in faiss's index factory."""
        with self._lock:
            inner = self._inner()
            return f"HNSW{inner.hnsw.nb_neighbors(1)}" if isinstance(inner, faiss.IndexHNSW) else "Flat"

    @property
    def tombstones(self) -> int:
        """Rows of removed or replaced vectors that wait for the next rebuild."""
        with self._lock:
            return self._live().ntotal - len(self._rows)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids, vectors = check_batch(ids, vectors, self.dim)
        if not len(ids):
            return
        with self._lock:
            index = self._live()
            self._bury(ids)
            first = index.ntotal
            index.add_with_ids(vectors, ids)
            self._rows.update(zip(ids.tolist(), range(first, first + len(ids)), strict=True))
            self._dirty = True
            self._reshape()

    def remove(self, ids: np.ndarray) -> None:
        ids = check_ids(ids)
        with self._lock:
            self._live()
            if self._bury(ids):
                self._dirty = True
                self._reshape()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = check_queries(queries, k, self.dim)
        with self._lock:
            index = self._live()
            buried = index.ntotal > len(self._rows)
            if isinstance(self._inner(), faiss.IndexHNSW):
                params = self._hnsw_live_params if buried else self._hnsw_params
            else:
                params = self._flat_live_params if buried else None
            if len(queries) < SMALL_BATCH:
                scores, ids = single_threaded_search(index, queries, k, params)
            else:
                scores, ids = index.search(queries, k, params=params)
        scores[ids < 0] = -np.inf
        return scores, ids

    def ids(self) -> np.ndarray:
        with self._lock:
            self._live()
            return np.sort(np.fromiter(self._rows, dtype=np.int64, count=len(self._rows)))

    def __len__(self) -> int:
        with self._lock:
            self._live()
            return len(self._rows)

    def save(self) -> None:
        """Write to a temporary file, fsync, rename over the old one: a crash leaves the old or the new index."""
        with self._lock:
            index = self._live()
            if not self._dirty:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            try:
                faiss.write_index(index, str(tmp))
                with open(tmp, "rb") as written:
                    os.fsync(written.fileno())
                os.replace(tmp, self.path)
            finally:
                tmp.unlink(missing_ok=True)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
            self._dirty = False

    def close(self) -> None:
        """Free the memory; unsaved changes are dropped (call save() first)."""
        with self._lock:
            self._index = None
            self._rows = {}
            self._dirty = False

    def _live(self) -> faiss.IndexIDMap:
        if self._index is None:
            raise ValueError(f"the index {self.path} is closed")
        return self._index

    def _inner(self) -> faiss.Index:
        return faiss.downcast_index(self._live().index)

    def _id_map(self) -> np.ndarray:
        """A writable view of the row -> item id map; valid until the next add."""
        id_map = self._live().id_map
        return faiss.rev_swig_ptr(id_map.data(), id_map.size())

    def _bury(self, ids: np.ndarray) -> int:
        """Tombstone the rows of these ids (lock held); returns how many there were."""
        rows = [self._rows.pop(item) for item in ids.tolist() if item in self._rows]
        if rows:
            self._id_map()[rows] = TOMBSTONE
        return len(rows)

    def _reshape(self) -> None:
        """Rebuild when tombstones pile up or the size crosses the threshold (lock held)."""
        total, live = self._live().ntotal, len(self._rows)
        approximate = isinstance(self._inner(), faiss.IndexHNSW)
        wanted = live >= self.approx_threshold // 2 if approximate else live > self.approx_threshold
        if wanted == approximate and total - live <= MAX_TOMBSTONE_FRACTION * total:
            return
        ids = self._id_map()
        keep = np.flatnonzero(ids != TOMBSTONE)
        inner = self._inner()
        storage = faiss.downcast_index(inner.storage) if approximate else inner
        vectors = faiss.rev_swig_ptr(storage.get_xb(), total * self.dim).reshape(total, self.dim)
        kept_ids = ids[keep]
        self._index = self._build(kept_ids, vectors[keep], approximate=wanted)
        self._rows = dict(zip(kept_ids.tolist(), range(len(keep)), strict=True))

    def _build(self, ids: np.ndarray, vectors: np.ndarray, *, approximate: bool) -> faiss.IndexIDMap:
        if approximate:
            inner = faiss.IndexHNSWFlat(self.dim, self.m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.ef_construction
        else:
            inner = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIDMap(inner)
        index.add_with_ids(vectors, ids)
        return index

    def _read(self) -> faiss.IndexIDMap:
        index = faiss.read_index(str(self.path))
        inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else None
        if not isinstance(inner, faiss.IndexFlatIP | faiss.IndexHNSWFlat):
            raise IndexMismatch(f"{self.path} is not an index this version writes: rebuild it")
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise IndexMismatch(f"{self.path} does not use inner-product scores: rebuild it")
        if index.d != self.dim:
            raise IndexMismatch(
                f"{self.path} holds {index.d}-d vectors, but this index is opened for {self.dim}-d: "
                "rebuild it for the current embedder"
            )
        return index
