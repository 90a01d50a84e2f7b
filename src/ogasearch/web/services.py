"""What one server process holds: the catalog, the live engine, thumbnails and uploads, and the query kinds
the page and the API share (words, image URL, upload, item id)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from fastapi import UploadFile

from ogasearch.blobs import BlobStore
from ogasearch.catalog import Catalog
from ogasearch.config import Config
from ogasearch.credits import credit_line
from ogasearch.errors import OgasearchError, UploadTooLarge
from ogasearch.search import Filters, Result
from ogasearch.searchable import LiveEngine, fetch_query_image, is_image_url, query_views
from ogasearch.thumbs import Thumbnails
from ogasearch.uploads import UploadStore

STATS_TTL = 30.0  # seconds counts and licence names are reused


class UnknownUpload(OgasearchError):
    """An upload id that was never stored or has been pruned."""

    http_status = 404


class Services:
    """Opened once per server process and shared by its request threads."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.catalog = Catalog(cfg.catalog_path, threads=True)
        self.store = BlobStore(cfg.blob_dir)
        self.live = LiveEngine(cfg, self.catalog, self.store)
        self.thumbs = Thumbnails(self.catalog, self.store)
        self.uploads = UploadStore(BlobStore(cfg.data_dir / "queries"), cfg.upload_store_bytes)
        self._cache: dict[str, tuple[float, Any]] = {}
        # Searches are CPU-bound and mostly hold the GIL: more of them at once than there are cores only adds
        # thrashing and memory, so the rest wait their turn.
        self._slots = threading.BoundedSemaphore(cfg.search_threads or os.cpu_count() or 1)

    def close(self) -> None:
        self.catalog.close()

    def words_or_url(self, q: str, count: int, offset: int, filters: Filters) -> tuple[list[Result], str | None]:
        """The `imsi` rule: an http(s) URL is an image search, anything else is words. Returns the results
        and, for an image, the upload id its bytes were kept under (so the page can show the query)."""
        if is_image_url(q):
            return self.url(q.strip(), count, offset, filters)
        with self._slots:
            return self.live.get().by_text(q, count, offset, filters), None

    def url(self, url: str, count: int, offset: int, filters: Filters) -> tuple[list[Result], str]:
        data = fetch_query_image(self.cfg, url)
        return self.image(data, url, count, offset, filters)

    def image(self, data: bytes, name: str, count: int, offset: int, filters: Filters) -> tuple[list[Result], str]:
        with self._slots:
            views = query_views(data, self.cfg, name)
            results = self.live.get().by_pixels(views, count, offset, filters)
        return results, self.uploads.put(data)

    def upload(self, upload_id: str, count: int, offset: int, filters: Filters) -> list[Result]:
        data = self.uploads.get(upload_id)
        if data is None:
            raise UnknownUpload(f"no upload {upload_id!r}; it may have expired, upload the image again")
        with self._slots:
            return self.live.get().by_pixels(query_views(data, self.cfg, "upload"), count, offset, filters)

    def similar(self, item_id: int, count: int, offset: int, filters: Filters) -> list[Result]:
        with self._slots:
            return self.live.get().similar(item_id, count, offset, filters)

    def license_names(self) -> list[str]:
        """The licence filter's choices (cached: every page view shows them)."""
        return self._cached("licences", self.catalog.license_names)

    def summary(self) -> dict[str, Any]:
        """Counts for the about page and /api/stats (cached: they scan whole tables)."""
        return self._cached("summary", self.catalog.summary)

    def _cached(self, key: str, compute: Callable[[], Any]) -> Any:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is None or now - hit[0] > STATS_TTL:
            hit = self._cache[key] = (now, compute())
        return hit[1]


def read_upload(file: UploadFile, limit: int) -> bytes:
    """An uploaded file's bytes, refused past `limit` (the body limit lets multipart overhead through)."""
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise UploadTooLarge(f"the upload is larger than the limit of {limit} bytes")
    return data


def result_json(result: Result) -> dict[str, Any]:
    """A result as the API returns it: every field, plus the credits line to paste."""
    return {**asdict(result), "credit": credit(result)}


def credit(result: Result) -> str:
    """The credits line for a result (see `credits.credit_line`)."""
    return credit_line(
        result.title, result.author, result.licenses, result.page_url, result.attribution, result.file_url
    )
