"""Exact and perceptual hashes across encodings, upscales and edits of generated sprites."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ogasearch.ingest.canonical import canonicalize
from ogasearch.ingest.hashing import hamming, perceptual_hash, pixel_sha256
from ogasearch.ingest.images import decode_image

RNG = np.random.default_rng(5)


def encode(rgba: np.ndarray, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgba).save(out, fmt, **params)
    return out.getvalue()


def blocky_sprite(size: int = 64, block: int = 8, colours: int = 5, alpha: bool = True) -> np.ndarray:
    """A sprite of flat blocks of a few colours (one fully transparent), like pixel art drawn at 8 px."""
    palette = RNG.integers(0, 256, (colours, 4), dtype=np.uint8)
    palette[:, 3] = 255
    if alpha:
        palette[0] = (0, 0, 0, 0)
    cells = RNG.integers(0, colours, (size // block, size // block))
    return np.ascontiguousarray(palette[np.kron(cells, np.ones((block, block), dtype=int))])


def test_pixel_sha256_same_across_formats() -> None:
    art = blocky_sprite(16, 1)
    hashes = set()
    for fmt in ("PNG", "GIF", "WEBP", "TGA"):
        data = encode(art, fmt, lossless=True) if fmt == "WEBP" else encode(art, fmt)
        hashes.add(pixel_sha256(decode_image(data, name="x.tga").frames[0].pixels))
    opaque = blocky_sprite(16, 1, alpha=False)
    bmp = decode_image(encode(opaque[..., :3], "BMP")).frames[0].pixels
    assert len(hashes) == 1
    assert pixel_sha256(bmp) == pixel_sha256(opaque)
    assert pixel_sha256(art) in hashes


def test_pixel_sha256_same_after_upscale_and_canonical_form() -> None:
    art = blocky_sprite(16, 1)
    upscaled = np.pad(np.repeat(np.repeat(art, 3, axis=0), 3, axis=1), ((4, 1), (2, 5), (0, 0)))
    assert pixel_sha256(canonicalize(upscaled).pixels) == pixel_sha256(canonicalize(art).pixels)
    assert pixel_sha256(upscaled) != pixel_sha256(art)


def test_pixel_sha256_sees_one_pixel_and_shape() -> None:
    art = blocky_sprite(16, 1, alpha=False)
    edited = art.copy()
    edited[7, 3, 0] ^= 1
    assert pixel_sha256(edited) != pixel_sha256(art)
    assert pixel_sha256(art.reshape(8, 32, 4)) != pixel_sha256(art)


def test_pixel_sha256_ignores_colour_of_transparent_pixels() -> None:
    art = blocky_sprite(16, 1)
    hidden = art.copy()
    hidden[hidden[..., 3] == 0, :3] = 77
    assert pixel_sha256(hidden) == pixel_sha256(art)
    assert len(pixel_sha256(art)) == 64


def test_perceptual_hash_survives_jpeg() -> None:
    art = blocky_sprite(alpha=False)
    decoded = decode_image(encode(art[..., :3], "JPEG", quality=70)).frames[0].pixels
    assert not np.array_equal(decoded, art)
    assert hamming(perceptual_hash(decoded), perceptual_hash(art)) <= 6


def test_perceptual_hash_survives_upscale_and_transparent_colour() -> None:
    art = blocky_sprite()
    upscaled = np.repeat(np.repeat(art, 3, axis=0), 3, axis=1)
    assert hamming(perceptual_hash(upscaled), perceptual_hash(art)) <= 4
    hidden = art.copy()
    hidden[hidden[..., 3] == 0, :3] = 255
    assert perceptual_hash(hidden) == perceptual_hash(art)


def test_perceptual_hash_separates_unrelated_sprites() -> None:
    hashes = [perceptual_hash(blocky_sprite()) for _ in range(8)]
    distances = [hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]]
    assert min(distances) >= 16


@pytest.mark.parametrize("shape", [(1, 1), (3, 200), (32, 32)])
def test_perceptual_hash_is_64_bit_and_stable_on_flat_images(shape: tuple[int, int]) -> None:
    flat = np.full((*shape, 4), (40, 80, 120, 255), dtype=np.uint8)
    value = perceptual_hash(flat)
    assert 0 <= value < 2**64
    assert value == perceptual_hash(flat.copy())
    assert value == perceptual_hash(np.full((*shape, 4), (41, 80, 120, 255), dtype=np.uint8))


def test_hamming() -> None:
    assert hamming(0, 0) == 0
    assert hamming(0b1011, 0b0001) == 2
    assert hamming(2**64 - 1, 0) == 64
    # The same 64 bits stored as a signed integer (as SQLite would) compare equal.
    assert hamming(2**63 + 5, (2**63 + 5) - 2**64) == 0
