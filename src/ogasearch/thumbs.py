"""Thumbnails that keep pixel art crisp: the item at its native scale, cropped from its sheet, scaled by an
integer factor with nearest neighbour (never a blurry resize), encoded as PNG."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

import numpy as np
from PIL import Image

from ogasearch.blobs import BlobStore
from ogasearch.catalog import Catalog
from ogasearch.embed.stage import item_pixels
from ogasearch.search import UnknownItem

THUMB_BOX = 128  # the longest side of a thumbnail, in CSS pixels


def integer_scale(width: int, height: int, box: int) -> tuple[int, int]:
    """(up, down): enlarge by `up` or shrink by `down` so the longest side comes closest to `box` from below."""
    longest = max(width, height, 1)
    if longest <= box:
        return max(1, box // longest), 1
    return 1, -(-longest // box)


def thumbnail(pixels: np.ndarray, box: int = THUMB_BOX) -> np.ndarray:
    """RGBA pixels scaled by an integer factor to fit `box`: repeated pixels up, every n-th pixel down."""
    up, down = integer_scale(pixels.shape[1], pixels.shape[0], box)
    if down > 1:
        return np.ascontiguousarray(pixels[::down, ::down])
    return np.repeat(np.repeat(pixels, up, axis=0), up, axis=1)


def encode_png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(out, format="PNG", optimize=False)
    return out.getvalue()


class Thumbnails:
    """PNG thumbnails by item id, with a small in-memory cache (a results page asks for 20 at once)."""

    def __init__(self, catalog: Catalog, store: BlobStore, cache_size: int = 2048) -> None:
        self.catalog = catalog
        self.store = store
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[int, int], tuple[bytes, str]] = OrderedDict()
        self._lock = threading.Lock()

    def png(self, item_id: int, box: int = THUMB_BOX) -> tuple[bytes, str]:
        """(PNG bytes, ETag); the tag changes only when the item's pixels or the rendering change."""
        key = (item_id, box)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        rows = self.catalog.item_source_rows([item_id])
        if not rows:
            raise UnknownItem(f"no item {item_id}")
        info = self.catalog.item_rows([item_id])[item_id]
        _, pixels = next(item_pixels(self.store, rows))
        if isinstance(pixels, str):
            raise UnknownItem(f"item {item_id} cannot be read: {pixels}")
        entry = (encode_png(thumbnail(pixels, box)), f'"{info["pixel_sha256"][:32]}-{box}"')
        with self._lock:
            self._cache[key] = entry
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return entry
