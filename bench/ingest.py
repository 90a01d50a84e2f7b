"""Ingest throughput over the pixel-art corpus: decode + canonicalise + hash + slice.

Runs `add` (register files) then the ingest stage on a fresh data dir, once per
worker count, in the same process run, so the ratio between one worker and all
cores is measured on the same machine state. Prints a Markdown table.

    python bench/ingest.py [--corpus ../shared/corpus] [--workers 1 2] [--limit N]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _machine import cpu_model

from ogasearch.blobs import BlobStore
from ogasearch.catalog import Catalog
from ogasearch.config import load_config
from ogasearch.ingest.stage import add_paths, ingest

REPO = Path(__file__).resolve().parents[1]


def sample(corpus: Path, limit: int | None) -> list[Path]:
    """Corpus image and archive files (sorted; every k-th one when limited)."""
    files = sorted(p for p in corpus.rglob("*") if p.suffix.lower() in {".png", ".gif", ".zip"})
    if limit and limit < len(files):
        step = len(files) / limit
        files = [files[int(k * step)] for k in range(limit)]
    return files


def peak_rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def one_run(files: list[Path], workers: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="ogasearch-bench-"))
    try:
        cfg = load_config({"data_dir": str(tmp), "workers": workers}, env={})
        catalog, store = Catalog(tmp / "catalog.sqlite"), BlobStore(tmp / "blobs")
        t0 = time.perf_counter()
        add_paths(catalog, store, files)
        t1 = time.perf_counter()
        report = ingest(cfg, catalog, store)
        t2 = time.perf_counter()
        catalog.close()
        return {
            "workers": workers,
            "files": report.files,
            "images": report.images,
            "items": report.items,
            "tiles": report.tiles,
            "errors": report.file_errors + report.image_errors,
            "add_s": t1 - t0,
            "ingest_s": t2 - t1,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--limit", type=int, default=None, help="use only N files, spread over the corpus")
    args = parser.parse_args()
    if not args.corpus.is_dir():
        sys.exit(f"corpus not found at {args.corpus}")
    files = sample(args.corpus, args.limit)
    print(f"command: python bench/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}")
    print(f"input: {len(files)} files from {args.corpus}\n")
    print("| workers | files | images | items (tiles) | errors | add s | ingest s | images/s | items/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    results = []
    for workers in args.workers:
        r = one_run(files, workers)
        results.append(r)
        print(
            f"| {workers} | {r['files']} | {r['images']} | {r['items']} ({r['tiles']}) | {r['errors']} | "
            f"{r['add_s']:.1f} | {r['ingest_s']:.1f} | {r['images'] / r['ingest_s']:.0f} | "
            f"{r['items'] / r['ingest_s']:.0f} |",
            flush=True,
        )
    own, children = peak_rss_mb()
    print(f"\npeak RSS: {own:.0f} MB (main process), {children:.0f} MB (largest worker)")
    if len(results) > 1:
        print(
            f"speed-up {results[-1]['workers']} vs {results[0]['workers']} workers: "
            f"{results[0]['ingest_s'] / results[-1]['ingest_s']:.2f}x"
        )


if __name__ == "__main__":
    main()
