"""`ogasearch ingest` after a crawl and `ogasearch add` on local folders: items with exact provenance."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from oga_site import OgaSite, make_pages
from PIL import Image

from ogasearch.cli import main


def run(data_dir: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--data-dir", str(data_dir), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def db(data_dir: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(data_dir / "catalog.sqlite")
    conn.row_factory = sqlite3.Row
    return conn


def sprite(seed: int, size: int = 16) -> np.ndarray:
    """A random few-colour sprite with a transparent border and a solid core."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (4, 4), dtype=np.uint8)
    palette[:, 3] = 255
    rgba = palette[rng.integers(0, 4, (size, size))]
    rgba[:2] = 0
    rgba[:, :2] = 0
    return rgba


def png(rgba: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    return buf.getvalue()


def sheet(tiles: list[np.ndarray], cols: int) -> np.ndarray:
    size = tiles[0].shape[0]
    rows = -(-len(tiles) // cols)
    out = np.zeros((rows * size, cols * size, 4), np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        out[r * size : (r + 1) * size, c * size : (c + 1) * size] = tile
    return out


def test_ingest_after_crawl_links_items_to_their_oga_page(tmp_path: Path) -> None:
    pages = [p for p in make_pages(6) if p.art_type == "2D Art"]
    with OgaSite(pages) as site:
        base = site.base_url
        run(tmp_path, "crawl", "--base-url", base, "--delay", "0")
    out = run(tmp_path, "ingest")
    assert "0 with errors" in out
    conn = db(tmp_path)
    for page in pages:
        for file in page.files:
            images = conn.execute(
                "SELECT im.* FROM images im JOIN files f ON f.id = im.file_id WHERE f.url = ? ORDER BY archive_path",
                (base + file.path,),
            ).fetchall()
            if file.name.endswith(".zip"):
                assert [i["archive_path"] for i in images] == [
                    "pack/sprite 0.png",
                    "pack/sprite 1.png",
                    "pack/éléments/tile.png",
                ]
            else:
                assert [i["archive_path"] for i in images] == [""]
            item_id = conn.execute(
                "SELECT id FROM items WHERE image_id = ? AND x0 IS NULL", (images[0]["id"],)
            ).fetchone()[0]
            info = json.loads(run(tmp_path, "item", str(item_id)))
            assert info["file_url"] == base + file.path
            assert [p["url"] for p in info["pages"]] == [base + page.path]
            assert info["pages"][0]["title"] == page.title
            assert [x["name"] for x in info["pages"][0]["licenses"]] == [name for name, _ in page.licenses]
    # a second ingest has nothing left to do
    assert "ingested 0 files" in run(tmp_path, "ingest")


def test_add_folder_gives_items_per_image_frame_and_tile(tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    (assets / "sub dir").mkdir(parents=True)
    hero = sprite(1)
    (assets / "hero.png").write_bytes(png(hero))
    big = np.repeat(np.repeat(hero, 3, axis=0), 3, axis=1)  # uploaded at x3
    (assets / "sub dir" / "hero x3.png").write_bytes(png(big))
    tiles = [sprite(10 + k) for k in range(6)]
    (assets / "sheet.png").write_bytes(png(sheet([*tiles, tiles[0]], cols=4)))  # one duplicate cell
    frames = [Image.fromarray(sprite(20 + k), "RGBA") for k in range(3)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=[frames[1], frames[0], frames[2]], duration=100)
    (assets / "walk.gif").write_bytes(gif.getvalue())
    (assets / "notes.txt").write_text("not an image")
    (assets / "fake.png").write_bytes(b"<html><body>404 Not Found</body></html>")

    data = tmp_path / "data"
    out = run(data, "add", str(assets))
    assert "found 4 images" in out  # the text file and the HTML page are not images
    conn = db(data)
    rows = {
        Path(r["url"]).name: r
        for r in conn.execute("SELECT f.url, f.id FROM files f").fetchall()
        if r["url"].startswith("file://")
    }
    assert set(rows) == {"hero.png", "hero%20x3.png", "sheet.png", "walk.gif"}

    def items(name: str) -> list[sqlite3.Row]:
        return conn.execute(
            "SELECT it.*, im.frame, im.scale FROM items it JOIN images im ON im.id = it.image_id "
            "WHERE im.file_id = ? ORDER BY im.frame, it.id",
            (rows[name]["id"],),
        ).fetchall()

    hero_items, big_items = items("hero.png"), items("hero%20x3.png")
    assert len(hero_items) == len(big_items) == 1
    assert big_items[0]["scale"] == 3
    assert big_items[0]["pixel_sha256"] == hero_items[0]["pixel_sha256"]  # same sprite, any upload scale

    sheet_items = items("sheet.png")
    boxes = [(r["x0"], r["y0"], r["x1"], r["y1"]) for r in sheet_items if r["x0"] is not None]
    assert len(boxes) == 6  # the duplicate cell is dropped
    assert (16, 0, 32, 16) in boxes
    assert sum(r["x0"] is None for r in sheet_items) == 1  # the whole sheet is an item too

    gif_frames = {r["frame"] for r in items("walk.gif")}
    assert len(gif_frames) == 3  # the repeated frame is not a new item

    assert "found 4 images and archives, 0 new or changed" in run(data, "add", str(assets))
    assert conn.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 1 + 1 + 7 + 3


def test_archives_nested_broken_and_bombs_are_recorded_and_the_stage_goes_on(tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("deep/knight.png", png(sprite(3)))
    outer = io.BytesIO()
    with tarfile.open(fileobj=outer, mode="w:gz") as tf:
        for name, payload in (("pack/inner.zip", inner.getvalue()), ("pack/slime 1.png", png(sprite(4)))):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    (assets / "nested.tar.gz").write_bytes(outer.getvalue())

    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.png", png(sprite(5)))
        zf.writestr("b.png", png(sprite(6, 64)))
        zf.writestr("bad.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (assets / "broken.zip").write_bytes(broken.getvalue())

    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ok.png", png(sprite(7)))
        zf.writestr("zeros.png", b"\0" * (8 * 1024 * 1024))
    (assets / "bomb.zip").write_bytes(bomb.getvalue())

    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    data = tmp_path / "data"
    out = run(data, "add", str(assets), "--max-member-bytes", "1000000")
    assert "3 files" in out
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if not p.is_relative_to(data))
    assert after == before  # nothing is written outside the data dir

    conn = db(data)

    def file_row(name: str) -> sqlite3.Row:
        return conn.execute("SELECT * FROM files WHERE name = ?", (name,)).fetchone()

    def paths(name: str) -> list[str]:
        return [
            r["archive_path"]
            for r in conn.execute(
                "SELECT archive_path FROM images WHERE file_id = ? AND state = 'done' ORDER BY archive_path",
                (file_row(name)["id"],),
            )
        ]

    assert paths("nested.tar.gz") == ["pack/inner.zip/deep/knight.png", "pack/slime 1.png"]
    assert file_row("nested.tar.gz")["ingest_state"] == "done"
    assert paths("broken.zip") == ["a.png", "b.png"]
    bad = conn.execute("SELECT error FROM images WHERE archive_path = 'bad.png'").fetchone()
    assert bad is not None and bad["error"]
    bomb_row = file_row("bomb.zip")
    assert bomb_row["ingest_state"] == "error" and "zeros.png" in bomb_row["ingest_error"]
    assert paths("bomb.zip") == ["ok.png"]  # members read before the fault are kept

    status = json.loads(run(data, "status", "--json"))
    kinds = {e["kind"] for e in status["errors"]}
    assert {"ingest", "image"} <= kinds


def test_truncated_archive_keeps_members_read_before_the_cut(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for k in range(6):
            zf.writestr(f"s{k}.png", png(sprite(30 + k, 32)))
    (tmp_path / "cut.zip").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    data = tmp_path / "data"
    run(data, "add", str(tmp_path / "cut.zip"))
    conn = db(data)
    row = conn.execute("SELECT ingest_state, ingest_error FROM files").fetchone()
    assert row["ingest_state"] == "error" and row["ingest_error"]
    kept = conn.execute("SELECT COUNT(*) FROM images WHERE state = 'done'").fetchone()[0]
    assert 1 <= kept < 6


@pytest.mark.corpus
def test_add_corpus_sample(corpus: Path, tmp_path: Path) -> None:
    """A slice of the real corpus: DawnLike grid sheets are cut into 16-px tiles."""
    sheets = corpus / "dawnlike_atlas" / "original" / "DawnLike_181" / "Characters"
    if not sheets.is_dir():
        pytest.skip(f"{sheets} not found")
    run(tmp_path, "add", str(sheets))
    conn = db(tmp_path)
    sizes = conn.execute(
        "SELECT x1 - x0 AS w, y1 - y0 AS h, COUNT(*) AS n FROM items WHERE x0 IS NOT NULL GROUP BY 1, 2 ORDER BY n DESC"
    ).fetchall()
    assert (sizes[0]["w"], sizes[0]["h"]) == (16, 16)
    assert conn.execute("SELECT COUNT(*) FROM images WHERE state = 'error'").fetchone()[0] == 0


def items_dump(data_dir: Path) -> list[tuple]:
    return (
        db(data_dir)
        .execute(
            "SELECT f.url, im.archive_path, im.frame, it.x0, it.y0, it.x1, it.y1, it.pixel_sha256 FROM items it "
            "JOIN images im ON im.id = it.image_id JOIN files f ON f.id = im.file_id ORDER BY 1, 2, 3, 4, 5"
        )
        .fetchall()
    )


def test_ingest_killed_and_rerun_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    for k in range(400):
        (assets / f"s{k:03d}.png").write_bytes(png(sheet([sprite(k * 4 + j) for j in range(4)], cols=2)))
    reference = tmp_path / "reference"
    run(reference, "add", str(assets))

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "ogasearch", "--data-dir", str(killed), "add", str(assets), "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            done = db(killed).execute("SELECT COUNT(*) FROM files WHERE ingest_state = 'done'").fetchone()[0]
        except sqlite3.Error:
            done = 0
        if done >= 20:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 20 <= done < 400, "the kill came too late"
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    assert items_dump(killed) == items_dump(reference)
