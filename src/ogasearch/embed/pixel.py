"""`pixel`: a fast, numpy-only descriptor made for pixel art.

ImageNet CNNs see a 16-px sprite as a blurry blob; this descriptor looks at what identifies a sprite instead:
its silhouette, its light/dark structure, the direction of its edges at native scale, and its colours. It is
built to survive what happens to sprites on the web: re-uploads at another scale (the canonical form removes
integer upscales), horizontal flips (every spatial block is exactly mirror-invariant), a solid background in
place of transparency (recovered from the border), bilinear rescaling with JPEG noise (area averaging, soft
binning) and recolours (structure uses hue-free lightness; the hue histogram carries little weight).

Each block is L2-normalised and weighted, so the cosine of two descriptors is the weighted mean of the cosines
of their blocks. A batch is described a few hundred sprites at a time: sprites of similar size are padded to one
canvas and every step runs as one array operation over the whole group.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ogasearch.background import TOLERANCE, border_colour, flood_from_border
from ogasearch.embed.base import normalize, register

GRID = 12  # side of the silhouette and lightness grids
CELLS = 4  # side of the edge-orientation grid
ORIENTATIONS = 8  # unsigned edge directions over [0, pi)
TONE_BINS = 8  # saturation and value histograms
HUE_BINS = 12
ASPECT_BINS = 9  # soft bins over log2(width / height) in [-2, 2]
MAX_SIDE = 256  # larger images are area-reduced first: detail beyond the grids cannot show anyway
GREY = 0.5  # transparency is composited on mid-grey, where neither dark nor light outlines vanish
CHUNK_PIXELS = 1 << 16  # padded pixels described in one group: bounds memory, keeps arrays in cache

BG_BORDER_SHARE = (0.4, 0.7)  # border share of the background colour: no background below, certain above
BG_EDGE_RAMP = 96  # colour distance over which an edge pixel goes from background to opaque

# Block weights, tuned for recall@1 on flipped, re-backgrounded, JPEG-compressed and hue-rotated sprites of the
# shared corpus. Edges at native scale survive all four best. The silhouette counts little on its own: the
# lightness grid already holds it (transparency is grey there), and a recovered background is never exact.
# Hue is the first thing a recolour changes. A palette-size block was tried and dropped: JPEG inflates it.
WEIGHTS = {
    "mask": 0.15,
    "mask_asym": 0.1,
    "light": 0.35,
    "light_asym": 0.3,
    "edges": 1.0,
    "edges_asym": 0.3,
    "tones": 0.35,
    "hue": 0.1,
    "aspect": 0.2,
}
_MIRRORED_ORIENTATION = (-np.arange(ORIENTATIONS)) % ORIENTATIONS  # a flip turns angle t into pi - t


@dataclass
class _View:
    """One way of seeing an image, weighted: opaque images with an uncertain background get two views."""

    image: int  # index in the batch
    weight: float
    rgb: np.ndarray  # (h, w, 3) float32 in [0, 1]
    alpha: np.ndarray  # (h, w) float32 in [0, 1]
    aspect: float  # width / height of the content before any size reduction


@lru_cache(maxsize=4096)
def _area_matrix(size: int, cells: int) -> np.ndarray:
    """(cells, size) weights of each source pixel in each target cell: exact area averaging, rows sum to 1.

    It is symmetric under reversal of both axes, which keeps the resized grids exactly mirror-equivariant.
    """
    step = size / cells
    edges = np.arange(cells + 1) * step
    pixels = np.arange(size)
    overlap = np.minimum(edges[1:, None], pixels + 1) - np.maximum(edges[:-1, None], pixels)
    matrix = (np.clip(overlap, 0, None) / step).astype(np.float32)
    matrix.flags.writeable = False
    return matrix


def _soft_histogram(values: np.ndarray, weights: np.ndarray, bins: int, *, circular: bool = False) -> np.ndarray:
    """(n, bins) histograms of (n, ...) values in bin units, each value split between its two nearest bins.

    Splitting keeps histograms stable under small shifts (JPEG noise, rescaling). Values lie in [0, bins - 1],
    or in [0, bins) when circular.
    """
    count = values.shape[0]
    lower = np.floor(values)
    upper_share = (values - lower) * weights
    lower = lower.astype(np.intp)
    if circular:
        lower %= bins  # a value that rounded up to exactly `bins`
    upper = (lower + 1) % bins if circular else np.minimum(lower + 1, bins - 1)
    offsets = (np.arange(count) * bins).reshape((count,) + (1,) * (values.ndim - 1))
    total = count * bins
    histogram = np.bincount((lower + offsets).ravel(), (weights - upper_share).ravel(), total)
    histogram += np.bincount((upper + offsets).ravel(), upper_share.ravel(), total)
    return histogram.reshape(count, bins)


def _soft_one_hot(values: np.ndarray, bins: int) -> np.ndarray:
    """(n, bins) triangular weights of n values in bin units [0, bins - 1]."""
    return np.clip(1 - np.abs(values[:, None] - np.arange(bins, dtype=np.float32)), 0, None)


def _opened(mask: np.ndarray) -> np.ndarray:
    """Morphological opening with a 2 x 2 square: keeps exactly the pixels covered by an all-true 2 x 2 block."""
    core = mask[:-1, :-1] & mask[1:, :-1] & mask[:-1, 1:] & mask[1:, 1:]
    opened = np.zeros_like(mask)
    opened[:-1, :-1] |= core
    opened[1:, :-1] |= core
    opened[:-1, 1:] |= core
    opened[1:, 1:] |= core
    return opened


def _dilated(mask: np.ndarray) -> np.ndarray:
    """The mask grown by one pixel in the four directions."""
    grown = mask.copy()
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    grown[:, 1:] |= mask[:, :-1]
    grown[:, :-1] |= mask[:, 1:]
    return grown


def _border_background(rgb: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(recovered alpha, confidence in (0, 1]) for an image without transparency, or None when it has no border
    colour to recover.

    A sprite composited on a solid colour (or saved as a JPEG on white) lost its alpha; its trimmed border is
    then mostly one colour. Flooding from the border through pixels near that colour recovers the silhouette
    without eating interior pixels of the same colour. The tolerance follows the noise measured on the border,
    and the confidence rises smoothly with the border share of the colour, so a tile whose border is half one
    colour is described the same way before and after JPEG.
    """
    border = border_colour(rgb)
    lowest, certain = BG_BORDER_SHARE
    confidence = min((border.share - lowest) / (certain - lowest), 1.0)
    if confidence <= 0:
        return None
    pixel_distance = np.abs(rgb - border.colour).max(axis=-1)
    candidate = pixel_distance <= border.tolerance
    reached = flood_from_border(candidate)
    # Enclosed background holes (between legs, inside rings) count too, unless they are single-pixel specks:
    # a 1-px highlight in the background colour stays part of the sprite.
    reached |= _opened(candidate)
    if border.tolerance > TOLERANCE[0]:
        # A noisy border means a resampled or compressed image, whose real features are at least 2 px wide:
        # drop the specks of compression noise left in the background.
        reached = ~_opened(~reached)
    if reached.all():
        return None
    alpha = np.where(reached, np.uint8(0), np.uint8(255))
    # Pixels on the silhouette's edge that are close to the background colour were semi-transparent or
    # blended with the background by resampling: give them a partial alpha.
    edge = _dilated(reached) & ~reached
    alpha[edge] = np.clip((pixel_distance[edge] - border.tolerance) * (255 / BG_EDGE_RAMP), 0, 255)
    return alpha, confidence


