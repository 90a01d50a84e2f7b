"""Wiring of the search side: the configured embedder, its vector index, and the steps that make items searchable."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import numpy as np

from ogasearch.blobs import BlobStore
from ogasearch.catalog import Catalog
from ogasearch.config import Config
from ogasearch.embed.base import Embedder, get_embedder
from ogasearch.embed.stage import embed_items
from ogasearch.errors import BadImage, FetchRefused
from ogasearch.index.base import VectorIndex
from ogasearch.index.factory import open_index
from ogasearch.index.sync import sync_index
from ogasearch.ingest.images import ImageError, ImageTooLarge
from ogasearch.query import prepare_query
from ogasearch.safefetch import FetchLimits, fetch_image_bytes
from ogasearch.search import NO_FILTERS, BadQuery, Filters, Result, SearchEngine

log = logging.getLogger(__name__)


@dataclass
class IndexReport:
    model: str
    embedded: int
    embed_errors: int
    added: int
    removed: int
    size: int
    texts: int


def open_model_index(cfg: Config, embedder: Embedder) -> VectorIndex:
    """The configured backend's index for one embedder (one collection per model)."""
    collection = "ogasearch_" + re.sub(r"\W", "_", embedder.name)
    if cfg.index_backend == "milvus":
        uri = cfg.milvus_uri or str(cfg.data_dir / "milvus.db")
        return open_index("milvus", uri=uri, token=cfg.milvus_token, collection=collection, dim=embedder.dim)
    return open_index("local", path=cfg.data_dir / "index", collection=collection, dim=embedder.dim)


def make_searchable(cfg: Config, catalog: Catalog, store: BlobStore, model: str | None = None) -> IndexReport:
    """Embed the items that have no vector yet, bring the index up to date, refresh full-text search."""
    embedder = get_embedder(model or cfg.model)
    embedded, errors = embed_items(catalog, store, embedder, cfg.embed_batch)
    index = open_model_index(cfg, embedder)
    try:
        added, removed = sync_index(catalog, index, embedder.name)
        size = len(index)
    finally:
        index.close()
    texts = catalog.rebuild_text()
    return IndexReport(embedder.name, embedded, errors, added, removed, size, texts)


def open_engine(cfg: Config, catalog: Catalog, store: BlobStore) -> SearchEngine:
    embedder = get_embedder(cfg.model)
    return SearchEngine(catalog, store, embedder, open_model_index(cfg, embedder))


class LiveEngine:
    """The engine of a long-running server, reopened when another process (`add`, `update`) changed what it
    searches: the items (hash tiers, metadata) or the saved index file. A crawl that only adds pages and
    files changes neither, so it causes no reopen. If a reopen fails, the old engine keeps serving.
    """

    def __init__(self, cfg: Config, catalog: Catalog, store: BlobStore, check_every: float = 5.0) -> None:
        self.cfg, self.catalog, self.store, self.check_every = cfg, catalog, store, check_every
        self._lock = threading.Lock()
        self._engine = open_engine(cfg, catalog, store)
        self._stamp = self._current_stamp()
        self._checked = time.monotonic()

    def get(self) -> SearchEngine:
        """The engine to query now (checks for changes at most every `check_every` seconds)."""
        if time.monotonic() - self._checked >= self.check_every:
            with self._lock:
                if time.monotonic() - self._checked >= self.check_every:
                    self._checked = time.monotonic()
                    self._reopen_if_changed()
        return self._engine

    def _reopen_if_changed(self) -> None:
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return
        try:
            engine = open_engine(self.cfg, self.catalog, self.store)
        except Exception:  # a half-written index or an unreachable Milvus must not take the server down
            log.exception("the catalog or index changed but could not be reopened; serving the previous one")
            return
        log.info("the catalog or index changed; reopened")
        self._engine, self._stamp = engine, stamp

    def _current_stamp(self) -> tuple[object, ...]:
        path = getattr(self._engine.index, "path", None)  # a local index file; Milvus is queried live
        try:
            info = os.stat(path) if path else None
        except OSError:
            info = None
        file = (info.st_ino, info.st_size, info.st_mtime_ns) if info else None  # saves replace the file
        return self.catalog.items_stamp(), file


def run_query(
    engine: SearchEngine,
    cfg: Config,
    query: str,
    *,
    similar: bool = False,
    count: int = 20,
    offset: int = 0,
    filters: Filters = NO_FILTERS,
) -> list[Result]:
    """The `imsi` rule: an http(s) URL is an image search, an existing file path too, other words are text."""
    if similar:
        if not query.strip().isdigit():
            raise BadQuery(f"--similar needs an item id, got {query!r}")
        return engine.similar(int(query), count, offset, filters)
    if is_image_url(query):
        return engine.by_pixels(query_views(fetch_query_image(cfg, query.strip()), cfg, query), count, offset, filters)
    path = Path(query)
    if path.is_file():
        return engine.by_pixels(query_views(path.read_bytes(), cfg, path.name), count, offset, filters)
    return engine.by_text(query, count, offset, filters)


def is_image_url(query: str) -> bool:
    return re.match(r"^https?://", query.strip(), re.IGNORECASE) is not None


def escape_url(url: str) -> str:
    """Percent-encode what people paste unencoded into a URL's path, query and fragment (spaces, non-ASCII),
    leaving existing escapes and the host alone, as a browser's address bar does."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket: safefetch says why it is refused
        return url
    if not parts.scheme or not parts.netloc:
        return url
    safe = "!$&'()*+,;=:@/%~"
    path = quote(parts.path, safe=safe)
    query, fragment = (quote(part, safe=safe + "?") for part in (parts.query, parts.fragment))
    return urlunsplit((parts.scheme, parts.netloc, path, query, fragment))


def fetch_query_image(cfg: Config, url: str) -> bytes:
    """The bytes behind an image URL a user gave, fetched within the configured safefetch limits."""
    limits = FetchLimits(
        max_bytes=cfg.fetch_max_bytes,
        timeout=cfg.fetch_timeout,
        allow_hosts=cfg.fetch_allow_list,
        max_pixels=cfg.max_query_pixels,
    )
    try:
        return fetch_image_bytes(escape_url(url.strip()), limits)[0]
    except FetchRefused as exc:
        if isinstance(exc.__cause__, ImageTooLarge):  # over max_query_pixels: 413, as for an upload
            raise FetchRefused(str(exc), 413) from exc
        raise


def query_views(data: bytes, cfg: Config, name: str) -> list[np.ndarray]:
    """Canonical views of a query image; an unusable image is a BadImage saying why."""
    try:
        return prepare_query(data, max_pixels=cfg.max_query_pixels, name=name)
    except ImageTooLarge as exc:
        raise BadImage(f"{name}: {exc}", http_status=413) from exc
    except ImageError as exc:
        raise BadImage(f"{name}: {exc}") from exc
