"""Uploaded query images, kept by content hash so a search by upload has a URL that can be shared.

Only the newest `keep` uploads stay: the store is a cache of queries, not an archive.
"""

from __future__ import annotations

import os
import re
import threading

from ogasearch.blobs import BlobStore

_SHA256 = re.compile(r"[0-9a-f]{64}")


class UploadStore:
    def __init__(self, store: BlobStore, keep: int = 5000) -> None:
        self.store = store
        self.keep = keep
        self._puts = 0
        self._lock = threading.Lock()

    def put(self, data: bytes) -> str:
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
            return self.store.read(sha)
        except OSError:
            return None

    def prune(self) -> int:
        """Remove all but the newest `keep` uploads; returns how many were removed."""
        files = []
        for path in self.store.root.glob("??/??/*"):
            try:
                files.append((path.stat().st_mtime, path))
            except OSError:
                continue
        files.sort(reverse=True)
        for _, path in files[self.keep :]:
            path.unlink(missing_ok=True)
        return max(0, len(files) - self.keep)
