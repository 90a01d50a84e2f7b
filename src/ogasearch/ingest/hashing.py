"""Exact and perceptual hashes of RGBA pixels.

Meant for Canonical.pixels: an exact hash that is the same for a sprite in any file, format or archive, and a
64-bit perceptual hash for near duplicates (re-encodes, JPEG noise, rescales) compared by Hamming distance.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np
from PIL import Image

from ogasearch.ingest.canonical import clear_transparent

_DCT_SIZE = 32  # image side the DCT runs on
_HASH_SIDE = 8  # lowest frequencies kept: 8 x 8 = 64 bits
_MASK64 = (1 << 64) - 1
_BACKGROUND = 128  # mid-grey: neither black nor white outlines vanish into it


def _dct_matrix(size: int) -> np.ndarray:
    """Orthonormal DCT-II basis: row k holds frequency k sampled at the `size` pixel centres."""
    k = np.arange(size)[:, None]
    n = np.arange(size)[None, :]
    basis = np.cos(np.pi * (2 * n + 1) * k / (2 * size)) * np.sqrt(2 / size)
    basis[0] /= np.sqrt(2)
    return basis


_DCT_LOW = _dct_matrix(_DCT_SIZE)[:_HASH_SIDE]


def pixel_sha256(rgba: np.ndarray) -> str:
    """sha256 hex of the shape and RGBA bytes, ignoring the colour of fully transparent pixels."""
    pixels = clear_transparent(rgba)
    digest = hashlib.sha256(struct.pack("<II", pixels.shape[0], pixels.shape[1]))
    digest.update(pixels.tobytes())
    return digest.hexdigest()


def _luma_on_grey(rgba: np.ndarray) -> Image.Image:
    """Luma (mode F) composited on mid-grey, so transparency looks the same whatever colour the file held."""
    sprite = Image.fromarray(clear_transparent(rgba))
    grey = Image.new("RGBA", sprite.size, (_BACKGROUND,) * 3 + (255,))
    return Image.alpha_composite(grey, sprite).convert("L").convert("F")


def perceptual_hash(rgba: np.ndarray) -> int:
    """64-bit DCT perceptual hash (pHash): one bit per low frequency, set when above their median.

    Area-averaging down (or stretching up) to 32 x 32 first makes it indifferent to scale, and the low
    frequencies survive re-encoding and JPEG noise. The result is unsigned, in [0, 2**64).
    """
    small = np.asarray(_luma_on_grey(rgba).resize((_DCT_SIZE, _DCT_SIZE), Image.Resampling.BOX), dtype=np.float64)
    low = _DCT_LOW @ small @ _DCT_LOW.T
    # Rounding keeps float noise in the near-zero coefficients of flat images from flipping bits.
    low = np.round(low, 6)
    bits = (low > np.median(low)).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes, whether stored signed or unsigned."""
    return ((a ^ b) & _MASK64).bit_count()
