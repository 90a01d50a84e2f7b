"""The embed stage: a vector per item and model, stored in the catalog.

Items are read in image order so each image is decoded once for all its tiles;
every batch is committed with its vectors, so the stage resumes where it stopped.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator

import numpy as np

from ogasearch.blobs import BlobStore
from ogasearch.catalog import Catalog
from ogasearch.embed.base import Embedder
from ogasearch.ingest.canonical import canonicalize
from ogasearch.ingest.images import ImageError, decode_image
from ogasearch.progress import Progress

log = logging.getLogger(__name__)


def item_pixels(store: BlobStore, rows: list[sqlite3.Row]) -> Iterator[tuple[int, np.ndarray | str]]:
    """(item id, canonical RGBA pixels) for each row, or (item id, error message)."""
    cache_key: tuple[str, int] | None = None
    frames: dict[int, np.ndarray] = {}
    error = ""
    for row in rows:
        key = (row["blob_sha256"], row["image_id"])
        if key != cache_key:
            cache_key, frames = key, {}
            try:
                decoded = decode_image(store.read(row["blob_sha256"]), name=row["archive_path"] or row["file_name"])
                frames = {f.index: f.pixels for f in decoded.frames}
            except (ImageError, OSError) as exc:
                frames = {}
                error = str(exc)
        pixels = frames.get(row["frame"])
        if pixels is None:
            yield row["id"], error if not frames else f"frame {row['frame']} not found"
            continue
        if row["x0"] is not None:
            pixels = pixels[row["y0"] : row["y1"], row["x0"] : row["x1"]]
        yield row["id"], canonicalize(pixels).pixels


def embed_items(catalog: Catalog, store: BlobStore, embedder: Embedder, batch: int = 256) -> tuple[int, int]:
    """Embed every item that has no vector for this embedder; returns (embedded, errors)."""
    done = failed = 0
    total = catalog.count_items_to_embed(embedder.name)
    with Progress(f"embed [{embedder.name}]", total=total, unit="items") as progress:
        while True:
            rows = catalog.items_to_embed(embedder.name, batch)
            if not rows:
                break
            ids, images, errors = [], [], []
            for item_id, pixels in item_pixels(store, rows):
                if isinstance(pixels, str):
                    errors.append((item_id, pixels))
                else:
                    ids.append(item_id)
                    images.append(pixels)
            vectors = embedder.embed(images) if images else np.zeros((0, embedder.dim), np.float32)
            catalog.store_embeddings(
                embedder.name,
                [(i, v.astype(np.float32).tobytes()) for i, v in zip(ids, vectors, strict=True)],
                errors,
            )
            done += len(ids)
            failed += len(errors)
            progress.update(len(rows))
    if failed:
        log.warning("%d items could not be embedded with %s", failed, embedder.name)
    return done, failed
