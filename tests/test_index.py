"""Vector indexes: the local faiss backend and Milvus (against Milvus Lite) behave the same."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from ogasearch.errors import ConfigError
from ogasearch.index.base import VectorIndex
from ogasearch.index.factory import IndexMismatch, IndexUnavailable, open_index

DIM = 32
Opener = Callable[..., VectorIndex]


def unit(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    """Random unit rows (float32), like embeddings."""
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def sparse_ids(n: int) -> np.ndarray:
    """Non-contiguous item ids, so row numbers cannot pass for ids."""
    return np.arange(n, dtype=np.int64) * 7 + 3


def location(backend: str, root: Path) -> dict[str, object]:
    return {"path": root / "index"} if backend == "local" else {"uri": str(root / "milvus.db")}


@pytest.fixture(params=["local", "milvus"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "milvus":
        pytest.importorskip("pymilvus", reason="pymilvus is not installed")
        pytest.importorskip("milvus_lite", reason="milvus-lite is not installed")
    return request.param


@pytest.fixture
def opener(backend: str, tmp_path: Path) -> Iterator[Opener]:
    """Opens indexes of `backend` in tmp_path and closes them all at the end."""
    opened: list[VectorIndex] = []

    def open_(dim: int = DIM, **opts: object) -> VectorIndex:
        index = open_index(backend, collection="items", dim=dim, **location(backend, tmp_path), **opts)
        opened.append(index)
        return index

    yield open_
    for index in opened:
        index.close()


def test_stored_vectors_find_themselves_first(opener: Opener) -> None:
    index = opener()
    ids, vectors = sparse_ids(300), unit(300, 1)
    index.add(ids, vectors)
    scores, found = index.search(vectors, 5)
    assert found.shape == scores.shape == (300, 5)
    assert found.dtype == np.int64
    assert (found[:, 0] == ids).all()
    assert np.allclose(scores[:, 0], 1.0, atol=1e-4)
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    assert len(index) == 300
    assert (index.ids() == ids).all()


def test_add_replaces_by_id(opener: Opener) -> None:
    index = opener()
    ids, vectors = sparse_ids(50), unit(50, 2)
    index.add(ids, vectors)
    fresh = unit(3, 3)
    index.add(ids[:2], fresh[:2])
    index.add(np.array([ids[2], ids[2]]), fresh[1:3])  # repeated in one batch: the last vector wins
    assert len(index) == 50
    assert (index.ids() == ids).all()
    _, found = index.search(fresh, 1)
    assert found[:, 0].tolist() == [ids[0], ids[1], ids[2]]
    scores, found = index.search(vectors[:3], 50)
    for row in range(3):
        own = scores[row][found[row] == ids[row]]
        assert own.size == 1 and own[0] < 0.99  # the old vector is gone


def test_remove(opener: Opener) -> None:
    index = opener()
    ids, vectors = sparse_ids(100), unit(100, 4)
    index.add(ids, vectors)
    gone = ids[::3]
    index.remove(np.concatenate([gone, [999_999]]))  # unknown ids are ignored
    kept = np.setdiff1d(ids, gone)
    assert len(index) == len(kept)
    assert (index.ids() == kept).all()
    _, found = index.search(vectors, 100)
    assert not np.isin(found, gone).any()
    assert (found[:, : len(kept)] >= 0).all()
    index.remove(np.array([], dtype=np.int64))
    assert len(index) == len(kept)


def test_pads_with_minus_one_beyond_size(opener: Opener) -> None:
    index = opener()
    index.add(sparse_ids(3), unit(3, 5))
    scores, found = index.search(unit(2, 6), 5)
    assert (found[:, :3] >= 0).all()
    assert (found[:, 3:] == -1).all()
    assert np.isneginf(scores[:, 3:]).all()


def test_empty_index(opener: Opener) -> None:
    index = opener()
    scores, found = index.search(unit(2, 7), 4)
    assert (found == -1).all() and np.isneginf(scores).all()
    assert len(index) == 0
    assert index.ids().size == 0


def test_dimension_and_input_errors(opener: Opener) -> None:
    index = opener()
    index.add(sparse_ids(5), unit(5, 8))
    with pytest.raises(IndexMismatch, match="32-d"):
        index.add(np.array([1]), unit(1, 9, dim=16))
    with pytest.raises(IndexMismatch, match="32-d"):
        index.search(unit(1, 9, dim=16), 3)
    with pytest.raises(ValueError, match=">= 0"):
        index.add(np.array([-1]), unit(1, 9))
    with pytest.raises(ValueError, match="ids for"):
        index.add(np.array([1, 2]), unit(1, 9))
    with pytest.raises(ValueError, match="k must be"):
        index.search(unit(1, 9), 0)
    index.save()
    index.close()
    with pytest.raises(IndexMismatch, match="16-d"):
        opener(dim=16)


def test_reopen_gives_identical_results(opener: Opener) -> None:
    index = opener()
    ids, vectors = sparse_ids(400), unit(400, 10)
    index.add(ids, vectors)
    index.remove(ids[:40])
    queries = unit(20, 11)
    before = index.search(queries, 10)
    index.save()
    index.close()
    reopened = opener()
    assert len(reopened) == 360
    assert (reopened.ids() == ids[40:]).all()
    after = reopened.search(queries, 10)
    assert (after[1] == before[1]).all()
    assert np.allclose(after[0], before[0], atol=1e-6)


@pytest.mark.parametrize(
    ("backend", "opts"),
    [("local", {}), ("local", {"approx_threshold": 1000}), ("milvus", {})],
    ids=["local-exact", "local-hnsw", "milvus"],
    indirect=["backend"],
)
def test_reopen_in_a_new_process(backend: str, opts: dict[str, int], tmp_path: Path) -> None:
    where = location(backend, tmp_path)
    ids, vectors = sparse_ids(2000), unit(2000, 12)
    queries = np.concatenate([unit(10, 13), vectors[:20]])  # removed and replaced vectors among them
    index = open_index(backend, collection="items", dim=DIM, **where, **opts)
    index.add(ids, vectors)
    index.remove(ids[:100])
    index.add(ids[100:110], unit(10, 14))
    before = index.search(queries, 10)
    assert not np.isin(before[1], ids[:100]).any()
    index.save()
    index.close()
    np.save(tmp_path / "queries.npy", queries)
    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        from ogasearch.index.factory import open_index
        backend, where, queries = sys.argv[1], json.loads(sys.argv[2]), np.load(sys.argv[3])
        index = open_index(backend, collection="items", dim=queries.shape[1], **where)
        scores, ids = index.search(queries, 10)
        print(json.dumps({"all": index.ids().tolist(), "ids": ids.tolist(), "scores": scores.tolist()}))
        index.close()
        """
    )
    args = [backend, json.dumps({key: str(value) for key, value in where.items()}), str(tmp_path / "queries.npy")]
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    after = json.loads(done.stdout.strip().splitlines()[-1])
    assert after["all"] == ids[100:].tolist()
    assert (np.array(after["ids"]) == before[1]).all()
    assert np.allclose(np.array(after["scores"]), before[0], atol=1e-6)