def _cropped(rgb: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The box of visible pixels (the whole image when nothing is visible)."""
    rows = np.flatnonzero(alpha.any(axis=1))
    if rows.size == 0:
        return rgb, alpha
    cols = np.flatnonzero(alpha.any(axis=0))
    return rgb[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], alpha[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _reduced(rgb: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float rgb and alpha in [0, 1]; big images area-reduced (premultiplied, so no colour bleeds) to MAX_SIDE."""
    rgb = rgb.astype(np.float32) / 255
    alpha = alpha.astype(np.float32) / 255
    height, width = alpha.shape
    factor = MAX_SIDE / max(height, width)
    if factor >= 1:
        return rgb, alpha
    rows = _area_matrix(height, max(1, round(height * factor)))
    cols = _area_matrix(width, max(1, round(width * factor)))
    planes = np.concatenate((rgb * alpha[..., None], alpha[..., None]), axis=-1).reshape(height, width * 4)
    small = cols @ (rows @ planes).reshape(rows.shape[0], width, 4)
    small_alpha = small[..., 3]
    small_rgb = small[..., :3] / np.maximum(small_alpha, 1e-6)[..., None]
    return np.clip(small_rgb, 0, 1), small_alpha


def _views(index: int, rgba: np.ndarray) -> list[_View]:
    """The weighted views of one image: its own alpha, or for opaque images the recovered background too."""
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8 or 0 in rgba.shape:
        raise ValueError(f"expected a non-empty (H, W, 4) uint8 RGBA array, got {rgba.shape} {rgba.dtype}")
    alpha = rgba[..., 3]
    layers = [(1.0, alpha)]
    if alpha.all():
        rgb = rgba[..., :3].astype(np.int16)
        found = _border_background(rgb)
        if found is not None:
            recovered, confidence = found
            layers = [(confidence, recovered)]
            if confidence < 1:
                layers.append((1 - confidence, alpha))
    views = []
    for weight, layer in layers:
        content_rgb, content_alpha = _cropped(rgba[..., :3], layer)
        height, width = content_alpha.shape
        small_rgb, small_alpha = _reduced(content_rgb, content_alpha)
        views.append(_View(index, weight, small_rgb, small_alpha, width / height))
    return views


def _bucket(size: int) -> int:
    """Canvas side for a group: sizes rounded up so that similar sprites share one canvas."""
    step = 8 if size <= 64 else 32
    return -(-size // step) * step


def _groups(views: list[_View]) -> Iterator[list[_View]]:
    """Views grouped by canvas size, in chunks of at most CHUNK_PIXELS padded pixels."""
    by_canvas: dict[tuple[int, int], list[_View]] = {}
    for view in views:
        height, width = view.alpha.shape
        by_canvas.setdefault((_bucket(height), _bucket(width)), []).append(view)
    for (height, width), members in by_canvas.items():
        step = max(1, CHUNK_PIXELS // (height * width))
        for start in range(0, len(members), step):
            yield members[start : start + step]


def _mirror_blocks(grid: np.ndarray, mirror: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror-invariant halves of (n, ..., w) grids: the symmetric part and the size of the asymmetric part.

    Both are unchanged by a flip, and together they keep nearly everything but the facing direction.
    """
    half = grid.shape[-1] // 2
    count = grid.shape[0]
    return (grid + mirror)[..., :half].reshape(count, -1), np.abs(grid - mirror)[..., :half].reshape(count, -1)


def _describe_group(views: list[_View]) -> np.ndarray:
    """(n, DIM) unit descriptors of views padded to one canvas; padding has zero weight in every block."""
    count = len(views)
    height = max(view.alpha.shape[0] for view in views)
    width = max(view.alpha.shape[1] for view in views)
    rgb = np.zeros((count, height, width, 3), dtype=np.float32)
    alpha = np.zeros((count, height, width), dtype=np.float32)
    grid_rows = np.zeros((count, GRID, height), dtype=np.float32)
    grid_cols = np.zeros((count, GRID, width), dtype=np.float32)
    cell_rows = np.zeros((count, CELLS, height), dtype=np.float32)
    cell_cols = np.zeros((count, CELLS, width), dtype=np.float32)
    for k, view in enumerate(views):
        h, w = view.alpha.shape
        rgb[k, :h, :w] = view.rgb
        alpha[k, :h, :w] = view.alpha
        grid_rows[k, :, :h] = _area_matrix(h, GRID)
        grid_cols[k, :, :w] = _area_matrix(w, GRID)
        cell_rows[k, :, :h] = _area_matrix(h, CELLS)
        cell_cols[k, :, :w] = _area_matrix(w, CELLS)

    high = rgb.max(axis=-1)
    low = rgb.min(axis=-1)
    # Lightness (max + min) / 2 does not change when the hue is rotated; composite it on mid-grey.
    light = alpha * (high + low) / 2 + (1 - alpha) * GREY

    grids = grid_rows[:, None] @ np.stack((alpha, light), axis=1) @ grid_cols[:, None].transpose(0, 1, 3, 2)
    mask_grid = grids[:, 0] - 0.5
    light_grid = grids[:, 1] - grids[:, 1].mean(axis=(1, 2), keepdims=True)
    mask, mask_asym = _mirror_blocks(mask_grid, mask_grid[..., ::-1])
    light_sym, light_asym = _mirror_blocks(light_grid, light_grid[..., ::-1])

    padded = np.pad(light, ((0, 0), (1, 1), (1, 1)), constant_values=GREY)
    dx = padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2]
    dy = padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1]
    magnitude = np.hypot(dx, dy)
    angle = np.mod(np.arctan2(dy, dx), np.pi) * (ORIENTATIONS / np.pi)
    lower = np.floor(angle)
    upper_share = angle - lower
    lower = lower.astype(np.intp)[:, None] % ORIENTATIONS
    orientation = np.zeros((count, ORIENTATIONS, height, width), dtype=np.float32)
    np.put_along_axis(orientation, lower, (magnitude * (1 - upper_share))[:, None], axis=1)
    np.put_along_axis(orientation, (lower + 1) % ORIENTATIONS, (magnitude * upper_share)[:, None], axis=1)
    edge_grid = cell_rows[:, None] @ orientation @ cell_cols[:, None].transpose(0, 1, 3, 2)
    edge_grid = np.sqrt(edge_grid / np.maximum(edge_grid.sum(axis=(1, 2, 3), keepdims=True), 1e-6))
    edges, edges_asym = _mirror_blocks(edge_grid, edge_grid[:, _MIRRORED_ORIENTATION, :, ::-1])

    saturation = (high - low) / np.maximum(high, 1e-6)
    weight = alpha / np.maximum(alpha.sum(axis=(1, 2), keepdims=True), 1e-6)
    tones = np.concatenate(
        (
            _soft_histogram(saturation * (TONE_BINS - 1), weight, TONE_BINS),
            _soft_histogram(high * (TONE_BINS - 1), weight, TONE_BINS),
        ),
        axis=1,
    )
    hues = _soft_histogram(_hue(rgb, high, low) * (HUE_BINS / 6), weight * saturation, HUE_BINS, circular=True)

    blocks = {
        "mask": mask,
        "mask_asym": mask_asym,
        "light": light_sym,
        "light_asym": light_asym,
        "edges": edges,
        "edges_asym": edges_asym,
        "tones": np.sqrt(np.clip(tones, 0, None)),
        "hue": np.sqrt(np.clip(hues, 0, None)),
        "aspect": _soft_one_hot(np.clip(np.log2([view.aspect for view in views]), -2, 2) * 2 + 4, ASPECT_BINS),
    }
    return normalize(np.concatenate([normalize(blocks[name]) * np.sqrt(w) for name, w in WEIGHTS.items()], axis=1))


def _hue(rgb: np.ndarray, high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """HSV hue in [0, 6) sextants (0 for greys, whose hue weight is zero anyway)."""
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    chroma = np.maximum(high - low, 1e-6)
    hue = np.where(
        high == red,
        (green - blue) / chroma,
        np.where(high == green, (blue - red) / chroma + 2, (red - green) / chroma + 4),
    )
    return np.mod(hue, 6)


_BLOCK_DIMS = {
    "mask": GRID * (GRID // 2),
    "mask_asym": GRID * (GRID // 2),
    "light": GRID * (GRID // 2),
    "light_asym": GRID * (GRID // 2),
    "edges": ORIENTATIONS * CELLS * (CELLS // 2),
    "edges_asym": ORIENTATIONS * CELLS * (CELLS // 2),
    "tones": 2 * TONE_BINS,
    "hue": HUE_BINS,
    "aspect": ASPECT_BINS,
}
DIM = sum(_BLOCK_DIMS.values())


class PixelEmbedder:
    """The `pixel` descriptor; it has no options, so every vector stored under `pixel` is comparable."""

    name = "pixel"
    dim = DIM

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        views = [view for index, rgba in enumerate(images) for view in _views(index, rgba)]
        out = np.zeros((len(images), self.dim), dtype=np.float32)
        for group in _groups(views):
            described = _describe_group(group)
            for view, row in zip(group, described, strict=True):
                out[view.image] += view.weight * row
        return normalize(out)


@register("pixel")
def _make_pixel() -> PixelEmbedder:
    return PixelEmbedder()
