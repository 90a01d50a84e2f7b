"""Canonical form: trimming, native scale detection and reduction on generated sprites (and the corpus)."""

from __future__ import annotations

import csv
import random
import time
from pathlib import Path

import numpy as np
import pytest

from ogasearch.ingest.canonical import canonicalize, clear_transparent, native_scale, trim_box
from ogasearch.ingest.images import decode_image

RNG = np.random.default_rng(11)


def native_sprite(size: int = 16, transparent: bool = True) -> np.ndarray:
    """Random native pixel art: runs of every length, so its scale is 1; content touches all four edges."""
    palette = RNG.integers(0, 256, (6, 4), dtype=np.uint8)
    palette[:, 3] = 255
    if transparent:
        palette[0] = (0, 0, 0, 0)
    art = palette[RNG.integers(0, 6, (size, size))]
    art[0, 0] = (255, 0, 0, 255)
    art[-1, -1] = (0, 255, 0, 255)
    return art


def upscale(rgba: np.ndarray, factor: int) -> np.ndarray:
    return np.repeat(np.repeat(rgba, factor, axis=0), factor, axis=1)


def pad(rgba: np.ndarray, top: int, left: int, bottom: int, right: int, colour: tuple[int, ...]) -> np.ndarray:
    height, width = rgba.shape[:2]
    out = np.empty((top + height + bottom, left + width + right, 4), dtype=np.uint8)
    out[:] = colour
    out[top : top + height, left : left + width] = rgba
    return out


def assert_lossless(rgba: np.ndarray) -> None:
    """Whatever scale is found, blowing the canonical pixels back up must give the trimmed content."""
    canonical = canonicalize(rgba)
    x0, y0, x1, y1 = canonical.box
    content = clear_transparent(rgba)[y0:y1, x0:x1]
    assert np.array_equal(upscale(canonical.pixels, canonical.scale), content)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_upscaled_sprite_with_transparent_border(factor: int) -> None:
    art = native_sprite()
    image = pad(upscale(art, factor), 5, 7, 3, 2, (0, 0, 0, 0))
    canonical = canonicalize(image)
    assert canonical.scale == factor
    assert canonical.box == (7, 5, 7 + 16 * factor, 5 + 16 * factor)
    assert np.array_equal(canonical.pixels, clear_transparent(art))
    assert native_scale(image) == factor


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_upscaled_sprite_with_flat_background_border(factor: int) -> None:
    art = native_sprite(transparent=False)
    image = pad(upscale(art, factor), 1, 6, 9, 4, (250, 0, 250, 255))
    canonical = canonicalize(image)
    assert canonical.scale == factor
    assert canonical.box == (6, 1, 6 + 16 * factor, 1 + 16 * factor)
    assert np.array_equal(canonical.pixels, art)


def test_hidden_colour_of_transparent_pixels_is_ignored() -> None:
    image = pad(upscale(native_sprite(), 3), 4, 4, 4, 4, (0, 0, 0, 0))
    transparent = image[..., 3] == 0
    image[transparent, :3] = RNG.integers(0, 256, (int(transparent.sum()), 3), dtype=np.uint8)
    canonical = canonicalize(image)
    assert canonical.scale == 3
    assert canonical.box == (4, 4, 52, 52)
    assert (canonical.pixels[canonical.pixels[..., 3] == 0] == 0).all()


def test_native_sprite_with_flat_regions_is_scale_1() -> None:
    art = upscale(native_sprite(8), 2)  # every run even...
    art[5, 9] = (1, 2, 3, 255)  # ...but one single pixel
    assert native_scale(art) == 1
    assert_lossless(art)


def test_bevelled_button_is_scale_1() -> None:
    # A flat fill inside a one-pixel bevel: the only interior runs are 14 long, the edge runs make it 1.
    button = np.full((16, 16, 4), (90, 90, 200, 255), dtype=np.uint8)
    button[[0, -1], :] = (0, 0, 0, 255)
    button[:, [0, -1]] = (0, 0, 0, 255)
    button[0, :-1] = button[:-1, 0] = (255, 255, 255, 255)
    assert native_scale(button) == 1
    assert canonicalize(button).box == (0, 0, 16, 16)


