"""Query preparation: background recovery follows the background wherever it winds and wherever it touches the
border; smooth upscales are recognised and undone. All on generated images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from test_embed import make_sprite, on_colour

from ogasearch.ingest.canonical import canonicalize
from ogasearch.query import blurred_upscales, deblurred, prepare_query, recover_alpha

WHITE = (255, 255, 255)
MAX_PIXELS = 1 << 24


def encoded(rgba: np.ndarray, fmt: str = "PNG", **options: object) -> bytes:
    image = Image.fromarray(rgba, "RGBA")
    buffer = io.BytesIO()
    (image.convert("RGB") if fmt == "JPEG" else image).save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg(rgba: np.ndarray) -> np.ndarray:
    """The image saved as JPEG quality 70 and decoded again (opaque)."""
    rgb = np.asarray(Image.open(io.BytesIO(encoded(rgba, "JPEG", quality=70))).convert("RGB"))
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])


def smooth_upscale(rgba: np.ndarray, scale: int, resample: Image.Resampling = Image.Resampling.BILINEAR) -> np.ndarray:
    image = Image.fromarray(rgba, "RGBA")
    return np.asarray(image.resize((image.width * scale, image.height * scale), resample))


def trimmed_sprites(count: int, seed: int) -> list[np.ndarray]:
    """Sprites cut to their content, so they touch their border on every side."""
    rng = np.random.default_rng(seed)
    return [canonicalize(make_sprite(rng)).pixels for _ in range(count)]


def transparent_agreement(recovered: np.ndarray, sprite: np.ndarray) -> float:
    return float(((recovered[..., 3] == 0) == (sprite[..., 3] == 0)).mean())


def test_recover_alpha_finds_the_background_of_a_sprite_touching_its_border() -> None:
    """A trimmed sprite leaves only part of its border to the background, and JPEG makes that part noisy."""
    for sprite in trimmed_sprites(20, seed=4):
        flat = on_colour(sprite, WHITE)
        assert transparent_agreement(recover_alpha(flat), sprite) == 1.0
        assert transparent_agreement(recover_alpha(jpeg(flat)), sprite) > 0.95


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_a_smooth_upscale_is_recognised_and_undone(scale: int) -> None:
    rng = np.random.default_rng(scale)
    for _ in range(8):
        sprite = on_colour(make_sprite(rng), WHITE)
        blurred = smooth_upscale(sprite, scale)
        assert scale in blurred_upscales(blurred)
        assert scale in blurred_upscales(jpeg(blurred))
        restored = deblurred(blurred, scale)
        assert restored.shape == sprite.shape
        assert np.abs(restored.astype(int) - sprite).mean() < 0.5  # the upscale's own rounding is all that is left


def test_undoing_a_smooth_upscale_keeps_transparency() -> None:
    sprite = make_sprite(np.random.default_rng(1))
    restored = deblurred(smooth_upscale(sprite, 2), 2)
    assert np.abs(restored[..., 3].astype(int) - sprite[..., 3]).mean() < 1
    opaque = sprite[..., 3] == 255
    assert np.abs(restored[..., :3].astype(int) - sprite[..., :3])[opaque].mean() < 1


def test_crisp_pixel_art_is_not_taken_for_a_smooth_upscale() -> None:
    rng = np.random.default_rng(9)
    for _ in range(30):
        flat = on_colour(make_sprite(rng), WHITE)
        assert blurred_upscales(flat) == []
        assert blurred_upscales(jpeg(flat)) == []  # JPEG noise at the native scale is no upscale
    assert blurred_upscales(np.full((64, 64, 4), 200, np.uint8)) == []  # flat: nothing to tell


def test_too_small_a_reduction_is_not_tried() -> None:
    noise = np.random.default_rng(2).integers(0, 256, (10, 10, 4), dtype=np.uint8)
    noise[..., 3] = 255
    assert blurred_upscales(smooth_upscale(noise, 2)) == [2]
    assert blurred_upscales(smooth_upscale(noise[:7, :7], 2)) == []  # 7 px left: too little to tell sprites apart


def test_a_blurred_jpeg_query_gets_a_view_at_the_sprites_own_size() -> None:
    for sprite in trimmed_sprites(10, seed=5):
        query = encoded(smooth_upscale(on_colour(sprite, WHITE), 2), "JPEG", quality=70)
        views = prepare_query(query, max_pixels=MAX_PIXELS)
        assert any(view.shape == sprite.shape for view in views)


def test_crisp_queries_get_no_undone_upscale() -> None:
    for sprite in trimmed_sprites(10, seed=6):
        assert [v.shape for v in prepare_query(encoded(sprite), max_pixels=MAX_PIXELS)] == [sprite.shape]
        nearest = np.repeat(np.repeat(sprite, 3, axis=0), 3, axis=1)  # the canonical form undoes this one
        assert [v.shape for v in prepare_query(encoded(nearest), max_pixels=MAX_PIXELS)] == [sprite.shape]


def corridor(size: int) -> np.ndarray:
    """White background snaking between black walls, each wall open at alternating ends, on an opaque image."""
    rgba = np.full((size, size, 4), 255, np.uint8)
    for row in range(2, size - 2, 4):
        rgba[row, 2 : size - 2, :3] = 0
        gap = size - 3 if (row // 4) % 2 == 0 else 2
        rgba[row, gap, :3] = 255
    return rgba


def test_background_is_followed_through_a_winding_corridor() -> None:
    rgba = corridor(120)
    rgba[60:62, 60:62, :3] = 255  # a white patch walled in on every side stays: it is not background
    rgba[59, 59:63, :3] = rgba[62, 59:63, :3] = rgba[59:63, 59, :3] = rgba[59:63, 62, :3] = 0
    out = recover_alpha(rgba)
    white = (rgba[..., :3] == 255).all(axis=2)
    enclosed = np.zeros_like(white)
    enclosed[60:62, 60:62] = True
    assert (out[..., 3][white & ~enclosed] == 0).all()
    assert (out[..., 3][~white | enclosed] == 255).all()


def test_a_large_corridor_is_cleared_in_one_pass() -> None:
    out = recover_alpha(corridor(1000))  # a pass per pixel ring took minutes on this one
    assert (out[..., 3] == 0).mean() > 0.7
