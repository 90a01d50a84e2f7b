"""Search quality on the pixel-art corpus, against the original system's method, in one run.

The corpus (or a fixed sample of it, always including the query sources) is indexed
with `add` (tiles included). Queries are a fixed-seed sample of sprites across all
packs, each transformed (nearest3, flip, bg, jpeg, hue), plus tiles cut from real
grid sheets (target: the sheet). A query is correct at k when a top-k result comes
from the source file. Same-item precision@10 uses the `group` labels. The median
time per query (decode and preparation included) is listed per kind.

Rows: each embedder alone (vectors only), the default configuration (the full
engine: exact and near-duplicate hashes, mirrored query, vectors), and the seed
method: ImageNet CNN features on a plain bilinear 224 resize with alpha dropped,
cosine, whole images only (EfficientNet-Lite0 stands in for VGG16, whose weights
cannot be downloaded here).

    python bench/quality.py [--corpus ../shared/corpus] [--queries 600] [--files N] [--embedders pixel effnet]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import numpy as np
from _machine import cpu_model
from PIL import Image

from ogasearch.blobs import BlobStore
from ogasearch.catalog import Catalog
from ogasearch.config import load_config
from ogasearch.embed.base import get_embedder
from ogasearch.ingest.images import decode_image
from ogasearch.ingest.stage import add_paths, ingest
from ogasearch.query import prepare_query
from ogasearch.search import SearchEngine
from ogasearch.searchable import make_searchable, open_model_index

REPO = Path(__file__).resolve().parents[1]
TRANSFORMS = ("nearest3", "flip", "bg", "jpeg", "hue")
K = 10


@dataclass
class Query:
    kind: str  # a transform name or 'tile'
    image: bytes  # encoded query
    target: str  # file:// URL of the source file
    group: str | None  # same-item label, for precision@10 (untransformed sprites only)


def encode(rgba: np.ndarray, fmt: str = "PNG", **options: object) -> bytes:
    buf = io.BytesIO()
    image = Image.fromarray(rgba, "RGBA")
    (image.convert("RGB") if fmt == "JPEG" else image).save(buf, fmt, **options)
    return buf.getvalue()


def composite(rgba: np.ndarray, colour: np.ndarray) -> np.ndarray:
    alpha = rgba[..., 3:] / 255.0
    out = np.empty_like(rgba)
    out[..., :3] = np.round(rgba[..., :3] * alpha + colour * (1 - alpha)).astype(np.uint8)
    out[..., 3] = 255
    return out


def hue_rotate(rgba: np.ndarray, degrees: float) -> np.ndarray:
    hsv = np.asarray(Image.fromarray(np.ascontiguousarray(rgba[..., :3]), "RGB").convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + round(degrees / 360 * 256)) % 256
    result = rgba.copy()
    result[..., :3] = np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))
    return result


def transform(name: str, rgba: np.ndarray, rng: random.Random) -> bytes:
    if name == "nearest3":
        return encode(np.repeat(np.repeat(rgba, 3, 0), 3, 1))
    if name == "flip":
        return encode(np.ascontiguousarray(rgba[:, ::-1]))
    if name == "bg":
        return encode(composite(rgba, np.array([rng.randrange(256) for _ in range(3)])))
    if name == "jpeg":
        h, w = rgba.shape[:2]
        big = Image.fromarray(composite(rgba, np.array([255, 255, 255])), "RGBA").resize((w * 2, h * 2), Image.BILINEAR)
        return encode(np.asarray(big), "JPEG", quality=70)
    if name == "hue":
        return encode(hue_rotate(rgba, rng.uniform(90, 180)))
    raise ValueError(name)


def read_labels(corpus: Path) -> list[dict[str, str]]:
    with (corpus / "labels.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def pick_queries(corpus: Path, labels: list[dict[str, str]], n: int, n_tiles: int, seed: int) -> list[Query]:
    rng = random.Random(seed)
    by_source: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in labels:
        if row["kind"] == "sprite" and int(row["width"]) >= 8 and int(row["height"]) >= 8:
            by_source[row["source"]].append(row)
    sources = sorted(by_source)
    group_sizes = defaultdict(int)
    for row in labels:
        group_sizes[row["group"]] += 1
    queries: list[Query] = []
    chosen = 0
    while chosen < n:
        row = rng.choice(by_source[sources[chosen % len(sources)]])
        path = corpus / row["path"]
        rgba = decode_image(path.read_bytes(), name=path.name).frames[0].pixels
        if rgba[..., 3].max() == 0 or len(np.unique(rgba.reshape(-1, 4), axis=0)) < 3:
            continue  # blank sprites are not fair queries
        chosen += 1
        target = path.resolve().as_uri()
        group = row["group"] if group_sizes[row["group"]] > 1 else None
        for name in TRANSFORMS:
            queries.append(Query(name, transform(name, rgba, rng), target, group if name == "nearest3" else None))
    sheets = [
        r
        for r in labels
        if r["kind"] in ("sheet_grid16", "sheet") and r["source"] in ("dawnlike_atlas", "lpc_universal_spritesheet")
    ]
    grid_size = {"dawnlike_atlas": 16, "lpc_universal_spritesheet": 64}
    tiles = 0
    while tiles < n_tiles:
        row = rng.choice(sheets)
        path = corpus / row["path"]
        rgba = decode_image(path.read_bytes(), name=path.name).frames[0].pixels
        size = grid_size[row["source"]]
        if rgba.shape[0] % size or rgba.shape[1] % size:
            continue
        r, c = rng.randrange(rgba.shape[0] // size), rng.randrange(rgba.shape[1] // size)
        cell = rgba[r * size : (r + 1) * size, c * size : (c + 1) * size]
        if cell[..., 3].max() == 0 or len(np.unique(cell.reshape(-1, 4), axis=0)) < 3:
            continue
        tiles += 1
        queries.append(Query("tile", encode(np.repeat(np.repeat(cell, 2, 0), 2, 1)), path.resolve().as_uri(), None))
    return queries


def index_files(corpus: Path, queries: list[Query], limit: int | None, seed: int) -> list[Path]:
    files = sorted(p for p in corpus.rglob("*") if p.suffix.lower() in (".png", ".gif", ".zip"))
    if limit is None or limit >= len(files):
        return files
    needed = {Path(unquote(q.target.removeprefix("file://"))) for q in queries}
    rest = [p for p in files if p.resolve() not in needed]
    random.Random(seed).shuffle(rest)
    return sorted(needed | set(rest[: max(0, limit - len(needed))]))


Scores = dict[str, tuple[float, float]]


def evaluate(run, queries: list[Query], group_of: dict[str, str]) -> tuple[Scores, dict[str, float]]:
    """recall@1 and recall@10 per query kind plus same-item precision@10, and the median query ms per kind."""
    hits: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    times: dict[str, list[float]] = defaultdict(list)
    precision: list[float] = []
    for q in queries:
        t = time.perf_counter()
        files = run(q.image)
        times[q.kind].append(time.perf_counter() - t)
        top = [any(f == q.target for f in result) for result in files]
        hits[q.kind].append((bool(top[:1] and top[0]), any(top[:K])))
        if q.group is not None:
            others = [r for r in files[:K] if q.target not in r]
            same = sum(any(group_of.get(f) == q.group for f in r) for r in others)
            precision.append(same / max(1, len(others)))
    out = {kind: (float(np.mean([a for a, _ in v])), float(np.mean([b for _, b in v]))) for kind, v in hits.items()}
    out["precision@10"] = (float(np.mean(precision)) if precision else float("nan"), float("nan"))
    return out, {kind: float(np.median(v)) * 1000 for kind, v in times.items()}


def engine_runner(engine: SearchEngine, max_pixels: int):
    def run(data: bytes) -> list[list[str]]:
        results = engine.by_pixels(prepare_query(data, max_pixels=max_pixels), count=K)
        return [[r.file_url, *r.also_in] for r in results]

    return run


def seed_runner(catalog: Catalog, store: BlobStore, batch: int = 64):
    """The original method: whole files, raw first frame, plain 224 resize with alpha dropped, cosine."""
    embedder = get_embedder("effnet-seed")
    rows = catalog.first_frames()
    urls, vectors = [], []
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        images = [decode_image(store.read(r[1]), name=r[2] or r[3]).frames[0].pixels for r in chunk]
        vectors.append(embedder.embed(images))
        urls += [r[0] for r in chunk]
    matrix = np.concatenate(vectors)

    def run(data: bytes) -> list[list[str]]:
        query = embedder.embed([decode_image(data).frames[0].pixels])[0]
        order = np.argsort(-(matrix @ query))[:K]
        return [[urls[i]] for i in order]

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--queries", type=int, default=600, help="sprites (each gives 5 transformed queries)")
    parser.add_argument("--tiles", type=int, default=200, help="tile queries from real grid sheets")
    parser.add_argument("--files", type=int, default=None, help="index only N corpus files (query sources always)")
    parser.add_argument("--embedders", nargs="+", default=["pixel"])
    parser.add_argument("--default", default="pixel", help="embedder of the default configuration row")
    parser.add_argument("--no-seed", action="store_true", help="skip the seed-method row")
    parser.add_argument("--data-dir", type=Path, default=None, help="reuse an index built by an earlier run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (args.corpus / "labels.csv").is_file():
        sys.exit(f"corpus not found at {args.corpus}")

    print(f"command: python bench/quality.py {' '.join(sys.argv[1:])}")
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}")
    labels = read_labels(args.corpus)
    group_of = {(args.corpus / r["path"]).resolve().as_uri(): r["group"] for r in labels}
    queries = pick_queries(args.corpus, labels, args.queries, args.tiles, args.seed)
    files = index_files(args.corpus, queries, args.files, args.seed)
    data_dir = args.data_dir or Path(f"/tmp/ogasearch-quality-{len(files)}")
    cfg = load_config({"data_dir": str(data_dir)}, env={})
    catalog, store = Catalog(data_dir / "catalog.sqlite"), BlobStore(data_dir / "blobs")
    t0 = time.perf_counter()
    add_paths(catalog, store, files)
    report = ingest(cfg, catalog, store)
    print(
        f"indexed {len(files)} files: {report.images} images, {report.items} items in {time.perf_counter() - t0:.0f} s"
    )
    print(f"queries: {args.queries} sprites x {len(TRANSFORMS)} transforms + {args.tiles} tiles\n")

    rows: list[tuple[str, tuple[Scores, dict[str, float]]]] = []
    for name in dict.fromkeys([*args.embedders, args.default]):
        t = time.perf_counter()
        make_searchable(cfg, catalog, store, name)
        built = time.perf_counter() - t
        embedder = get_embedder(name)
        index = open_model_index(cfg, embedder)
        if name in args.embedders:
            t = time.perf_counter()
            rows.append(
                (
                    f"{name} (vectors only)",
                    evaluate(
                        engine_runner(SearchEngine(catalog, store, embedder, index, False), cfg.max_image_pixels),
                        queries,
                        group_of,
                    ),
                )
            )
            print(f"{name}: embed+index {built:.0f} s, queries {time.perf_counter() - t:.0f} s", flush=True)
        if name == args.default:
            t = time.perf_counter()
            rows.append(
                (
                    f"default: {name} + hashes + mirror",
                    evaluate(
                        engine_runner(SearchEngine(catalog, store, embedder, index), cfg.max_image_pixels),
                        queries,
                        group_of,
                    ),
                )
            )
            print(f"default ({name}): queries {time.perf_counter() - t:.0f} s", flush=True)
        index.close()
    if not args.no_seed:
        t = time.perf_counter()
        rows.append(
            (
                "seed method (EfficientNet-Lite0 for VGG16, 224 resize, alpha dropped, whole images)",
                evaluate(seed_runner(catalog, store), queries, group_of),
            )
        )
        print(f"seed: {time.perf_counter() - t:.0f} s", flush=True)

    kinds = [*TRANSFORMS, "tile"]
    print(
        "\n| configuration | " + " | ".join(f"{k} R@1 / R@10" for k in kinds) + " | overall miss@10 | same-item P@10 |"
    )
    print("|---|" + "---|" * (len(kinds) + 2))
    for label, (res, _) in rows:
        cells = [f"{res[k][0]:.3f} / {res[k][1]:.3f}" for k in kinds]
        miss = 1 - np.mean([res[k][1] for k in kinds])
        print(f"| {label} | " + " | ".join(cells) + f" | {miss:.3f} | {res['precision@10'][0]:.3f} |")
    print("\n| configuration | " + " | ".join(f"{k} p50 ms" for k in kinds) + " |")
    print("|---|" + "---|" * len(kinds))
    for label, (_, p50) in rows:
        print(f"| {label} | " + " | ".join(f"{p50[k]:.1f}" for k in kinds) + " |")
    catalog.close()


if __name__ == "__main__":
    main()
