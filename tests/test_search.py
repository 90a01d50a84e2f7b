"""The search engine end to end: add a folder or crawl a site, then search by image, URL, item and words."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from oga_site import OgaSite, make_pages
from PIL import Image
from webapp import sprite

from ogasearch.cli import main
from ogasearch.query import recover_alpha


def png(rgba: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    return buf.getvalue()


def cli(data: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--data-dir", str(data), *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("search")
    assets = root / "assets"
    (assets / "monsters").mkdir(parents=True)
    for k in range(40):
        (assets / "monsters" / f"monster {k:02d}.png").write_bytes(png(sprite(k)))
    sheet = np.zeros((32, 64, 4), np.uint8)
    for k in range(8):
        r, c = divmod(k, 4)
        sheet[r * 16 : (r + 1) * 16, c * 16 : (c + 1) * 16] = sprite(100 + k)
    (assets / "tileset.png").write_bytes(png(sheet))
    data = root / "data"
    out = cli(data, "add", str(assets))
    assert "[pixel] embedded" in out
    return data, assets


def search_json(data: Path, *args: str) -> list[dict]:
    return json.loads(cli(data, "search", *args, "--json"))


def test_exact_sprite_is_first(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    data, assets = indexed
    results = search_json(data, str(assets / "monsters" / "monster 07.png"), "--count", "5")
    assert results[0]["file_url"].endswith("monster%2007.png")
    assert results[0]["match"] == "exact" and results[0]["score"] == 1.0
    for key in ("item_id", "score", "page_url", "file_url", "title", "author", "licenses", "archive_path", "bbox"):
        assert key in results[0]
    assert len(results) == 5


def test_transformed_queries_find_their_source(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = indexed
    rng = np.random.default_rng(0)
    hits = 0
    cases = 0
    for k in range(0, 40, 4):
        rgba = sprite(k)
        variants = {
            "nearest3": np.repeat(np.repeat(rgba, 3, 0), 3, 1),
            "flip": rgba[:, ::-1],
            "bg": _on_background(rgba, rng.integers(0, 256, 3)),
        }
        for name, image in variants.items():
            query = tmp_path / f"{k}-{name}.png"
            query.write_bytes(png(image))
            top = search_json(data, str(query), "--count", "1")[0]
            cases += 1
            hits += top["file_url"].endswith(f"monster%20{k:02d}.png")
    assert hits / cases >= 0.9, f"{hits}/{cases}"


def _on_background(rgba: np.ndarray, colour: np.ndarray) -> np.ndarray:
    alpha = rgba[..., 3:] / 255.0
    out = np.empty_like(rgba)
    out[..., :3] = (rgba[..., :3] * alpha + colour * (1 - alpha)).astype(np.uint8)
    out[..., 3] = 255
    return out


def test_a_tile_finds_its_sheet(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = indexed
    query = tmp_path / "tile.png"
    query.write_bytes(png(np.repeat(np.repeat(sprite(105), 2, 0), 2, 1)))
    top = search_json(data, str(query), "--count", "3", "--kind", "tiles")[0]
    assert top["file_url"].endswith("tileset.png")
    assert top["bbox"] == [16, 16, 32, 32]


def test_more_like_this_and_paging(indexed: tuple[Path, Path]) -> None:
    data, _ = indexed
    first = search_json(data, "monster", "--count", "3")
    assert first and all("monster" in r["file_url"] for r in first)
    item = first[0]["item_id"]
    similar = search_json(data, str(item), "--similar", "--count", "10")
    assert item not in [r["item_id"] for r in similar]
    page2 = search_json(data, str(item), "--similar", "--count", "5", "--offset", "5")
    assert [r["item_id"] for r in page2] == [r["item_id"] for r in similar[5:10]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x", "--count", "0"], "count must be between 1 and 100"),
        (["x", "--count", "101"], "count must be between 1 and 100"),
        (["999999", "--similar"], "no item 999999"),
        (["abc", "--similar"], "needs an item id"),
        (["!!!"], "no words"),
        (["http://127.0.0.1:9/sprite.png"], "loopback address"),  # refused before any connection
    ],
)
def test_bad_queries_are_clear_errors(indexed: tuple[Path, Path], args: list[str], message: str) -> None:
    data, _ = indexed
    result = CliRunner().invoke(main, ["--data-dir", str(data), "search", *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_not_an_image_file_is_a_clear_error(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = indexed
    bad = tmp_path / "page.png"
    bad.write_bytes(b"<html>not found</html>")
    result = CliRunner().invoke(main, ["--data-dir", str(data), "search", str(bad)])
    assert result.exit_code != 0 and "page.png" in result.output


def test_update_crawls_and_makes_oga_art_searchable_with_licence_filter(tmp_path: Path) -> None:
    pages = [p for p in make_pages(8) if p.art_type == "2D Art"]
    with OgaSite(pages) as site:
        out = cli(tmp_path, "update", "--base-url", site.base_url, "--delay", "0")
    assert "[pixel] embedded" in out
    page = pages[0]
    query = tmp_path / "q.png"
    query.write_bytes(page.files[0].data if page.files[0].mime == "image/png" else b"")
    if page.files[0].mime == "image/png":
        top = search_json(tmp_path, str(query), "--count", "1")[0]
        assert top["page_url"].endswith(page.path) and top["title"] == page.title
        assert top["licenses"] == [name for name, _ in page.licenses]
    by_title = search_json(tmp_path, page.title, "--count", "5")
    assert by_title and by_title[0]["title"] == page.title
    cc0 = search_json(tmp_path, "pixel", "--count", "50", "--license", "CC0")
    assert all(any("CC0" in lic for lic in r["licenses"]) for r in cc0)


def test_recover_alpha_removes_a_uniform_background_only() -> None:
    rgba = sprite(3, 24)
    flat = _on_background(rgba, np.array([30, 200, 90]))
    recovered = recover_alpha(flat)
    assert ((recovered[..., 3] == 0) == (rgba[..., 3] == 0)).mean() > 0.97
    noisy = np.random.default_rng(1).integers(0, 256, (24, 24, 4), dtype=np.uint8)
    noisy[..., 3] = 255
    assert (recover_alpha(noisy) == noisy).all()
    assert (recover_alpha(rgba) == rgba).all()  # already transparent: untouched


class _NearDuplicates:
    """A catalog of three near duplicates of one query (perceptual hash), two of them with stored vectors."""

    def __init__(self, query_hash: int, near: dict[int, tuple[int, list[float] | None]]) -> None:
        self.query_hash, self.near = query_hash, near  # item id -> (hash bits flipped, stored vector)

    def items_with_hash(self, sha256s: list[str]) -> list[int]:
        return []

    def hash_table(self) -> tuple[list[int], list[int], list[str]]:
        hashes = [self.query_hash ^ flipped for flipped, _ in self.near.values()]
        return list(self.near), [h - (1 << 64) if h >= 1 << 63 else h for h in hashes], [""] * len(hashes)

    def vectors(self, model: str, ids: list[int]) -> list[tuple[int, bytes]]:
        return [(i, np.array(self.near[i][1], np.float32).tobytes()) for i in ids if self.near[i][1] is not None]

    def item_rows(self, ids: list[int]) -> dict[int, dict]:
        row = dict.fromkeys(("x0", "page_url", "title", "author", "attribution", "art_type"))
        return {
            i: row
            | {"item_id": i, "pixel_sha256": str(i), "phash": self.query_hash ^ self.near[i][0], "licenses": []}
            | {"file_url": f"file:///{i}.png", "archive_path": "", "width": 8, "height": 8}
            for i in ids
        }


class _OneDirection:
    name, dim = "fake", 2

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        return np.tile(np.array([1, 0], np.float32), (len(images), 1))


class _EmptyIndex:
    def __len__(self) -> int:
        return 0


def test_near_duplicates_are_ordered_by_vector_similarity() -> None:
    """A 64-bit hash cannot tell a sprite from a recolour or a tile of the same layout; the vectors decide."""
    from ogasearch.ingest.hashing import perceptual_hash
    from ogasearch.search import SearchEngine

    query = np.zeros((8, 8, 4), np.uint8)
    query[2:6, 2:6] = 255  # mirror-symmetric: both views share one hash
    near = {1: (0b100000, [0.0, 1.0]), 2: (0b11111, [1.0, 0.0]), 3: (0b1111000000, None)}
    engine = SearchEngine(_NearDuplicates(perceptual_hash(query), near), None, _OneDirection(), _EmptyIndex())
    results = engine.by_pixels([query], count=3)
    assert [r.item_id for r in results] == [2, 3, 1]  # by hash distance alone it was 1, 3, 2
    assert [r.score for r in results] == [1.0, round(1 - 4 / 64, 4), 0.0]  # no stored vector: hash similarity
    assert {r.match for r in results} == {"near"}
