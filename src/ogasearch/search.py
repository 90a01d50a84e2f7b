"""The query engine: an image, an item id or words in; ranked, collapsed, filtered results out.

Ranking tiers: the exact sprite (same canonical pixels, whatever the file, format
or upload scale), then near duplicates (perceptual hash, ordered by vector
similarity), then vector similarity.
A query is also tried mirrored, since sprites are often drawn facing either way.
Results that show the same sprite are collapsed into one, listing the other
files that hold it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ogasearch.blobs import BlobStore
from ogasearch.catalog import Catalog
from ogasearch.embed.base import Embedder
from ogasearch.errors import OgasearchError
from ogasearch.index.base import VectorIndex
from ogasearch.ingest.hashing import hamming, perceptual_hash, pixel_sha256

MAX_COUNT = 100
MAX_OFFSET = 10_000  # deeper pages cost a scan of the whole index, and no one pages that far
NEAR_BITS = 6  # perceptual-hash distance that still counts as the same picture
COLLAPSE_BITS = 2  # results this close are shown as one
TIER_EXACT, TIER_NEAR, TIER_SIMILAR = 2, 1, 0
_WORD = re.compile(r"\w+", re.UNICODE)


class BadQuery(OgasearchError):
    """The query or its parameters are unusable; the message says why."""

    exit_code = 2
    http_status = 422


class UnknownItem(OgasearchError):
    """No item has that id."""

    exit_code = 1
    http_status = 404


@dataclass(frozen=True)
class Filters:
    license: str | None = None  # licence name contains this (case-insensitive), e.g. "CC0"
    art_type: str | None = None  # e.g. "2D Art"
    kind: str = "all"  # all | whole | tiles


NO_FILTERS = Filters()


@dataclass
class Result:
    item_id: int
    score: float
    match: str  # exact | near | similar | text
    page_url: str | None
    file_url: str
    title: str | None
    author: str | None
    licenses: list[str]
    attribution: str | None
    archive_path: str
    bbox: list[int] | None
    width: int
    height: int
    thumb_url: str
    also_in: list[str] = field(default_factory=list)  # other files holding the same sprite


def check_query(count: int, offset: int, filters: Filters) -> None:
    if not 1 <= count <= MAX_COUNT:
        raise BadQuery(f"count must be between 1 and {MAX_COUNT}, got {count}")
    if not 0 <= offset <= MAX_OFFSET:
        raise BadQuery(f"offset must be between 0 and {MAX_OFFSET}, got {offset}")
    if filters.kind not in ("all", "whole", "tiles"):
        raise BadQuery(f"kind must be all, whole or tiles, got {filters.kind!r}")


class SearchEngine:
    def __init__(
        self, catalog: Catalog, store: BlobStore, embedder: Embedder, index: VectorIndex, use_hashes: bool = True
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.embedder = embedder
        self.index = index
        self.use_hashes = use_hashes  # False: vectors alone (to measure an embedder on its own)
        self._ids: np.ndarray | None = None
        self._phash: np.ndarray | None = None

    # -- queries ----------------------------------------------------------------

    def by_pixels(
        self,
        queries: Sequence[np.ndarray],
        count: int = 20,
        offset: int = 0,
        filters: Filters = NO_FILTERS,
        exclude: int = -1,
    ) -> list[Result]:
        """Search with canonical RGBA pixels, one or more views of one query (see `query.prepare_query`)."""
        check_query(count, offset, filters)
        views = [v for q in queries for v in (q, np.ascontiguousarray(q[:, ::-1]))]
        ranked: dict[int, tuple[int, float, str]] = {}

        def offer(item_id: int, tier: int, score: float, match: str) -> None:
            if item_id != exclude and (item_id not in ranked or ranked[item_id][:2] < (tier, score)):
                ranked[item_id] = (tier, score, match)

        vectors = self.embedder.embed(views)
        if self.use_hashes:
            for item_id in self.catalog.items_with_hash([pixel_sha256(v) for v in views]):
                offer(item_id, TIER_EXACT, 1.0, "exact")
            for item_id, score in self._near_scores(views, vectors).items():
                offer(item_id, TIER_NEAR, score, "near")
        want = min(len(self.index), (offset + count) * 8 + 64)
        if want:
            scores, found = self.index.search(vectors, want)
            for row_scores, row_ids in zip(scores, found, strict=True):
                for score, item_id in zip(row_scores, row_ids, strict=True):
                    if item_id >= 0:
                        offer(int(item_id), TIER_SIMILAR, float(score), "similar")
        order = sorted(ranked, key=lambda i: (ranked[i][0], ranked[i][1]), reverse=True)
        return self._page(order, {i: ranked[i][1:] for i in order}, count, offset, filters)

    def similar(self, item_id: int, count: int = 20, offset: int = 0, filters: Filters = NO_FILTERS) -> list[Result]:
        """More like this: the item's own pixels as the query, the item itself left out."""
        from ogasearch.embed.stage import item_pixels

        rows = self.catalog.item_source_rows([item_id])
        if not rows:
            raise UnknownItem(f"no item {item_id}")
        _, pixels = next(item_pixels(self.store, rows))
        if isinstance(pixels, str):
            raise BadQuery(f"item {item_id} cannot be read: {pixels}")
        return self.by_pixels([pixels], count, offset, filters, exclude=item_id)

    def by_text(self, text: str, count: int = 20, offset: int = 0, filters: Filters = NO_FILTERS) -> list[Result]:
        """Words in title, tags, author, description, file and archive names (BM25)."""
        check_query(count, offset, filters)
        words = _WORD.findall(text)
        if not words:
            raise BadQuery("the query has no words to search for")
        limit = (offset + count) * 8 + 64
        hits = self.catalog.text_search(" ".join(f'"{w}"' for w in words), limit)
        if not hits and len(words) > 1:
            hits = self.catalog.text_search(" OR ".join(f'"{w}"' for w in words), limit)
        order = [item_id for item_id, _ in hits]
        scores = {item_id: (max(0.0, -rank) / (1.0 + max(0.0, -rank)), "text") for item_id, rank in hits}
        return self._page(order, scores, count, offset, filters)

    # -- helpers ----------------------------------------------------------------

    def _near_scores(self, views: list[np.ndarray], vectors: np.ndarray) -> dict[int, float]:
        """Near duplicates of any view (perceptual hash), scored by their vector similarity to the query.

        A 64-bit hash cannot tell a sprite from its recolours or from a tile of similar layout; the vectors can.
        An item without a stored vector keeps its hash similarity.
        """
        ids, hashes = self._hash_arrays()
        bits: dict[int, int] = {}
        for view in views:
            distance = np.bitwise_count(hashes ^ np.uint64(perceptual_hash(view)))
            for pos in np.flatnonzero(distance <= NEAR_BITS):
                item_id = int(ids[pos])
                bits[item_id] = min(bits.get(item_id, NEAR_BITS), int(distance[pos]))
        scores = {item_id: 1.0 - distance / 64 for item_id, distance in bits.items()}
        for item_id, blob in self.catalog.vectors(self.embedder.name, list(bits)):
            scores[item_id] = float((vectors @ np.frombuffer(blob, np.float32)).max())
        return scores

    def _hash_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._ids is None or self._phash is None:
            ids, phashes, _ = self.catalog.hash_table()
            self._ids = np.array(ids, dtype=np.int64)
            self._phash = np.array(phashes, dtype=np.int64).view(np.uint64)
        return self._ids, self._phash

    def _page(
        self, order: list[int], scores: dict[int, tuple[float, str]], count: int, offset: int, filters: Filters
    ) -> list[Result]:
        """Filter, collapse duplicates, and cut the requested page."""
        rows = self.catalog.item_rows(order)
        kept: list[Result] = []
        kept_keys: list[tuple[str, int]] = []
        for item_id in order:
            row = rows.get(item_id)
            if row is None or not _passes(row, filters):
                continue
            twin = _twin(row, kept_keys)
            if twin is not None:
                if row["file_url"] not in (kept[twin].file_url, *kept[twin].also_in):
                    kept[twin].also_in.append(row["file_url"])
                continue
            score, match = scores[item_id]
            kept.append(_result(row, score, match))
            kept_keys.append((row["pixel_sha256"], row["phash"]))
            if len(kept) >= offset + count and len(kept) > offset + count + 8:
                break
        return kept[offset : offset + count]


