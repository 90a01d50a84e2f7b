"""Pixel-art canonical form: trimmed content at its native pixel grid.

The same sprite is uploaded native, at 2x/3x/4x, padded with transparent or flat borders, and with arbitrary
RGB left in fully transparent pixels. Reducing every image to the same canonical pixels lets exact and
perceptual hashes match across all of those copies. Everything here is vectorised numpy so that large tile
sheets stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_SCALE = 16  # upscales beyond this are too rare to be worth the risk of a wrong guess


@dataclass
class Canonical:
    scale: int  # native pixel scale: art uploaded at 2x/3x/4x gives 2/3/4; 1 for native art
    box: tuple[int, int, int, int]  # trimmed content (x0, y0, x1, y1) in original pixels, x1/y1 exclusive
    pixels: np.ndarray  # (h, w, 4) uint8: the trimmed content reduced to its native grid


def _check_rgba(rgba: np.ndarray) -> None:
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 4) uint8 RGBA array, got {rgba.shape} {rgba.dtype}")
    if rgba.shape[0] == 0 or rgba.shape[1] == 0:
        raise ValueError(f"empty image {rgba.shape}")


def clear_transparent(rgba: np.ndarray) -> np.ndarray:
    """A C-contiguous copy with the RGB of fully transparent pixels zeroed: invisible colour never counts."""
    _check_rgba(rgba)
    return np.ascontiguousarray(rgba * (rgba[..., 3:] != 0))


def _packed(rgba: np.ndarray) -> np.ndarray:
    """One uint32 per pixel, so that pixel comparisons are single integer comparisons."""
    return rgba.view(np.uint32)[..., 0]


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _trim_box_packed(packed: np.ndarray, alpha: np.ndarray) -> tuple[int, int, int, int]:
    height, width = packed.shape
    full = (0, 0, width, height)
    corners = packed[[0, 0, -1, -1], [0, -1, 0, -1]]
    if (corners == corners[0]).all():
        # A background shared by the four corners: transparent (cleared to 0) or one flat colour.
        box = _bbox(packed != corners[0])
    elif (alpha == 0).any():
        box = _bbox(alpha != 0)
    else:
        return full
    return box or full


def trim_box(rgba: np.ndarray) -> tuple[int, int, int, int]:
    """The content box (x0, y0, x1, y1) without transparent or flat background borders.

    The background is the colour of the four corners when they agree (fully transparent pixels all count as
    one colour); otherwise fully transparent borders are trimmed if there are any. An image that is all
    background keeps its full box, so the result is never empty.
    """
    pixels = clear_transparent(rgba)
    return _trim_box_packed(_packed(pixels), pixels[..., 3])


def _grid_step(packed: np.ndarray, axis: int) -> int | None:
    """gcd of the run lengths along axis (edges included), or None when nothing ever changes along it."""
    size = packed.shape[axis]
    if axis == 1:
        changed = (packed[:, 1:] != packed[:, :-1]).any(axis=0)
    else:
        changed = (packed[1:] != packed[:-1]).any(axis=1)
    cuts = np.flatnonzero(changed) + 1
    if cuts.size == 0:
        return None
    edges = np.concatenate(([0], cuts, [size]))
    return int(np.gcd.reduce(np.diff(edges)))


def _aligned_scale(packed: np.ndarray, max_scale: int) -> int:
    """Largest s <= max_scale such that the array is exactly tiled by s x s flat blocks from its origin."""
    height, width = packed.shape
    step_x = _grid_step(packed, 1)
    step_y = _grid_step(packed, 0)
    if step_x is None and step_y is None:
        return 1  # flat: any scale fits, so claim none
    scale = int(np.gcd(step_x or width, step_y or height))
    # Any divisor of a valid block size is also valid: take the largest one under the cap.
    return next(s for s in range(min(scale, max_scale), 0, -1) if scale % s == 0)


def native_scale(rgba: np.ndarray, max_scale: int = MAX_SCALE) -> int:
    """The integer upscale factor of pixel art: the largest s such that the content is made of s x s blocks.

    The grid is found on the trimmed content, so borders of any width do not misalign it. Including the
    content edges in the run lengths keeps sparse native art (a one-pixel frame around a flat fill) at 1.
    """
    return canonicalize(rgba, max_scale).scale


def canonicalize(rgba: np.ndarray, max_scale: int = MAX_SCALE) -> Canonical:
    """Trim the background, detect the native scale on the content and reduce it to one pixel per block."""
    pixels = clear_transparent(rgba)
    packed = _packed(pixels)
    x0, y0, x1, y1 = _trim_box_packed(packed, pixels[..., 3])
    scale = _aligned_scale(packed[y0:y1, x0:x1], max_scale)
    native = np.ascontiguousarray(pixels[y0:y1:scale, x0:x1:scale])
    return Canonical(scale=scale, box=(x0, y0, x1, y1), pixels=native)
