"""`ogasearch serve` as users run it, and a running server picking up what `add` indexed meanwhile."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from webapp import free_port, save_png, sprite

from ogasearch import searchable
from ogasearch.blobs import BlobStore
from ogasearch.catalog import Catalog
from ogasearch.cli import main
from ogasearch.config import load_config
from ogasearch.searchable import LiveEngine
from ogasearch.web.app import create_app


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    assets = tmp_path / "assets"
    assets.mkdir()
    for k in range(6):
        save_png(sprite(k), assets / f"hero {k}.png")
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path / "data"), "add", str(assets)])
    assert result.exit_code == 0, result.output
    return tmp_path / "data"


def test_serve_command_answers_on_its_port(data_dir: Path) -> None:
    port = free_port()
    env = {**os.environ, "OGASEARCH_DATA_DIR": str(data_dir)}
    command = [sys.executable, "-m", "ogasearch", "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):  # up to ~30 s for the interpreter, faiss and the index to load
            try:
                page = httpx.get(base + "/", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                time.sleep(0.1)
        else:
            pytest.fail("ogasearch serve did not answer within 30 s")
        assert page.status_code == 200 and 'name="imsi"' in page.text
        found = httpx.get(base + "/api/search", params={"q": "hero"}, timeout=10).json()["results"]
        assert {r["file_url"].rsplit("/", 1)[-1] for r in found} == {f"hero%20{k}.png" for k in range(6)}
    finally:
        server.terminate()
        server.wait(timeout=15)


def test_bad_setting_is_a_clear_error(data_dir: Path) -> None:
    result = CliRunner().invoke(main, ["--data-dir", str(data_dir), "serve", "--port", "70000"])
    assert result.exit_code != 0 and "port must be between 0 and 65535" in result.output


def test_a_running_server_sees_items_added_by_another_process(data_dir: Path, tmp_path: Path) -> None:
    new = save_png(sprite(77, 24), tmp_path / "late arrival.png")
    with TestClient(create_app(load_config({"data_dir": str(data_dir)}, env={}))) as client:
        client.app.state.services.live.check_every = 0.0
        query = {"file": ("q.png", new.read_bytes(), "image/png")}
        before = client.post("/api/search/image", files=query).json()["results"]
        assert all(r["match"] != "exact" for r in before)
        added = subprocess.run(
            [sys.executable, "-m", "ogasearch", "--data-dir", str(data_dir), "add", str(new)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert added.returncode == 0, added.stderr
        after = client.post("/api/search/image", files=query).json()["results"]
        assert after[0]["match"] == "exact" and after[0]["file_url"].endswith("late%20arrival.png")
        assert np.isclose(after[0]["score"], 1.0)


def test_the_engine_is_reopened_only_when_items_or_the_index_change(data_dir: Path, tmp_path: Path) -> None:
    cfg = load_config({"data_dir": str(data_dir)}, env={})
    catalog = Catalog(cfg.catalog_path)
    try:
        live = LiveEngine(cfg, catalog, BlobStore(cfg.blob_dir), check_every=0.0)
        first = live.get()
        catalog.db.execute("CREATE TABLE unrelated (x)")  # a commit that changes nothing searched
        assert live.get() is first
        result = CliRunner().invoke(
            main, ["--data-dir", str(data_dir), "add", str(save_png(sprite(5, 20), tmp_path / "new.png"))]
        )
        assert result.exit_code == 0, result.output
        second = live.get()
        assert second is not first and len(second.index) == len(first.index) + 1
        assert live.get() is second
    finally:
        catalog.close()


def test_a_failed_reopen_keeps_the_old_engine(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config({"data_dir": str(data_dir)}, env={})
    catalog = Catalog(cfg.catalog_path)
    try:
        live = LiveEngine(cfg, catalog, BlobStore(cfg.blob_dir), check_every=0.0)
        first = live.get()
        monkeypatch.setattr(catalog, "items_stamp", lambda: (-1, -1))
        monkeypatch.setattr(searchable, "open_engine", lambda *a: (_ for _ in ()).throw(OSError("index unreadable")))
        assert live.get() is first
    finally:
        catalog.close()