def _twin(row: dict[str, Any], kept: list[tuple[str, int]]) -> int | None:
    """Index of an already kept result showing the same sprite."""
    for pos, (sha, phash) in enumerate(kept):
        if sha == row["pixel_sha256"] or hamming(phash, row["phash"]) <= COLLAPSE_BITS:
            return pos
    return None


def _passes(row: dict[str, Any], filters: Filters) -> bool:
    if filters.kind == "whole" and row["x0"] is not None:
        return False
    if filters.kind == "tiles" and row["x0"] is None:
        return False
    if filters.license and not any(filters.license.lower() in lic["name"].lower() for lic in row["licenses"]):
        return False
    return not (filters.art_type and (row["art_type"] or "").lower() != filters.art_type.lower())


def _result(row: dict[str, Any], score: float, match: str) -> Result:
    bbox = None if row["x0"] is None else [row["x0"], row["y0"], row["x1"], row["y1"]]
    return Result(
        item_id=row["item_id"],
        score=round(score, 4),
        match=match,
        page_url=row["page_url"],
        file_url=row["file_url"],
        title=row["title"],
        author=row["author"],
        licenses=[lic["name"] for lic in row["licenses"]],
        attribution=row["attribution"],
        archive_path=row["archive_path"],
        bbox=bbox,
        width=row["width"] if bbox is None else bbox[2] - bbox[0],
        height=row["height"] if bbox is None else bbox[3] - bbox[1],
        thumb_url=f"/thumb/{row['item_id']}.png",
    )
