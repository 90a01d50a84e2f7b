"""The blob store is content-addressed and never leaves half files under real names."""

import hashlib
from pathlib import Path

import pytest

from ogasearch.blobs import BlobStore
from ogasearch.errors import TooLarge


def test_put_is_content_addressed_and_deduplicated(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    sha = store.put(b"hello")
    assert sha == hashlib.sha256(b"hello").hexdigest()
    assert store.path(sha) == tmp_path / "blobs" / sha[:2] / sha[2:4] / sha
    assert store.read(sha) == b"hello"
    assert store.put(b"hello") == sha
    assert sum(1 for p in (tmp_path / "blobs").rglob("*") if p.is_file()) == 1


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    with pytest.raises(TooLarge), store.writer(max_bytes=4) as w:
        w.write(b"abc")
        w.write(b"def")
    assert not any(p.is_file() for p in (tmp_path / "blobs").rglob("*"))


def test_streamed_write(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    with store.writer() as w:
        for _ in range(10):
            w.write(b"x" * 1000)
    assert w.size == 10_000
    assert store.read(w.sha256) == b"x" * 10_000


def test_clean_tmp_removes_leftovers(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    (store.tmp / "part-abc").write_bytes(b"half")
    assert store.clean_tmp() == 1
    assert not list(store.tmp.iterdir())
