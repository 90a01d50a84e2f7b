"""Web load: throughput, latency and memory of `ogasearch serve` under concurrent clients, on loopback.

Starts `ogasearch serve --host 127.0.0.1 --port <free port>` as a separate process on an existing data dir
(building it first with `ogasearch --data-dir DIR add CORPUS` if it has no catalog: ~5–8 min for the whole
corpus on 2 cores), waits until `/api/stats` answers (the engine is loaded by then), sends one request of each
kind as a warm-up (not counted), then one client alone for `--reference-seconds` (the same-run reference: the
service time on this machine as it is now, since these machines are noisy), then N concurrent clients
(asyncio tasks over one httpx connection pool with a connection per client) for a fixed time. Each client
loops, back to back, over a fixed-seed mix of:

- `upload`:  POST /api/search/image with a corpus sprite (labels.csv kind `sprite`, ≤ 256 px, fixed-seed sample)
- `similar`: GET /api/similar/{id} on item ids sampled (fixed seed) from the data dir's catalog (sqlite)
- `text`:    GET /api/search?q=WORD with words taken from corpus file names

Requests in flight at the deadline are completed and counted; requests/s divides by the time until the last
one finished. Latency (of the 2xx answers) is client-side wall time per request: connect, upload, search, JSON
download and parse. `empty` counts 2xx answers with no results (e.g. a file-name word not in a small data dir).
An error is any non-2xx answer, an exception or a timeout; any error makes the exit status 1 and prints the
first errors and the tail of the server log. Server memory: VmHWM (peak RSS) from /proc of the server process
and any child processes, and the largest sum of their VmRSS sampled every 0.5 s during the run.

Uploads are kept by the server (as the page does, under DATA_DIR/queries), so the run adds files there.
The clients run on the same machine as the server and share its cores, so on a small machine they take CPU
from it; the load average at start and end is printed so runs on a busy machine can be recognised.

    python bench/load.py [--data-dir /tmp/ogasearch-corpus] [--clients 50] [--seconds 30]
                         [--mix upload=40,similar=30,text=30] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import platform
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from _machine import cpu_model

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OGASEARCH_SHARED", REPO.parent / "shared"))
KINDS = ("upload", "similar", "text")
MAX_SPRITE_SIDE = 256
MAX_SHOWN_ERRORS = 10
PAGE_SIZE = 4096


@dataclass
class Payloads:
    sprites: list[tuple[str, bytes]]
    item_ids: list[int]
    words: list[str]


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    empty: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    first_errors: list[str] = field(default_factory=list)

    def error(self, kind: str, message: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if len(self.first_errors) < MAX_SHOWN_ERRORS:
            self.first_errors.append(f"{kind}: {message}")


# -- inputs ------------------------------------------------------------------------------------------------


def parse_mix(text: str) -> dict[str, float]:
    """`upload=40,similar=30,text=30` -> weights (kinds left out get 0)."""
    mix = dict.fromkeys(KINDS, 0.0)
    for part in text.split(","):
        name, _, value = part.partition("=")
        if name.strip() not in mix or not value:
            raise argparse.ArgumentTypeError(f"bad mix entry {part!r}: use e.g. upload=40,similar=30,text=30")
        mix[name.strip()] = float(value)
    if any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise argparse.ArgumentTypeError("mix weights must be >= 0 with a positive sum")
    return mix


def corpus_rows(corpus: Path) -> list[dict[str, str]]:
    labels = corpus / "labels.csv"
    if not labels.is_file():
        sys.exit(f"no labels.csv in {corpus}: pass --corpus (the shared pixel-art corpus)")
    with labels.open(newline="") as fh:
        return list(csv.DictReader(fh))


def pick_sprites(corpus: Path, rows: list[dict[str, str]], n: int, rng: random.Random) -> list[tuple[str, bytes]]:
    """n corpus sprites (whole files, as uploaded by a person), at most 256 px a side."""
    paths = sorted(
        r["path"]
        for r in rows
        if r["kind"] == "sprite"
        and r["width"].isdigit()
        and r["height"].isdigit()
        and max(int(r["width"]), int(r["height"])) <= MAX_SPRITE_SIDE
    )
    out = []
    for rel in rng.sample(paths, min(n, len(paths))):
        path = corpus / rel
        if path.is_file():
            out.append((path.name, path.read_bytes()))
    if not out:
        sys.exit(f"no sprites found under {corpus}")
    return out


def pick_words(rows: list[dict[str, str]], n: int, rng: random.Random) -> list[str]:
    """n distinct words (letters only, 3+ long) from corpus file names."""
    words = set()
    for r in rows:
        words.update(w.lower() for w in re.findall(r"[A-Za-z]{3,}", Path(r["path"]).stem))
    ordered = sorted(words)
    return rng.sample(ordered, min(n, len(ordered)))


def pick_item_ids(catalog: Path, n: int, rng: random.Random) -> list[int]:
    con = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)
    try:
        ids = [row[0] for row in con.execute("SELECT id FROM items ORDER BY id")]
    finally:
        con.close()
    if not ids:
        sys.exit(f"{catalog} has no items: run `ogasearch --data-dir DIR add CORPUS`")
    return rng.sample(ids, min(n, len(ids)))


def ensure_data_dir(data_dir: Path, corpus: Path) -> None:
    if (data_dir / "catalog.sqlite").is_file():
        return
    command = [sys.executable, "-m", "ogasearch", "--data-dir", str(data_dir), "add", str(corpus)]
    print(f"no catalog in {data_dir}; building it (several minutes): {' '.join(command)}", file=sys.stderr)
    subprocess.run(command, check=True)


# -- the server process ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_tree(root: int) -> list[int]:
    """root and its descendants, from the parent ids in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class Server:
    """`ogasearch serve` in its own session (so Ctrl+C reaches only this script, which then stops it)."""

    def __init__(self, data_dir: Path, port: int, log_path: Path) -> None:
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.log = log_path.open("wb")
        command = [sys.executable, "-m", "ogasearch", "--data-dir", str(data_dir), "serve"]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        self.command = command
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.peak_sampled_kb = 0
        self.most_processes = 1

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=timeout) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited with status {self.proc.returncode}")
                try:
                    answer = client.get(f"{self.base_url}/api/stats")
                    if answer.status_code == 200:
                        return answer.json()
                    raise RuntimeError(f"/api/stats answered {answer.status_code}: {answer.text[:300]}")
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not answer within {timeout:.0f} s")
                time.sleep(0.2)

    def rss_kb(self) -> int:
        return sum(status_kb(pid, "VmRSS") for pid in process_tree(self.proc.pid))

    def hwm_kb(self) -> int:
        return sum(status_kb(pid, "VmHWM") for pid in process_tree(self.proc.pid))

    async def sample_rss(self, every: float = 0.5) -> None:
        while True:
            tree = process_tree(self.proc.pid)
            self.most_processes = max(self.most_processes, len(tree))
            self.peak_sampled_kb = max(self.peak_sampled_kb, sum(status_kb(pid, "VmRSS") for pid in tree))
            await asyncio.sleep(every)

    def stop(self) -> None:
        """SIGINT, then SIGTERM, then SIGKILL; safe to call twice."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully on SIGINT
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self.log.close()

    def log_tail(self, lines: int = 80) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# -- the clients -------------------------------------------------------------------------------------------


def pick_request(kind: str, rng: random.Random, payloads: Payloads) -> tuple[str, str, dict[str, Any]]:
    """The method, path and httpx arguments of one request of this kind."""
    if kind == "upload":
        name, data = rng.choice(payloads.sprites)
        return "POST", "/api/search/image", {"files": {"file": (name, data, "image/png")}}
    if kind == "similar":
        return "GET", f"/api/similar/{rng.choice(payloads.item_ids)}", {}
    return "GET", "/api/search", {"params": {"q": rng.choice(payloads.words)}}


async def timed(client: httpx.AsyncClient, kind: str, rng: random.Random, payloads: Payloads, stats: Stats) -> None:
    method, path, kwargs = pick_request(kind, rng, payloads)
    target = f"{method} {path}" + (f" {kwargs['params']}" if "params" in kwargs else "")
    if "files" in kwargs:
        target += f" ({kwargs['files']['file'][0]})"
    start = time.perf_counter()
    try:
        answer = await client.request(method, path, **kwargs)
        if not 200 <= answer.status_code < 300:
            stats.error(kind, f"{target} -> {answer.status_code} {answer.text[:300]}")
            return
        results = answer.json()["results"]
    except Exception as exc:  # every failure is counted, none stops the run
        stats.error(kind, f"{target} -> {type(exc).__name__}: {exc!r}")
        return
    stats.latencies[kind].append(time.perf_counter() - start)
    stats.empty[kind] += not results


async def client_loop(
    client: httpx.AsyncClient,
    index: int,
    seed: int,
    mix: dict[str, float],
    deadline: float,
    payloads: Payloads,
    stats: Stats,
) -> None:
    rng = random.Random(seed * 1_000_003 + index)
    kinds, weights = list(mix), list(mix.values())
    while time.monotonic() < deadline:
        await timed(client, rng.choices(kinds, weights)[0], rng, payloads, stats)


async def phase(
    client: httpx.AsyncClient, clients: int, seconds: float, args: argparse.Namespace, payloads: Payloads
) -> tuple[Stats, float]:
    """`clients` concurrent loops for `seconds`; returns their stats and the time it really took."""
    stats = Stats()
    start = time.monotonic()
    deadline = start + seconds
    await asyncio.gather(
        *(client_loop(client, i, args.seed, args.mix, deadline, payloads, stats) for i in range(clients))
    )
    return stats, time.monotonic() - start


async def run_load(server: Server, args: argparse.Namespace, payloads: Payloads) -> tuple[Stats, float, Stats, float]:
    """The reference phase (one client: the service time on this machine now), then the load phase."""
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    timeout = httpx.Timeout(args.timeout, pool=args.timeout)
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=timeout, trust_env=False) as client:
        warm = Stats()
        rng = random.Random(args.seed)
        for kind in KINDS:
            await timed(client, kind, rng, payloads, warm)
        if warm.first_errors:
            raise RuntimeError("the warm-up requests failed:\n  " + "\n  ".join(warm.first_errors))
        reference, ref_seconds = await phase(client, 1, args.reference_seconds, args, payloads)
        sampler = asyncio.create_task(server.sample_rss())
        try:
            stats, seconds = await phase(client, args.clients, args.seconds, args, payloads)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        return stats, seconds, reference, ref_seconds


# -- report ------------------------------------------------------------------------------------------------


def summary(stats: Stats, seconds: float) -> list[dict[str, Any]]:
    rows = []
    for kind in (*KINDS, "all"):
        times = [t for k in KINDS for t in stats.latencies[k]] if kind == "all" else stats.latencies[kind]
        errors = sum(stats.errors.values()) if kind == "all" else stats.errors[kind]
        empty = sum(stats.empty.values()) if kind == "all" else stats.empty[kind]
        ms = np.array(times) * 1000 if times else np.array([np.nan])
        rows.append(
            {
                "kind": kind,
                "requests": len(times) + errors,
                "rps": (len(times) + errors) / seconds if seconds else 0.0,
                "p50_ms": float(np.percentile(ms, 50)),
                "p99_ms": float(np.percentile(ms, 99)),
                "max_ms": float(ms.max()),
                "empty": empty,
                "errors": errors,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/ogasearch-corpus"))
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--mix", type=parse_mix, default=parse_mix("upload=40,similar=30,text=30"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reference-seconds", type=float, default=10.0, help="one client first, as the same-run reference"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request before it is an error")
    parser.add_argument("--start-timeout", type=float, default=300.0, help="seconds for the server to answer")
    parser.add_argument("--server-log", type=Path, help="keep the server's output here (default: a temp file)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0:
        parser.error("--clients and --seconds must be positive")

    ensure_data_dir(args.data_dir, args.corpus)
    rng = random.Random(args.seed)
    rows = corpus_rows(args.corpus)
    payloads = Payloads(
        sprites=pick_sprites(args.corpus, rows, 200, rng),
        item_ids=pick_item_ids(args.data_dir / "catalog.sqlite", 1000, rng),
        words=pick_words(rows, 200, rng),
    )

    log_path = args.server_log or Path(tempfile.mkstemp(prefix="ogasearch-load-", suffix=".log")[1])
    load_start = os.getloadavg()
    server = Server(args.data_dir, free_port(), log_path)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server on `kill` too (finally below)
    stats, seconds, failed = Stats(), 0.0, ""
    try:
        info = server.wait_ready(args.start_timeout)
        if not info.get("indexed"):
            raise RuntimeError(f"nothing is indexed in {args.data_dir}: run `ogasearch add` on it again")
        rss_ready_kb = server.rss_kb()
        stats, seconds, reference, ref_seconds = asyncio.run(run_load(server, args, payloads))
        hwm_kb = max(server.hwm_kb(), server.peak_sampled_kb)
        alive = server.proc.poll() is None
    except RuntimeError as exc:
        failed = str(exc)
    except KeyboardInterrupt:
        server.stop()
        sys.exit(f"interrupted; the server is stopped (its log: {log_path})")
    finally:
        server.stop()
    load_end = os.getloadavg()

    if failed:
        print(f"error: {failed}\n--- server log ({log_path}) ---\n{server.log_tail()}", file=sys.stderr)
        sys.exit(1)
    rows_out = summary(stats, seconds)
    ref_rows = summary(reference, ref_seconds)
    mix = ", ".join(f"{k} {w:g}" for k, w in args.mix.items())
    print(f"command: python bench/load.py {' '.join(sys.argv[1:])}")
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"load average (1/5/15 min): start {'/'.join(f'{x:.2f}' for x in load_start)}, ", end="")
    print(f"end {'/'.join(f'{x:.2f}' for x in load_end)}")
    items = info.get("whole", 0) + info.get("tiles", 0)
    print(
        f"data: {args.data_dir}: {items} items, {info['indexed']} vectors ({info.get('model')}); "
        f"inputs: {len(payloads.sprites)} sprites, {len(payloads.item_ids)} item ids, {len(payloads.words)} words"
    )
    print(f"load: {args.clients} clients for {args.seconds:g} s (ran {seconds:.1f} s), mix {mix}, seed {args.seed}\n")
    print("| kind | requests | req/s | p50 ms | p99 ms | max ms | empty | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows_out:
        name = f"**{r['kind']}**" if r["kind"] == "all" else r["kind"]
        print(
            f"| {name} | {r['requests']} | {r['rps']:.1f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | "
            f"{r['max_ms']:.0f} | {r['empty']} | {r['errors']} |"
        )
    ref, load = ref_rows[-1], rows_out[-1]
    print(
        f"\nreference, same server, 1 client for {ref_seconds:.1f} s: {ref['requests']} requests, "
        f"{ref['rps']:.1f} req/s, p50 {ref['p50_ms']:.0f} ms, p99 {ref['p99_ms']:.0f} ms, {ref['errors']} errors; "
        f"{args.clients} clients get {load['rps'] / ref['rps']:.2f}x its throughput"
    )
    print(
        f"server RSS: {rss_ready_kb / 1024:.0f} MB when ready, peak {hwm_kb / 1024:.0f} MB (VmHWM); "
        f"{server.most_processes} server process(es)"
    )
    if args.json:
        report = {
            "command": sys.argv,
            "machine": {"cores": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version()},
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "loadavg_start": load_start,
            "loadavg_end": load_end,
            "data_dir": str(args.data_dir),
            "server": info,
            "clients": args.clients,
            "seconds": seconds,
            "mix": args.mix,
            "seed": args.seed,
            "rows": rows_out,
            "reference_rows": ref_rows,
            "reference_seconds": ref_seconds,
            "server_rss_ready_mb": rss_ready_kb / 1024,
            "server_peak_rss_mb": hwm_kb / 1024,
            "server_processes": server.most_processes,
            "first_errors": stats.first_errors,
        }
        args.json.write_text(json.dumps(report, indent=2))
    bad = sum(stats.errors.values()) + sum(reference.errors.values())
    if bad or not alive:
        print(f"\n{bad} errors; the first ones:", file=sys.stderr)
        for line in stats.first_errors:
            print(f"  {line}", file=sys.stderr)
        print(f"--- server log ({log_path}) ---\n{server.log_tail()}", file=sys.stderr)
        sys.exit(1)
    if args.server_log is None:
        log_path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
