"""The web layer's parts on their own: crisp thumbnails, the credits line, and the store of uploaded queries."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from webapp import save_png, sprite

from ogasearch.blobs import BlobStore
from ogasearch.catalog import Catalog
from ogasearch.cli import main
from ogasearch.credits import credit_line, file_name
from ogasearch.ingest.canonical import canonicalize
from ogasearch.search import UnknownItem
from ogasearch.thumbs import THUMB_BOX, Thumbnails, encode_png, integer_scale, thumbnail
from ogasearch.uploads import UploadStore

# --- thumbnails ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "box", "scale"),
    [
        ((16, 16), 128, (8, 1)),
        ((48, 16), 128, (2, 1)),
        ((13, 7), 128, (9, 1)),
        ((128, 5), 128, (1, 1)),
        ((129, 10), 128, (1, 2)),
        ((1000, 1), 128, (1, 8)),
        ((16, 300), 64, (1, 5)),
        ((0, 0), 128, (128, 1)),
    ],
)
def test_integer_scale(size: tuple[int, int], box: int, scale: tuple[int, int]) -> None:
    assert integer_scale(*size, box) == scale
    up, down = scale
    longest = max(*size, 1)
    assert longest * up <= box or down > 1
    assert -(-longest // down) <= box


def test_thumbnail_repeats_pixels_up_and_picks_them_down() -> None:
    pixels = np.arange(3 * 2 * 4, dtype=np.uint8).reshape(2, 3, 4)
    up = thumbnail(pixels, box=12)  # 4× by repetition: every source pixel becomes a 4×4 block
    assert up.shape == (8, 12, 4)
    for y in range(2):
        for x in range(3):
            assert (up[y * 4 : y * 4 + 4, x * 4 : x * 4 + 4] == pixels[y, x]).all()
    big = np.arange(300 * 20 * 4, dtype=np.uint32).astype(np.uint8).reshape(20, 300, 4)
    down = thumbnail(big, box=128)  # every 3rd pixel: no blending, no new colours
    assert down.shape == (7, 100, 4) and np.array_equal(down, big[::3, ::3])
    assert down.flags["C_CONTIGUOUS"]


def test_encode_png_round_trip() -> None:
    pixels = sprite(4)
    data = encode_png(pixels)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    assert image.mode == "RGBA" and np.array_equal(np.asarray(image), pixels)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding two sprites and a sheet of eight more in a 4×2 grid."""
    root = tmp_path_factory.mktemp("parts")
    assets = root / "assets"
    assets.mkdir()
    save_png(sprite(1), assets / "one.png")
    save_png(sprite(2, 24), assets / "two.png")
    sheet = np.zeros((32, 64, 4), np.uint8)
    for k in range(8):
        row, col = divmod(k, 4)
        sheet[row * 16 : (row + 1) * 16, col * 16 : (col + 1) * 16] = sprite(100 + k)
    save_png(sheet, assets / "sheet.png")
    result = CliRunner().invoke(main, ["--data-dir", str(root / "data"), "add", str(assets)])
    assert result.exit_code == 0, result.output
    return root


class CountingStore(BlobStore):
    """A blob store that counts reads, to see what the thumbnail cache saves."""

    reads = 0

    def read(self, sha256: str) -> bytes:
        self.reads += 1
        return super().read(sha256)


def _items(catalog: Catalog) -> dict[str, list[tuple[int, list[int] | None]]]:
    """File name -> [(item id, bbox)]."""
    out: dict[str, list[tuple[int, list[int] | None]]] = {}
    item_id = 1
    while (info := catalog.item(item_id)) is not None:
        out.setdefault(info["file_name"], []).append((item_id, info["bbox"]))
        item_id += 1
    return out


