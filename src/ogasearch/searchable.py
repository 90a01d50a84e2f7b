"""Wiring of the search side: the configured embedder, its vector index, and the steps that make items searchable."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ogasearch.blobs import BlobStore
from ogasearch.catalog import Catalog
from ogasearch.config import Config
from ogasearch.embed.base import Embedder, get_embedder
from ogasearch.embed.stage import embed_items
from ogasearch.index.base import VectorIndex
from ogasearch.index.factory import open_index
from ogasearch.index.sync import sync_index
from ogasearch.ingest.images import ImageError
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
    if re.match(r"^https?://", query.strip(), re.IGNORECASE):
        data, _ = fetch_image_bytes(query.strip(), FetchLimits())
        return engine.by_pixels(_prepare(data, cfg, query), count, offset, filters)
    path = Path(query)
    if path.is_file():
        return engine.by_pixels(_prepare(path.read_bytes(), cfg, path.name), count, offset, filters)
    return engine.by_text(query, count, offset, filters)


def _prepare(data: bytes, cfg: Config, name: str) -> list[np.ndarray]:
    try:
        return prepare_query(data, max_pixels=cfg.max_image_pixels, name=name)
    except ImageError as exc:
        raise BadQuery(f"{name}: {exc}") from exc
