"""Uploaded query images, kept by content hash so a search by upload has a URL that can be shared.

Only the most recently used uploads stay, at most `keep` of them and `max_bytes` in all: the store is a cache
of queries, not an archive.
"""

from __future__ import annotations

import os
import re
import threading

from ogasearch.blobs import BlobStore

_SHA256 = re.compile(r"[0-9a-f]{64}")


class UploadStore:
    def __init__(self, store: BlobStore, max_bytes: int = 1024**3, keep: int = 5000) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.keep = keep
        self._puts = 0
        self._lock = threading.Lock()

    def put(self, data: bytes) -> str:
        """Keep an upload; returns its id (the sha256 of its bytes)."""
        sha = self.store.put(data)
        try:
            os.utime(self.store.path(sha))  # the same image uploaded again counts as new
        except FileNotFoundError:  # pruned by another thread in between (touch() would leave an empty file)
            self.store.put(data)
        with self._lock:
            self._puts += 1
            prune = self._puts % 100 == 0
        if prune:
            self.prune()
        return sha

    def get(self, sha: str) -> bytes | None:
        """The upload's bytes; None for an unknown, pruned or malformed id."""
        if not _SHA256.fullmatch(sha) or not self.store.exists(sha):
            return None
        try:
            data = self.store.read(sha)
            os.utime(self.store.path(sha))  # a shared link that is still used stays
        except OSError:
            return None
        return data

    def prune(self) -> int:
        """Remove the least recently used uploads past `keep` files or `max_bytes`; returns how many."""
        files = []
        for path in self.store.root.glob("??/??/*"):
            try:
                stat = path.stat()
            except OSError:
                continue
            files.append((stat.st_mtime, stat.st_size, path))
        files.sort(key=lambda f: f[0], reverse=True)
        total = removed = 0
        for rank, (_, size, path) in enumerate(files):
            total += size
            if rank >= self.keep or total > self.max_bytes:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