def test_thumbnails_crop_scale_and_cache(indexed: Path) -> None:
    catalog = Catalog(indexed / "data" / "catalog.sqlite")
    try:
        store = CountingStore(indexed / "data" / "blobs")
        thumbs = Thumbnails(catalog, store, cache_size=2)
        items = _items(catalog)
        [(one, _)] = items["one.png"]
        data, etag = thumbs.png(one)
        native = canonicalize(sprite(1)).pixels
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), thumbnail(native, THUMB_BOX))
        assert thumbs.png(one) == (data, etag) and store.reads == 1  # the second answer comes from the cache
        small, small_tag = thumbs.png(one, 64)
        assert small_tag != etag and Image.open(io.BytesIO(small)).size == thumbnail(native, 64).shape[1::-1]
        assert store.reads == 2
        [(two, _)] = items["two.png"]
        thumbs.png(two)  # the cache holds two: (one, 128) is now the oldest and goes
        assert store.reads == 3
        thumbs.png(one)
        assert store.reads == 4
        tile_id = next(i for i, bbox in items["sheet.png"] if bbox == [16, 0, 32, 16])
        tile_png, _ = thumbs.png(tile_id)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(tile_png))), thumbnail(canonicalize(sprite(101)).pixels))
        with pytest.raises(UnknownItem, match="no item 999999"):
            thumbs.png(999999)
    finally:
        catalog.close()


def test_etag_names_the_pixels_and_the_size(indexed: Path) -> None:
    catalog = Catalog(indexed / "data" / "catalog.sqlite")
    try:
        thumbs = Thumbnails(catalog, BlobStore(indexed / "data" / "blobs"))
        items = _items(catalog)
        one = thumbs.png(items["one.png"][0][0])[1]
        two = thumbs.png(items["two.png"][0][0])[1]
        assert one != two and one.startswith('"') and one.endswith('-128"')
    finally:
        catalog.close()


# --- credits ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://opengameart.org/sites/default/files/Hero%2010000%20%28v2%29.png", "Hero 10000 (v2).png"),
        ("https://opengameart.org/sites/default/files/a%2Bb%20%26%20c.png", "a+b & c.png"),
        ("https://opengameart.org/sites/default/files/tiles%20100%25.zip", "tiles 100%.zip"),
        ("https://opengameart.org/sites/default/files/%C3%A9p%C3%A9e.png", "\u00e9p\u00e9e.png"),
        ("file:///home/me/sprites/monster%2007.png", "monster 07.png"),
        ("https://example.com/a.png?x=1#frag", "a.png"),
        ("https://example.com/", "https://example.com/"),
    ],
)
def test_file_name(url: str, name: str) -> None:
    assert file_name(url) == name


def test_credit_line_full() -> None:
    line = credit_line(
        "Knight & Dragon 1",
        "Pixel Wren",
        ["CC-BY 4.0", "CC-BY-SA 4.0"],
        "https://opengameart.org/content/knight-dragon-1",
        'Credit "Pixel Wren"\n\n  & link back,\tplease.',
        "https://opengameart.org/sites/default/files/knight.png",
    )
    assert line == (
        '"Knight & Dragon 1" by Pixel Wren, licensed CC-BY 4.0 / CC-BY-SA 4.0: '
        'https://opengameart.org/content/knight-dragon-1 — Credit "Pixel Wren" & link back, please.'
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        ((None, None, [], None, None, "file:///art/monster%2007.png"), "monster 07.png"),
        (("Tiles", None, ["CC0"], "https://oga/content/tiles"), '"Tiles", licensed CC0: https://oga/content/tiles'),
        (("Tiles", "Ann", [], None, "  ", None), '"Tiles" by Ann'),
        ((None, None, [], None), "untitled"),
        (
            (None, "Ann", ["OGA-BY 3.0"], None, None, "https://x/f.png"),
            "f.png by Ann, licensed OGA-BY 3.0: https://x/f.png",
        ),
    ],
)
def test_credit_line_with_parts_missing(args: tuple, line: str) -> None:
    assert credit_line(*args) == line


# --- uploads ------------------------------------------------------------------------------------------------


