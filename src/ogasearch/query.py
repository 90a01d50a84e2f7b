"""Query images into the same canonical form as indexed items.

A user's sprite often arrives flattened: a screenshot crop or a JPEG on a solid
background, without its transparency. Recovering the alpha from the border
colour before canonicalising makes such a query look like the stored sprite.

It also often arrives blurred: scaled up smoothly (bilinear, bicubic) instead of
pixel by pixel, so it has no flat runs for the canonical form to find its native
grid in. Such an upscale is recognised by how well the image is rebuilt from a
reduced copy, and undone: area reduction, then the exact inverse of the blur that
upscaling and reducing leave behind.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ogasearch.background import border_colour, flood_from_border
from ogasearch.ingest.canonical import Canonical, canonicalize
from ogasearch.ingest.images import decode_image

BORDER_SHARE = 0.3  # least share of the border in one colour for it to be taken as background
UPSCALES = (2, 3, 4)  # smooth integer upscales that are undone
UPSCALE_FIT = 0.22  # largest rebuild error, relative to the reduced image's contrast, of a smooth upscale
MIN_REDUCED_SIDE = 8  # smaller reductions are not tried: too little is left to tell sprites apart
MAX_BLURRED_SIDE = 1024  # larger images are not tried: an upscaled sprite is rarely that big


def recover_alpha(rgba: np.ndarray) -> np.ndarray:
    """Make the border colour transparent where it reaches the border (images with no transparency only).

    The colour need not fill the border: a trimmed sprite touches it on every side. Interior pixels of that
    colour stay opaque, so a sprite's own highlights survive.
    """
    if rgba[..., 3].min() < 255 or min(rgba.shape[:2]) < 3:
        return rgba
    rgb = rgba[..., :3].astype(np.int16)
    border = border_colour(rgb)
    if border.share < BORDER_SHARE:
        return rgba
    region = flood_from_border(np.abs(rgb - border.colour).max(axis=-1) <= border.tolerance)
    if region.all():
        return rgba
    out = rgba.copy()
    out[region] = 0
    return out


def _premultiplied(rgba: np.ndarray) -> np.ndarray:
    """Float (h, w, 4) colour times alpha, and alpha: transparent pixels weigh nothing when averaged."""
    planes = rgba.astype(np.float64)
    planes[..., :3] *= planes[..., 3:] / 255
    return planes


def _reduced(planes: np.ndarray, scale: int) -> np.ndarray:
    """Mean of each scale x scale block from the top left corner (a partial last block is dropped)."""
    height, width = planes.shape[0] // scale, planes.shape[1] // scale
    blocks = planes[: height * scale, : width * scale].reshape(height, scale, width, scale, *planes.shape[2:])
    return blocks.mean(axis=(1, 3))


@lru_cache(maxsize=256)
def _bilinear(size: int, scale: int) -> np.ndarray:
    """(size * scale, size) bilinear upscale, pixel centres aligned and edges clamped (as PIL does it)."""
    centres = np.clip((np.arange(size * scale) + 0.5) / scale - 0.5, 0, size - 1)
    lower = np.floor(centres).astype(int)
    upper = np.minimum(lower + 1, size - 1)
    matrix = np.zeros((size * scale, size))
    rows = np.arange(size * scale)
    np.add.at(matrix, (rows, lower), 1 - (centres - lower))
    np.add.at(matrix, (rows, upper), centres - lower)
    return matrix


@lru_cache(maxsize=256)
def _residual_blur(size: int, scale: int) -> np.ndarray:
    """(size, size) blur that a bilinear upscale by `scale` leaves after area reduction by `scale`.

    Each reduced pixel averages samples taken up to half a pixel to either side, so it keeps 1 - 2a of itself
    and takes a from each neighbour (edges repeat).
    """
    offsets = (np.arange(scale) + 0.5) / scale - 0.5
    share = -offsets[offsets < 0].sum() / scale
    blur = np.eye(size) * (1 - 2 * share)
    blur += (np.eye(size, k=1) + np.eye(size, k=-1)) * share
    blur[0, 0] += share
    blur[-1, -1] += share
    return blur


def _lightness(planes: np.ndarray) -> np.ndarray:
    """One channel to test blur on: (max + min) / 2 sees an edge between any two colours that differ in tone."""
    return (planes[..., :3].max(axis=-1) + planes[..., :3].min(axis=-1)) / 2


def blurred_upscales(rgba: np.ndarray) -> list[int]:
    """The factors s by which the image looks smoothly upscaled: reduced by s and scaled back up bilinearly, it
    comes back up to a small error for its contrast. Crisp pixel art loses its one-pixel detail instead."""
    if max(rgba.shape[:2]) > MAX_BLURRED_SIDE:
        return []
    light = _lightness(_premultiplied(rgba))
    found = []
    for scale in UPSCALES:
        height, width = light.shape[0] // scale, light.shape[1] // scale
        if min(height, width) < MIN_REDUCED_SIDE:
            break
        reduced = _reduced(light, scale)
        rebuilt = _bilinear(height, scale) @ reduced @ _bilinear(width, scale).T
        error = np.abs(rebuilt - light[: height * scale, : width * scale]).mean()
        contrast = np.abs(np.diff(reduced, axis=0)).mean() + np.abs(np.diff(reduced, axis=1)).mean()
        if error < UPSCALE_FIT * contrast:
            found.append(scale)
    return found


def deblurred(rgba: np.ndarray, scale: int) -> np.ndarray:
    """The image at 1 / scale of its size, with the blur of a bilinear upscale by `scale` undone."""
    planes = _reduced(_premultiplied(rgba), scale)
    height, width = planes.shape[:2]
    planes = np.linalg.solve(_residual_blur(height, scale), planes.reshape(height, -1)).reshape(planes.shape)
    planes = np.linalg.solve(_residual_blur(width, scale), planes.transpose(1, 0, 2).reshape(width, -1))
    planes = np.clip(planes.reshape(width, height, 4).transpose(1, 0, 2), 0, 255)
    alpha = planes[..., 3:]
    planes[..., :3] *= 255 / np.maximum(alpha, 1e-6)
    return np.rint(np.clip(planes, 0, 255)).astype(np.uint8)


def _views(pixels: np.ndarray) -> list[Canonical]:
    """The image as it is, and with its background made transparent when that changes it (an opaque tile must
    still match itself)."""
    views = [canonicalize(pixels)]
    recovered = recover_alpha(pixels)
    if recovered is not pixels:
        views.append(canonicalize(recovered))
    return views


def prepare_query(data: bytes, *, max_pixels: int, name: str = "") -> list[np.ndarray]:
    """Canonical pixels of a query image's first frame: as it is, with its background recovered, and undone from
    each smooth upscale it looks like (art upscaled pixel by pixel needs none); raises ImageError."""
    pixels = decode_image(data, name=name, max_pixels=max_pixels, max_frames=1024).frames[0].pixels
    views = _views(pixels)
    if views[0].scale == 1:
        for scale in blurred_upscales(pixels):
            views += _views(deblurred(pixels, scale))
    return [view.pixels for view in views]
