"""Content-addressed blob store: `blobs/ab/cd/<sha256>`.

Bytes are stored under their hash, never under a URL- or member-derived name,
so there are no encoding bugs and identical files are stored once. Every write
goes to a temporary file that is renamed into place, so a crash never leaves a
half-written blob under a real name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from types import TracebackType

from ogasearch.errors import TooLarge


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def put(self, data: bytes) -> str:
        """Store bytes; return their sha256."""
        with self.writer() as w:
            w.write(data)
        return w.sha256

    def writer(self, max_bytes: int | None = None) -> BlobWriter:
        return BlobWriter(self, max_bytes)

    def clean_tmp(self) -> int:
        """Remove temporary files left by a killed process; return how many."""
        removed = 0
        for p in self.tmp.iterdir():
            p.unlink(missing_ok=True)
            removed += 1
        return removed


class BlobWriter:
    """Streams bytes into a temporary file, hashing as it goes; commits on clean exit."""

    def __init__(self, store: BlobStore, max_bytes: int | None) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.size = 0
        self.sha256 = ""
        self._hash = hashlib.sha256()
        fd, name = tempfile.mkstemp(dir=store.tmp, prefix="part-")
        self._file = os.fdopen(fd, "wb")
        self._tmp = Path(name)

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise TooLarge(f"larger than the limit of {self.max_bytes} bytes")
        self._hash.update(chunk)
        self._file.write(chunk)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.close()
        if exc_type is not None:
            self._tmp.unlink(missing_ok=True)
            return
        self.sha256 = self._hash.hexdigest()
        final = self.store.path(self.sha256)
        if final.is_file():
            self._tmp.unlink()
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        with open(self._tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self._tmp, final)
