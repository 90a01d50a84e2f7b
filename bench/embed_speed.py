"""Embedding throughput per embedder: batched inference against the original system's loop, in one run.

The original system called its VGG16 once per image, on a plain 224 resize with alpha dropped. Each available
embedder is timed on the same corpus sprites (decoded and canonicalised beforehand, so only embedding counts)
in batches of 64, and one image per call; the seed-style loop (VGG16, or EfficientNet-Lite0 standing in when
VGG16 cannot run, seed preprocessing, one image per call) is the baseline. Slow rows stop after --budget seconds
and report the images they reached. VGG16 without its weights file runs on random weights: same speed.

    python bench/embed_speed.py [--corpus ../shared/corpus] [--count 500] [--budget 60] [--models pixel effnet]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from _machine import cpu_model

from ogasearch.embed.base import Embedder, EmbedderUnavailable, get_embedder, names
from ogasearch.ingest.canonical import canonicalize
from ogasearch.ingest.images import decode_image

REPO = Path(__file__).resolve().parents[1]
BATCH = 64


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def sample(corpus: Path, count: int) -> list[np.ndarray]:
    """Canonical pixels of `count` sprites between 24 and 128 px a side, spread evenly over labels.csv."""
    with (corpus / "labels.csv").open(newline="") as handle:
        rows = [
            row
            for row in csv.DictReader(handle)
            if row["kind"] == "sprite" and 24 <= int(row["width"]) <= 128 and 24 <= int(row["height"]) <= 128
        ]
    rows = rows[:: max(1, len(rows) // count)][:count]
    return [
        canonicalize(decode_image((corpus / row["path"]).read_bytes(), name=row["path"]).frames[0].pixels).pixels
        for row in rows
    ]


def build(name: str, **options: object) -> tuple[Embedder, str]:
    """The embedder and a note; VGG16 falls back to random weights (for timing only) when its file is missing."""
    try:
        return get_embedder(name, **options), ""
    except EmbedderUnavailable:
        if name != "vgg16":
            raise
        return get_embedder(name, random_init=True, **options), "random weights (speed only)"


def timed(embedder: Embedder, images: Sequence[np.ndarray], per_call: int, budget: float) -> tuple[int, float]:
    """(images embedded, seconds) calling embed with `per_call` images at a time until done or over budget."""
    embedder.embed(images[:per_call])  # warm-up: first-call allocations and lazy initialisation
    done, start = 0, time.perf_counter()
    while done < len(images) and time.perf_counter() - start < budget:
        embedder.embed(images[done : done + per_call])
        done += len(images[done : done + per_call])
    return done, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--count", type=int, default=500, help="sprites to embed")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds at most per row")
    parser.add_argument("--models", nargs="+", default=None, help="embedders to time (default: all registered)")
    args = parser.parse_args()
    if not (args.corpus / "labels.csv").is_file():
        sys.exit(f"corpus not found at {args.corpus}")
    images = sample(args.corpus, args.count)
    sizes = np.array([image.shape[:2] for image in images])
    print(f"command: python bench/{Path(__file__).name} {' '.join(sys.argv[1:])}".rstrip())
    print(f"machine: {cores()} cores (nproc), {cpu_model()}, Python {platform.python_version()}")
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(
        f"input: {len(images)} corpus sprites, canonical size median {int(np.median(sizes[:, 1]))}x"
        f"{int(np.median(sizes[:, 0]))}, largest {int(sizes[:, 1].max())}x{int(sizes[:, 0].max())}\n"
    )

    # (label, embedder name, options, images per call); the seed-style loop comes first as the baseline.
    plan: list[tuple[str, str, dict[str, object], int]] = []
    models = args.models or names()
    seed_network = "vgg16" if "vgg16" in models else "effnet"
    seed_options: dict[str, object] = (
        {"batch_size": 1} if seed_network == "vgg16" else {"prep": "seed", "batch_size": 1}
    )
    plan.append((f"seed-style loop ({seed_network}, seed input)", seed_network, seed_options, 1))
    for name in models:
        options: dict[str, object] = {} if name == "pixel" else {"batch_size": BATCH}
        plan.append((f"{name}, batch {BATCH}", name, options, BATCH))
        plan.append((f"{name}, 1 per call", name, {} if name == "pixel" else {"batch_size": 1}, 1))

    print("| run | dim | images | seconds | images/s | x seed loop | load s | note |")
    print("|---|---|---|---|---|---|---|---|")
    baseline: float | None = None
    for row, (label, name, options, per_call) in enumerate(plan):
        start = time.perf_counter()
        try:
            embedder, note = build(name, **options)
        except EmbedderUnavailable as exc:
            print(f"| {label} | | | | | | | unavailable: {exc} |", flush=True)
            continue
        load = time.perf_counter() - start
        done, seconds = timed(embedder, images, per_call, args.budget)
        rate = done / seconds
        if row == 0:
            baseline = rate
        ratio = f"{rate / baseline:.1f}" if baseline else "n/a"
        print(
            f"| {label} | {embedder.dim} | {done} | {seconds:.1f} | {rate:.1f} | {ratio} | {load:.1f} | {note} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
