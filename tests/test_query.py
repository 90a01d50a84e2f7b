"""Query preparation: background recovery follows the background wherever it winds."""

from __future__ import annotations

import numpy as np

from ogasearch.query import recover_alpha


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
