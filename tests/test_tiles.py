"""Tile-sheet slicing on generated sheets with known cells, and on a few real sheets of the corpus."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ogasearch.ingest.tiles import Box, Grid, SheetSlices, detect_grid, slice_sheet

BACKGROUND = (40, 44, 60, 255)


def tile(rng: np.random.Generator, width: int, height: int, holes: float = 0.3) -> np.ndarray:
    """Random pixel art: a few flat colours, transparent pixels in the outer ring, a solid core.

    Transparent pixels get random RGB, which the slicer must ignore.
    """
    palette = rng.integers(0, 256, size=(4, 3))
    pixels = np.zeros((height, width, 4), dtype=np.uint8)
    pixels[..., :3] = palette[0]
    pixels[..., 3] = 255
    for colour in palette[rng.integers(1, 4, size=3)]:
        x0, y0 = rng.integers(0, width - 2), rng.integers(0, height - 2)
        x1, y1 = rng.integers(x0 + 1, width + 1), rng.integers(y0 + 1, height + 1)
        pixels[y0:y1, x0:x1, :3] = colour
    ring = np.ones((height, width), dtype=bool)
    ring[2:-2, 2:-2] = False
    clear = ring & (rng.random((height, width)) < holes)
    pixels[clear, :3] = rng.integers(0, 256, size=(int(clear.sum()), 3))
    pixels[clear, 3] = 0
    return pixels


def sprite(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A sprite whose content touches all four sides of its box and holds together (a solid cross)."""
    pixels = tile(rng, width, height, holes=0.5)
    pixels[height // 2, :, 3] = 255
    pixels[:, width // 2, 3] = 255
    return pixels


def opaque_tile(rng: np.random.Generator, size: int) -> np.ndarray:
    """A fully opaque tile that never uses the background colour."""
    pixels = tile(rng, size, size, holes=0.0)
    pixels[..., 2] |= 1  # the background's blue (60) is even, so no pixel can equal it
    return pixels


def sheet(
    tiles: list[np.ndarray | None],
    cols: int,
    *,
    spacing: int = 0,
    margin: int = 0,
    fill: tuple[int, int, int, int] = (0, 0, 0, 0),
) -> tuple[np.ndarray, list[Box]]:
    """Tiles laid out on a grid (None leaves a cell empty); the sheet and every cell's box."""
    height, width = next(t for t in tiles if t is not None).shape[:2]
    rows = -(-len(tiles) // cols)
    out = np.zeros(
        (2 * margin + rows * height + (rows - 1) * spacing, 2 * margin + cols * width + (cols - 1) * spacing, 4),
        dtype=np.uint8,
    )
    out[...] = fill
    boxes = []
    for i in range(rows * cols):
        x = margin + (i % cols) * (width + spacing)
        y = margin + (i // cols) * (height + spacing)
        boxes.append((x, y, x + width, y + height))
        if i < len(tiles) and tiles[i] is not None:
            out[y : y + height, x : x + width] = tiles[i]
    return out, boxes


def iou(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_grid_boxes_are_in_reading_order() -> None:
    grid = Grid(16, 24, 2, 3, 1, 2, cols=2, rows=2)
    assert grid.boxes() == [(2, 3, 18, 27), (19, 3, 35, 27), (2, 29, 18, 53), (19, 29, 35, 53)]


def test_touching_16px_tiles() -> None:
    rng = np.random.default_rng(1)
    pixels, boxes = sheet([tile(rng, 16, 16) for _ in range(48)], cols=8)
    assert detect_grid(pixels) == Grid(16, 16, 0, 0, 0, 0, cols=8, rows=6)
    result = slice_sheet(pixels)
    assert result.kind == "grid"
    assert result.boxes == boxes


def test_32px_tiles_with_spacing_and_margin() -> None:
    rng = np.random.default_rng(2)
    pixels, boxes = sheet([tile(rng, 32, 32) for _ in range(20)], cols=5, spacing=1, margin=2)
    assert detect_grid(pixels) == Grid(32, 32, 2, 2, 1, 1, cols=5, rows=4)
    assert slice_sheet(pixels).boxes == boxes


def test_tiles_on_transparent_background_with_gutters() -> None:
    rng = np.random.default_rng(3)
    pixels, boxes = sheet([tile(rng, 24, 24) for _ in range(18)], cols=6, spacing=4, margin=4)
    assert detect_grid(pixels) == Grid(24, 24, 4, 4, 4, 4, cols=6, rows=3)
    assert slice_sheet(pixels).boxes == boxes


def test_tiles_on_opaque_uniform_background_with_gutters() -> None:
    rng = np.random.default_rng(4)
    tiles = [opaque_tile(rng, 16) for _ in range(30)]
    pixels, boxes = sheet(tiles, cols=6, spacing=2, margin=1, fill=BACKGROUND)
    assert (pixels[..., 3] == 255).all()
    assert detect_grid(pixels) == Grid(16, 16, 1, 1, 2, 2, cols=6, rows=5)
    assert slice_sheet(pixels).boxes == boxes


def test_empty_uniform_and_duplicate_cells_are_dropped() -> None:
    rng = np.random.default_rng(5)
    tiles: list[np.ndarray | None] = [tile(rng, 16, 16) for _ in range(40)]
    tiles[3] = None  # empty
    garbage = np.zeros((16, 16, 4), dtype=np.uint8)
    garbage[..., :3] = rng.integers(0, 256, size=(16, 16, 3))
    tiles[9] = garbage  # transparent, whatever its RGB: empty too
    tiles[17] = np.full((16, 16, 4), (200, 30, 30, 255), dtype=np.uint8)  # one colour
    tiles[21] = tiles[5].copy()  # a repeat
    repeat = tiles[6].copy()
    hidden = repeat[..., 3] == 0
    repeat[hidden, :3] = rng.integers(0, 256, size=(int(hidden.sum()), 3))
    tiles[30] = repeat  # a repeat that differs only under transparent pixels
    pixels, boxes = sheet(tiles, cols=8)
    result = slice_sheet(pixels)
    assert result.grid == Grid(16, 16, 0, 0, 0, 0, cols=8, rows=5)
    dropped = {3, 9, 17, 21, 30}
    assert result.boxes == [box for i, box in enumerate(boxes) if i not in dropped]


def test_max_tiles_keeps_the_first_in_reading_order() -> None:
    rng = np.random.default_rng(6)
    pixels, boxes = sheet([tile(rng, 16, 16) for _ in range(48)], cols=8)
    assert slice_sheet(pixels, max_tiles=10).boxes == boxes[:10]


def test_non_square_tiles() -> None:
    rng = np.random.default_rng(7)
    pixels, boxes = sheet([tile(rng, 16, 24) for _ in range(40)], cols=8)
    assert detect_grid(pixels) == Grid(16, 24, 0, 0, 0, 0, cols=8, rows=5)
    assert slice_sheet(pixels).boxes == boxes


def packed(rng: np.random.Generator, width: int, height: int, count: int) -> tuple[np.ndarray, list[Box]]:
    """Sprites of varied sizes at random places, at least 3 px apart."""
    pixels = np.zeros((height, width, 4), dtype=np.uint8)
    taken = np.zeros((height, width), dtype=bool)
    boxes: list[Box] = []
    while len(boxes) < count:
        w, h = (int(v) for v in rng.integers(8, 41, size=2))
        x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        if taken[max(0, y - 3) : y + h + 3, max(0, x - 3) : x + w + 3].any():
            continue
        taken[y : y + h, x : x + w] = True
        pixels[y : y + h, x : x + w] = sprite(rng, w, h)
        boxes.append((x, y, x + w, y + h))
    return pixels, boxes


def test_packed_sheet_gives_sprite_boxes() -> None:
    rng = np.random.default_rng(8)
    pixels, truth = packed(rng, 512, 384, 60)
    result = slice_sheet(pixels)
    assert result.kind == "components"
    assert result.grid is None
    assert len(result.boxes) == len(truth)
    for box in truth:
        assert max(iou(box, found) for found in result.boxes) >= 0.9
    assert result.boxes == sorted(result.boxes, key=lambda b: (b[1], b[0]))


def test_a_sprite_in_pieces_is_one_box() -> None:
    rng = np.random.default_rng(9)
    pixels = np.zeros((64, 96, 4), dtype=np.uint8)
    pixels[10:30, 10:30] = sprite(rng, 20, 20)
    pixels[31:40, 12:28] = sprite(rng, 16, 9)  # 1 px below the first piece: the same sprite
    pixels[20:50, 60:90] = sprite(rng, 30, 30)
    pixels[2:4, 50:52] = (255, 255, 255, 255)  # a speck
    result = slice_sheet(pixels)
    assert result.kind == "components"
    assert result.boxes == [(10, 10, 30, 40), (60, 20, 90, 50)]


def test_large_packed_atlas_is_fast() -> None:
    rng = np.random.default_rng(10)
    pixels = np.zeros((1024, 2048, 4), dtype=np.uint8)
    for y in range(2, 1024 - 18, 18):
        for x in range(2 + (y // 18 % 3) * 5, 2048 - 18, 18):
            pixels[y : y + 16, x : x + 16] = sprite(rng, 16, 16)
    start = time.perf_counter()
    result = slice_sheet(pixels, max_tiles=10_000)
    assert time.perf_counter() - start < 2.0
    assert result.kind == "components"
    assert len(result.boxes) > 5000


@pytest.mark.parametrize("size", [(40, 40), (16, 16), (48, 32)])
def test_single_sprite(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(11)
    width, height = size
    pixels = np.zeros((height, width, 4), dtype=np.uint8)
    pixels[2:-2, 3:-3] = sprite(rng, width - 6, height - 4)
    assert slice_sheet(pixels) == SheetSlices("single", None, [(0, 0, width, height)])


def test_empty_and_tiny_images_are_single() -> None:
    assert slice_sheet(np.zeros((64, 64, 4), dtype=np.uint8)).kind == "single"
    assert slice_sheet(np.full((1, 1, 4), 255, dtype=np.uint8)).kind == "single"
    assert detect_grid(np.zeros((64, 64, 4), dtype=np.uint8)) is None


def test_rejects_other_arrays() -> None:
    with pytest.raises(ValueError):
        slice_sheet(np.zeros((16, 16, 3), dtype=np.uint8))


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("path", "size"),
    [
        ("dawnlike_atlas/original/DawnLike_181/Characters/Player0.png", 16),
        ("dawnlike_atlas/original/DawnLike_181/Items/Potion.png", 16),
        ("dawnlike_atlas/original/DawnLike_181/Objects/Floor.png", 16),
        ("dawnlike_atlas/original/DawnLike_181/Objects/Wall.png", 16),
        ("dawnlike_atlas/original/DawnLike_181/Objects/Tree0.png", 16),
        ("lpc_universal_spritesheet/hair/male/bangs/blue.png", 64),
        ("lpc_universal_spritesheet/facial/female/frenchstache/gold.png", 64),
        ("lpc_universal_spritesheet/torso/shirts/longsleeve/male/brown_longsleeve.png", 64),
    ],
)
def test_real_sheets_give_their_tile_size(corpus: Path, path: str, size: int) -> None:
    with Image.open(corpus / path) as image:
        pixels = np.asarray(image.convert("RGBA"))
    grid = detect_grid(pixels)
    assert grid is not None
    assert (grid.tile_w, grid.tile_h, grid.spacing_x, grid.spacing_y) == (size, size, 0, 0)
    assert (grid.margin_x, grid.margin_y) == (0, 0)
