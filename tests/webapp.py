"""A searchable data dir for web tests (a crawl of the local OGA-like site plus a folder of sprites) and the
web app served by uvicorn on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import uvicorn
from click.testing import CliRunner
from oga_site import OgaSite, SitePage, make_pages
from PIL import Image

from ogasearch.cli import main
from ogasearch.config import Config, load_config
from ogasearch.web.app import create_app


def sprite(seed: int, size: int = 16) -> np.ndarray:
    """A random blob sprite with an outline, on transparency."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    cx, cy = rng.uniform(size * 0.35, size * 0.65, 2)
    radius = rng.uniform(size * 0.25, size * 0.45)
    mask = (xx - cx) ** 2 / rng.uniform(0.6, 1.6) + (yy - cy) ** 2 < radius**2
    palette = rng.integers(0, 256, (5, 4), dtype=np.uint8)
    palette[:, 3] = 255
    rgba = palette[rng.integers(1, 5, (size, size))]
    rgba[~mask] = 0
    edge = mask & ~np.pad(mask, 1)[2:, 1:-1] | mask & ~np.pad(mask, 1)[1:-1, 2:]
    rgba[edge] = palette[0]
    return rgba


def save_png(rgba: np.ndarray, path: Path) -> Path:
    Image.fromarray(rgba, "RGBA").save(path, "PNG")
    return path


@dataclass
class SearchableData:
    data_dir: Path
    assets: Path  # local sprites: `monster NN.png` (16×16) and `tileset.png` (a 4×2 grid of 16-px sprites)
    pages: list[SitePage]  # the crawled OGA-like pages (titles, authors, licences, files)

    def config(self, **settings: object) -> Config:
        return load_config({"data_dir": str(self.data_dir), **settings}, env={})


def build_searchable(root: Path) -> SearchableData:
    """Crawl a small OGA-like site and add a folder of sprites, ending searchable (about 10 s)."""
    assets = root / "assets"
    (assets / "monsters").mkdir(parents=True)
    for k in range(24):
        save_png(sprite(k), assets / "monsters" / f"monster {k:02d}.png")
    sheet = np.zeros((32, 64, 4), np.uint8)
    for k in range(8):
        r, c = divmod(k, 4)
        sheet[r * 16 : (r + 1) * 16, c * 16 : (c + 1) * 16] = sprite(100 + k)
    save_png(sheet, assets / "tileset.png")
    data = root / "data"
    pages = [p for p in make_pages(8) if p.art_type == "2D Art"]
    runner = CliRunner()
    with OgaSite(pages) as site:
        result = runner.invoke(main, ["--data-dir", str(data), "update", "--base-url", site.base_url, "--delay", "0"])
        assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["--data-dir", str(data), "add", str(assets)])
    assert result.exit_code == 0, result.output
    return SearchableData(data, assets, pages)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(cfg: Config) -> Iterator[str]:
    """The web app on a free loopback port in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(cfg), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="ogasearch-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the web app did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