def test_concurrent_searches_and_adds(opener: Opener) -> None:
    index = opener()
    index.add(sparse_ids(200), unit(200, 14))
    errors: list[BaseException] = []

    def searcher() -> None:
        try:
            for _ in range(20):
                _, found = index.search(unit(4, 15), 5)
                assert (found[:, 0] >= 0).all()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(4)]
    for thread in threads:
        thread.start()
    for batch in range(5):
        index.add(sparse_ids(1000)[200 + batch * 20 : 220 + batch * 20], unit(20, 16 + batch))
    for thread in threads:
        thread.join()
    assert not errors
    assert len(index) == 300


# Milvus Lite only: one in-process server per file, shared by the indexes open on it.


@pytest.fixture
def lite(tmp_path: Path) -> str:
    pytest.importorskip("pymilvus", reason="pymilvus is not installed")
    pytest.importorskip("milvus_lite", reason="milvus-lite is not installed")
    return str(tmp_path / "milvus.db")


def test_lite_server_outlives_all_but_the_last_close(lite: str) -> None:
    first = open_index("milvus", uri=lite, collection="a", dim=DIM)
    second = open_index("milvus", uri=lite, collection="b", dim=DIM)
    second.add(sparse_ids(5), unit(5, 30))
    first.close()
    first.close()  # twice is harmless
    assert len(second) == 5
    second.close()


def test_lite_file_held_by_another_process(lite: str) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from ogasearch.index.factory import open_index; "
            f"index = open_index('milvus', uri={lite!r}, collection='items', dim={DIM}); "
            "print('open', flush=True); sys.stdin.read(); index.close()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(IndexUnavailable, match="only one process"):
            open_index("milvus", uri=lite, collection="items", dim=DIM)
    finally:
        holder.communicate("", timeout=30)
    index = open_index("milvus", uri=lite, collection="items", dim=DIM)
    assert len(index) == 0
    index.close()


# The local index only: the approximate path, its switches, and its file.


@pytest.fixture
def local_opener(tmp_path: Path) -> Callable[..., VectorIndex]:
    def open_(**opts: object) -> VectorIndex:
        return open_index("local", path=tmp_path / "index", collection="items", dim=DIM, **opts)

    return open_


