"""Vector index speed and recall: local exact, local HNSW (several efSearch) and Milvus Lite, in one run.

Data: a two-level Gaussian mixture (100 groups x 50 clusters) in a 64-d latent space, projected to --dim,
plus isotropic noise, L2-normalised: clustered and of low intrinsic dimension like real embeddings, not
uniform noise. Queries are held-out points of the same mixture, perturbed. Recall@10 is measured against
exact search over the same vectors; latency is one query per call, as the web app searches. Milvus Lite
runs on the first --milvus-n vectors (it inserts through gRPC and is slow at 1M), next to local indexes
of the same size. Prints a Markdown table.

    python bench/index_speed.py [--n 1000000] [--dim 256] [--queries 1000] [--milvus-n 100000]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import faiss
import numpy as np
from _machine import cpu_model

from ogasearch.index.base import VectorIndex
from ogasearch.index.factory import IndexUnavailable, open_index

K = 10
DEFAULT_EF = 256  # LocalIndex's ef_search default
EXACT_LATENCY_QUERIES = 100  # exact search at 1M takes ~0.1 s a query: time a subset


@dataclass
class Row:
    name: str
    n: int
    build_s: float
    add_1k_s: float
    p50_ms: float
    p99_ms: float
    recall: float
    bytes_per_vector: float
    note: str = ""


def load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def package(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def mixture(
    n: int, dim: int, queries: int, spread: tuple[float, float] = (0.4, 1.0), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) base vectors and (queries, dim) perturbed held-out points, all unit rows.

    `spread` bounds each point's distance from its cluster centre (clusters sit ~1 apart): larger is more
    diffuse, so neighbours are less distinct and approximate search gets harder.
    """
    rng = np.random.default_rng(seed)
    latent, groups, per_group = 64, 100, 50
    projection = rng.standard_normal((latent, dim)).astype(np.float32) / np.sqrt(latent)
    centres = np.repeat(rng.standard_normal((groups, latent)), per_group, axis=0)
    centres = (centres + 0.7 * rng.standard_normal(centres.shape)).astype(np.float32)
    weights = rng.dirichlet(np.ones(len(centres)))

    def draw(m: int) -> np.ndarray:
        cluster = rng.choice(len(centres), size=m, p=weights)
        scale = rng.uniform(*spread, size=(m, 1)).astype(np.float32)
        z = centres[cluster] + scale * rng.standard_normal((m, latent), dtype=np.float32)
        x = z @ projection + 0.1 * rng.standard_normal((m, dim), dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    base = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        base[start : start + 100_000] = draw(min(100_000, n - start))
    held_out = draw(queries) + 0.05 * rng.standard_normal((queries, dim), dtype=np.float32)
    return base, held_out / np.linalg.norm(held_out, axis=1, keepdims=True)


def exact_top(base: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Ground truth: exact top-K ids by inner product."""
    flat = faiss.IndexFlatIP(base.shape[1])
    flat.add(base)
    return flat.search(queries, K)[1]


def latencies(index: VectorIndex, queries: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Top-K ids and per-call seconds, one query per call (after a short warm-up)."""
    for query in queries[:5]:
        index.search(query[None], K)
    found = np.empty((len(queries), K), np.int64)
    seconds = []
    for row, query in enumerate(queries):
        start = time.perf_counter()
        found[row] = index.search(query[None], K)[1][0]
        seconds.append(time.perf_counter() - start)
    return found, seconds


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(f, t)) / K for f, t in zip(found, truth, strict=True)]))


def disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(
    name: str,
    opener: Callable[[], VectorIndex],
    stored: Path,
    base: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    extra: np.ndarray,
    latency_queries: int | None = None,
    settle_s: float = 0.0,
) -> tuple[Row, VectorIndex]:
    """Build (add everything + save), wait settle_s, single-query search, then time a 1k add; the index stays open."""
    ids = np.arange(len(base), dtype=np.int64)
    index = opener()
    start = time.perf_counter()
    index.add(ids, base)
    index.save()
    build = time.perf_counter() - start
    size = disk_bytes(stored)
    time.sleep(settle_s)
    timed = queries[:latency_queries] if latency_queries else queries
    found, seconds = latencies(index, timed)
    start = time.perf_counter()
    index.add(np.arange(len(base), len(base) + len(extra), dtype=np.int64), extra)
    add_1k = time.perf_counter() - start
    index.remove(np.arange(len(base), len(base) + len(extra), dtype=np.int64))
    notes = [f"latency over {len(timed)} queries"] if latency_queries else []
    if settle_s:
        notes.append(f"searched {settle_s:.0f} s after the flush (segment indexes build in the background)")
    row = Row(
        name=name,
        n=len(base),
        build_s=build,
        add_1k_s=add_1k,
        p50_ms=float(np.percentile(seconds, 50) * 1e3),
        p99_ms=float(np.percentile(seconds, 99) * 1e3),
        recall=recall(found, truth[: len(timed)]),
        bytes_per_vector=size / len(base),
        note="; ".join(notes),
    )
    return row, index