def test_uniform_and_empty_images_keep_full_box() -> None:
    for colour in ((30, 40, 50, 255), (9, 9, 9, 0)):
        image = np.full((12, 20, 4), colour, dtype=np.uint8)
        canonical = canonicalize(image)
        assert canonical.scale == 1
        assert canonical.box == (0, 0, 20, 12)
        assert canonical.pixels.shape == (12, 20, 4)


def test_scale_is_capped_at_a_divisor() -> None:
    checker = upscale(np.array([[[0, 0, 0, 255], [255, 255, 255, 255]]] * 2, dtype=np.uint8), 32)
    checker[32:] = checker[32:, ::-1]
    scale = native_scale(checker)
    assert scale == 16
    assert_lossless(checker)


def test_trim_box_rules() -> None:
    opaque = native_sprite(transparent=False)
    assert trim_box(opaque) == (0, 0, 16, 16)  # corners disagree: nothing to trim
    # Content in one corner, transparent elsewhere: corners disagree, transparent borders still go.
    corner = pad(opaque, 0, 0, 5, 6, (0, 0, 0, 0))
    assert trim_box(corner) == (0, 0, 16, 16)
    # A flat opaque background with a transparent hole inside the sprite.
    holed = opaque.copy()
    holed[4, 4] = (0, 0, 0, 0)
    assert trim_box(pad(holed, 2, 3, 4, 5, (10, 10, 10, 255))) == (3, 2, 19, 18)


def test_rejects_non_rgba() -> None:
    with pytest.raises(ValueError):
        canonicalize(np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(ValueError):
        canonicalize(np.zeros((0, 4, 4), dtype=np.uint8))


def test_random_images_round_trip_losslessly() -> None:
    for factor in (1, 2, 5):
        for _ in range(5):
            art = RNG.integers(0, 3, (7, 9, 4), dtype=np.uint8) * 100
            assert_lossless(upscale(art, factor))


def test_large_sheet_is_fast() -> None:
    sheet = upscale(RNG.integers(0, 256, (1024, 2048, 4), dtype=np.uint8), 2)  # 4096 x 2048
    start = time.perf_counter()
    canonical = canonicalize(sheet)
    elapsed = time.perf_counter() - start
    assert canonical.scale == 2
    assert elapsed < 1.0, f"canonicalize took {elapsed:.2f} s on 4096x2048"


def _corpus_pngs(corpus: Path, count: int) -> list[Path]:
    with (corpus / "labels.csv").open(newline="") as f:
        paths = sorted(row["path"] for row in csv.DictReader(f) if row["path"].lower().endswith(".png"))
    return [corpus / path for path in random.Random(20240601).sample(paths, count)]


@pytest.mark.corpus
def test_corpus_sample_decodes_and_canonicalizes(corpus: Path) -> None:
    for path in _corpus_pngs(corpus, 200):
        decoded = decode_image(path.read_bytes(), name=path.name)
        for frame in decoded.frames:
            canonical = canonicalize(frame.pixels)
            x0, y0, x1, y1 = canonical.box
            assert 0 <= x0 < x1 <= decoded.width and 0 <= y0 < y1 <= decoded.height
            assert canonical.pixels.shape[:2] == (
                -(-(y1 - y0) // canonical.scale),
                -(-(x1 - x0) // canonical.scale),
            )


@pytest.mark.corpus
def test_corpus_scale2x_atlas_does_not_crash(corpus: Path) -> None:
    # A scale2x-filtered 2x upscale: the filter rounds corners inside blocks, so no exact 2x2 grid exists.
    path = corpus / "dawnlike_atlas/thirteen/Dawnlike2.png"
    if not path.is_file():
        pytest.skip(f"{path} not in this corpus")
    decoded = decode_image(path.read_bytes(), name=path.name)
    canonical = canonicalize(decoded.frames[0].pixels)
    assert canonical.scale in (1, 2)