def test_approximate_index_finds_stored_vectors(local_opener: Callable[..., VectorIndex]) -> None:
    index = local_opener(approx_threshold=1000, ef_search=16)
    ids, vectors = sparse_ids(2000), unit(2000, 20)
    index.add(ids[:900], vectors[:900])
    assert index.kind == "Flat"
    index.add(ids[900:], vectors[900:])
    assert index.kind == "HNSW32"
    _, found = index.search(vectors, 10)
    assert (found[:, 0] == ids).mean() >= 0.99
    assert (index.ids() == ids).all()


def test_removal_and_replacement_under_the_approximate_index(local_opener: Callable[..., VectorIndex]) -> None:
    index = local_opener(approx_threshold=1000)
    ids, vectors = sparse_ids(2000), unit(2000, 21)
    index.add(ids, vectors)
    gone = ids[:150]
    index.remove(gone)
    fresh = unit(10, 22)
    index.add(ids[150:160], fresh)
    assert index.kind == "HNSW32"
    assert index.tombstones == 160
    assert len(index) == 1850
    scores, found = index.search(vectors, 10)
    assert not np.isin(found, gone).any()
    assert (found >= 0).all()  # tombstones are skipped, not returned short
    assert (found[160:, 0] == ids[160:]).mean() >= 0.99
    assert (scores[150:160, 0] < 0.99).all()  # the replaced vectors are gone
    _, found = index.search(fresh, 1)
    assert (found[:, 0] == ids[150:160]).all()


def test_tombstones_are_compacted(local_opener: Callable[..., VectorIndex]) -> None:
    index = local_opener(approx_threshold=1000)
    ids, vectors = sparse_ids(2000), unit(2000, 23)
    index.add(ids, vectors)
    index.remove(ids[:400])
    assert index.tombstones == 400  # 20%: not yet
    index.add(ids[400:401], vectors[400:401])
    assert index.tombstones == 0
    assert index.kind == "HNSW32"
    assert len(index) == 1600
    _, found = index.search(vectors[400:], 1)
    assert (found[:, 0] == ids[400:]).mean() >= 0.99
    assert (index.ids() == ids[400:]).all()


def test_shrinking_returns_to_exact_search(local_opener: Callable[..., VectorIndex]) -> None:
    index = local_opener(approx_threshold=1000)
    ids, vectors = sparse_ids(2000), unit(2000, 24)
    index.add(ids, vectors)
    index.remove(ids[:1600])
    assert index.kind == "Flat"
    assert index.tombstones == 0
    _, found = index.search(vectors[1600:], 1)
    assert (found[:, 0] == ids[1600:]).all()
    assert (index.ids() == ids[1600:]).all()


def test_exact_index_skips_tombstones_in_batches(local_opener: Callable[..., VectorIndex]) -> None:
    index = local_opener()
    ids, vectors = sparse_ids(100), unit(100, 25)
    index.add(ids, vectors)
    index.remove(ids[:10])
    assert index.tombstones == 10
    _, found = index.search(vectors, 90)  # a batch above the single-thread cut-off
    assert not np.isin(found, ids[:10]).any()
    assert (found[10:, 0] == ids[10:]).all()


def test_save_is_one_file_and_skips_when_unchanged(tmp_path: Path, local_opener: Callable[..., VectorIndex]) -> None:
    index = local_opener()
    index.add(sparse_ids(10), unit(10, 26))
    index.save()
    written = tmp_path / "index" / "items.faiss"
    assert sorted(p.name for p in written.parent.iterdir()) == ["items.faiss"]
    stamp = written.stat().st_mtime_ns
    index.save()
    assert written.stat().st_mtime_ns == stamp
    index.close()
    with pytest.raises(ValueError, match="closed"):
        index.search(unit(1, 27), 1)


def test_exact_search_limit_scales_with_dimension(tmp_path: Path) -> None:
    def threshold(dim: int) -> int:
        return open_index("local", path=tmp_path, collection="items", dim=dim).approx_threshold

    assert threshold(256) == 100_000
    assert threshold(1280) == 20_000


def test_factory_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="unknown index backend"):
        open_index("annoy", path=tmp_path, collection="items", dim=DIM)
    with pytest.raises(ConfigError, match="directory"):
        open_index("local", collection="items", dim=DIM)
    with pytest.raises(ConfigError, match="URI"):
        open_index("milvus", collection="items", dim=DIM)
    with pytest.raises(ConfigError, match="collection name"):
        open_index("local", path=tmp_path, collection="../items", dim=DIM)
    monkeypatch.setitem(sys.modules, "pymilvus", None)
    with pytest.raises(IndexUnavailable, match="pip install pymilvus"):
        open_index("milvus", uri=str(tmp_path / "m.db"), collection="items", dim=DIM)