def test_upload_round_trip(tmp_path: Path) -> None:
    uploads = UploadStore(BlobStore(tmp_path / "queries"))
    data = encode_png(sprite(9))
    sha = uploads.put(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert uploads.get(sha) == data
    assert uploads.put(data) == sha  # the same image again: the same id


@pytest.mark.parametrize(
    "bad", ["", "0" * 64, "A" * 64, "a" * 63, "a" * 65, "../" * 21 + "x", "00/00/" + "0" * 58, "zz" * 32]
)
def test_unknown_or_malformed_upload_ids(tmp_path: Path, bad: str) -> None:
    uploads = UploadStore(BlobStore(tmp_path / "queries"))
    uploads.put(b"something")
    assert uploads.get(bad) is None


def test_uppercase_id_of_a_stored_upload_is_refused(tmp_path: Path) -> None:
    uploads = UploadStore(BlobStore(tmp_path / "queries"))
    sha = uploads.put(b"pixels")
    assert uploads.get(sha.upper()) is None and uploads.get(sha) == b"pixels"


def test_prune_keeps_the_newest(tmp_path: Path) -> None:
    uploads = UploadStore(BlobStore(tmp_path / "queries"), keep=3)
    shas = [uploads.put(f"upload {k}".encode()) for k in range(6)]
    for age, sha in enumerate(reversed(shas)):  # upload 5 is the newest, upload 0 the oldest
        os.utime(uploads.store.path(sha), (1_000_000 - age * 10, 1_000_000 - age * 10))
    os.utime(uploads.store.path(shas[0]), (2_000_000, 2_000_000))  # as if uploaded again just now
    assert uploads.prune() == 3
    assert [uploads.get(sha) is not None for sha in shas] == [True, False, False, False, True, True]
    assert uploads.prune() == 0


def test_uploading_again_counts_as_new(tmp_path: Path) -> None:
    uploads = UploadStore(BlobStore(tmp_path / "queries"), keep=1)
    first = uploads.put(b"first")
    os.utime(uploads.store.path(first), (1_000_000, 1_000_000))
    second = uploads.put(b"second")
    os.utime(uploads.store.path(second), (1_000_100, 1_000_100))
    assert uploads.put(b"first") == first  # refreshed to now
    uploads.prune()
    assert uploads.get(first) == b"first" and uploads.get(second) is None


def test_every_hundredth_upload_prunes(tmp_path: Path) -> None:
    uploads = UploadStore(BlobStore(tmp_path / "queries"), keep=5)
    for k in range(99):
        uploads.put(b"%d" % k)
    assert len(list(uploads.store.root.glob("??/??/*"))) == 99
    uploads.put(b"the hundredth")
    assert len(list(uploads.store.root.glob("??/??/*"))) == 5
    assert uploads.get(hashlib.sha256(b"the hundredth").hexdigest()) == b"the hundredth"


def test_prune_keeps_within_the_byte_budget(tmp_path: Path) -> None:
    uploads = UploadStore(BlobStore(tmp_path / "queries"), max_bytes=250)
    shas = [uploads.put(bytes([k]) * 100) for k in range(4)]
    for age, sha in enumerate(reversed(shas)):
        os.utime(uploads.store.path(sha), (1_000_000 - age, 1_000_000 - age))
    assert uploads.get(shas[0]) is not None  # used just now: it stays
    assert uploads.prune() == 2
    assert [uploads.get(sha) is not None for sha in shas] == [True, False, False, True]


def test_an_upload_pruned_meanwhile_is_written_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another thread may prune between the write and the refresh: the upload must still be whole afterwards."""
    uploads = UploadStore(BlobStore(tmp_path / "queries"))
    sha = uploads.put(b"whole image")
    real_put = BlobStore.put
    calls = []

    def put_then_lose_it(store: BlobStore, data: bytes) -> str:
        digest = real_put(store, data)
        if not calls:
            store.path(digest).unlink()  # pruned right after the write
        calls.append(digest)
        return digest

    monkeypatch.setattr(BlobStore, "put", put_then_lose_it)
    assert uploads.put(b"whole image") == sha
    assert uploads.get(sha) == b"whole image" and len(calls) == 2
