"""End-to-end image query latency: a 64x64 sprite in, ranked results with metadata out.

Opens an existing data dir (e.g. the one `bench/quality.py` built over the corpus)
and times `prepare_query` + `SearchEngine.by_pixels(count=20)` per query, one at a
time, after a warm-up; text queries are timed the same way.

    python bench/query_speed.py --data-dir /tmp/ogasearch-quality-18564 [--model pixel] [--queries 200]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np
from _machine import cpu_model
from PIL import Image

from ogasearch.blobs import BlobStore
from ogasearch.catalog import Catalog
from ogasearch.config import load_config
from ogasearch.ingest.images import decode_image
from ogasearch.query import prepare_query
from ogasearch.searchable import open_engine

WORDS = ("knight", "slime", "sword", "tree", "wall", "potion", "dragon", "floor", "hair", "door")


def sprite_queries(catalog: Catalog, store: BlobStore, n: int, seed: int) -> list[bytes]:
    """n stored whole images, brought to 64x64 (nearest up or down), as PNG bytes."""
    rows = catalog.first_frames()
    random.Random(seed).shuffle(rows)
    out = []
    for row in rows:
        pixels = decode_image(store.read(row[1]), name=row[2] or row[3]).frames[0].pixels
        if max(pixels.shape[:2]) > 256:
            continue
        buf = io.BytesIO()
        Image.fromarray(pixels, "RGBA").resize((64, 64), Image.NEAREST).save(buf, "PNG")
        out.append(buf.getvalue())
        if len(out) == n:
            break
    return out


def percentiles(times: list[float]) -> str:
    ms = np.array(times) * 1000
    return f"{np.percentile(ms, 50):.1f} | {np.percentile(ms, 99):.1f} | {ms.mean():.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--model", default="pixel")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (args.data_dir / "catalog.sqlite").is_file():
        sys.exit(f"no catalog in {args.data_dir}: run bench/quality.py first")
    cfg = load_config({"data_dir": str(args.data_dir), "model": args.model}, env={})
    catalog, store = Catalog(args.data_dir / "catalog.sqlite"), BlobStore(args.data_dir / "blobs")
    engine = open_engine(cfg, catalog, store)
    queries = sprite_queries(catalog, store, args.queries, args.seed)
    for data in queries[:5]:  # warm-up: hash table, index pages, embedder
        engine.by_pixels(prepare_query(data, max_pixels=cfg.max_image_pixels))
    image_times = []
    for data in queries:
        t = time.perf_counter()
        results = engine.by_pixels(prepare_query(data, max_pixels=cfg.max_image_pixels), count=20)
        image_times.append(time.perf_counter() - t)
        assert results
    text_times = []
    for k in range(args.queries):
        t = time.perf_counter()
        engine.by_text(WORDS[k % len(WORDS)], count=20)
        text_times.append(time.perf_counter() - t)
    print(f"command: python bench/query_speed.py {' '.join(sys.argv[1:])}")
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}")
    print(f"index: {len(engine.index)} vectors ({args.model}), {len(catalog.hash_table()[0])} items\n")
    print("| query | n | p50 ms | p99 ms | mean ms |")
    print("|---|---|---|---|---|")
    print(f"| 64x64 sprite image, count=20 | {len(image_times)} | {percentiles(image_times)} |")
    print(f"| text, count=20 | {len(text_times)} | {percentiles(text_times)} |")
    catalog.close()


if __name__ == "__main__":
    main()
