"""Query images into the same canonical form as indexed items.

A user's sprite often arrives flattened: a screenshot crop or a JPEG on a solid
background, without its transparency. Recovering the alpha from a uniform
border before canonicalising makes such a query look like the stored sprite.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ogasearch.ingest.canonical import canonicalize
from ogasearch.ingest.images import decode_image

BACKGROUND_TOLERANCE = 40  # max per-channel distance to the border colour (JPEG noise included)


def recover_alpha(rgba: np.ndarray, tolerance: int = BACKGROUND_TOLERANCE) -> np.ndarray:
    """Make a uniform background connected to the border transparent (images with no transparency only)."""
    if rgba[..., 3].min() < 255 or min(rgba.shape[:2]) < 3:
        return rgba
    rgb = rgba[..., :3].astype(np.int16)
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    colour = np.median(border, axis=0)
    if np.abs(border - colour).max(axis=1).mean() > tolerance / 2 or _corners_differ(rgb, tolerance):
        return rgba
    close = np.abs(rgb - colour).max(axis=2) <= tolerance
    region = _touching_border(close)
    if region.all():
        return rgba
    out = rgba.copy()
    out[region] = 0
    return out


def _touching_border(mask: np.ndarray) -> np.ndarray:
    """The pixels of `mask` 4-connected to the image border: a flood fill from the border in one linear pass
    (a pass per pixel ring would be quadratic, and a winding corridor in a small upload could stall a server)."""
    labels, _ = ndimage.label(mask)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(labels, edge[edge > 0])


def _corners_differ(rgb: np.ndarray, tolerance: int) -> bool:
    corners = np.stack([rgb[0, 0], rgb[0, -1], rgb[-1, 0], rgb[-1, -1]])
    return bool((corners.max(axis=0) - corners.min(axis=0)).max() > tolerance)


def prepare_query(data: bytes, *, max_pixels: int, name: str = "") -> list[np.ndarray]:
    """Canonical pixels of a query image's first frame, as it is and with its background made
    transparent when that changes it (an opaque tile must still match itself); raises ImageError."""
    pixels = decode_image(data, name=name, max_pixels=max_pixels, max_frames=1024).frames[0].pixels
    views = [canonicalize(pixels).pixels]
    recovered = recover_alpha(pixels)
    if recovered is not pixels:
        views.append(canonicalize(recovered).pixels)
    return views