def reopened(name: str, opener: Callable[[], VectorIndex], n: int, queries: np.ndarray, truth: np.ndarray) -> Row:
    """Search an index saved earlier with other search options; build time is the reopen time."""
    start = time.perf_counter()
    index = opener()
    opened = time.perf_counter() - start
    found, seconds = latencies(index, queries)
    index.close()
    return Row(
        name=name,
        n=n,
        build_s=opened,
        add_1k_s=float("nan"),
        p50_ms=float(np.percentile(seconds, 50) * 1e3),
        p99_ms=float(np.percentile(seconds, 99) * 1e3),
        recall=recall(found, truth),
        bytes_per_vector=float("nan"),
        note="reopened (build s = open time)",
    )


def print_row(row: Row) -> None:
    def num(value: float, fmt: str) -> str:
        return "–" if np.isnan(value) else format(value, fmt)

    print(
        f"| {row.name} | {row.n:,} | {num(row.build_s, '.1f')} | {num(row.add_1k_s, '.3f')} | "
        f"{row.p50_ms:.2f} | {row.p99_ms:.2f} | {row.recall:.4f} | {num(row.bytes_per_vector, '.0f')} | {row.note} |",
        flush=True,
    )


def local_rows(work: Path, base: np.ndarray, queries: np.ndarray, extra: np.ndarray, efs: list[int]) -> None:
    """Exact, then HNSW at the default settings, then the saved HNSW reopened with each efSearch."""
    n, dim = base.shape
    flat_dir, hnsw_dir = work / f"flat{n}", work / f"hnsw{n}"
    truth = exact_top(base, queries)

    def flat() -> VectorIndex:
        return open_index("local", path=flat_dir, collection="items", dim=dim, approx_threshold=n + len(extra))

    row, index = measure(
        "local Flat (exact)", flat, flat_dir / "items.faiss", base, queries, truth, extra, EXACT_LATENCY_QUERIES
    )
    index.close()
    shutil.rmtree(flat_dir)
    print_row(row)

    # One add() of everything builds HNSW in one go whatever the threshold; n // 2 makes small runs use it too.
    def hnsw(ef_search: int) -> Callable[[], VectorIndex]:
        return lambda: open_index(
            "local", path=hnsw_dir, collection="items", dim=dim, approx_threshold=n // 2, ef_search=ef_search
        )

    name = f"local HNSW M=32 efC=80 ef={DEFAULT_EF} (default)"
    row, index = measure(name, hnsw(DEFAULT_EF), hnsw_dir / "items.faiss", base, queries, truth, extra)
    index.close()
    print_row(row)
    for ef in efs:
        if ef != DEFAULT_EF:
            print_row(reopened(f"local HNSW ef={ef}", hnsw(ef), n, queries, truth))
    shutil.rmtree(hnsw_dir)


def milvus_row(work: Path, base: np.ndarray, queries: np.ndarray, extra: np.ndarray, ef: int, settle: float) -> None:
    dim = base.shape[1]
    truth = exact_top(base, queries)
    uri = str(work / "milvus.db")

    def lite() -> VectorIndex:
        return open_index("milvus", uri=uri, collection="items", dim=dim, ef_search=ef)

    try:
        row, index = measure(
            f"Milvus Lite HNSW M=32 efC=200 ef={ef}", lite, Path(uri), base, queries, truth, extra, settle_s=settle
        )
    except IndexUnavailable as exc:
        print(f"| Milvus Lite | – | – | – | – | – | – | – | unavailable: {exc} |")
        return
    index.close()
    print_row(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors in the local indexes")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument(
        "--spread", type=float, nargs=2, default=[0.4, 1.0], help="cluster spread range (2 2: diffuse, hard)"
    )
    parser.add_argument("--milvus-n", type=int, default=100_000, help="vectors in Milvus Lite (0: skip)")
    parser.add_argument("--milvus-ef", type=int, default=128)
    parser.add_argument("--milvus-settle", type=float, default=60, help="seconds to wait after the Milvus flush")
    parser.add_argument("--ef-search", type=int, nargs="+", default=[64, 128, 256, 512], help="HNSW efSearch to time")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"command: python bench/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print(
        f"machine: {cores} cores, {cpu_model()}, Python {platform.python_version()}, faiss-cpu {package('faiss-cpu')},"
        f" pymilvus {package('pymilvus')}, milvus-lite {package('milvus-lite')}, load average {load()}"
    )
    start = time.perf_counter()
    vectors, queries = mixture(args.n + 1000, args.dim, args.queries, spread=tuple(args.spread))
    base, extra = vectors[: args.n], vectors[args.n :]
    print(
        f"data: {args.n:,} x {args.dim} clustered unit vectors (spread {args.spread[0]}-{args.spread[1]}), "
        f"{args.queries} held-out queries, top-{K}; "
        f"build = add all + save; add 1k = one add() of 1,000 new vectors into the built index\n"
    )
    print("| index | vectors | build s | add 1k s | p50 ms | p99 ms | recall@10 | bytes/vector | note |")
    print("|---|---|---|---|---|---|---|---|---|")
    work = Path(tempfile.mkdtemp(prefix="ogasearch-index-bench-"))
    try:
        local_rows(work, base, queries, extra, args.ef_search)
        if args.milvus_n:
            subset = base[: args.milvus_n]
            if args.milvus_n < args.n:
                local_rows(work, subset, queries, extra, [])
            milvus_row(work, subset, queries, extra, args.milvus_ef, args.milvus_settle)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - start:.0f} s; load average at the end {load()} (other work slows timings)")


if __name__ == "__main__":
    main()
