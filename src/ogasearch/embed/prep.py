"""Input images for the ImageNet CNNs: pixel-art-aware, or the original system's plain resize.

A CNN trained on photos takes a 224 x 224 RGB image. Resizing a 16-px sprite to that with a smooth filter gives
a blurry blob, and dropping alpha lets the hidden RGB of transparent pixels (usually black) become the
background. `pixel_art` keeps every sprite pixel a crisp square block instead, on a neutral grey that neither dark
nor light outlines disappear into. `seed` reproduces the original system's preprocessing for the benchmark's
baseline row. Both take canonical RGBA pixels; the `*_input` forms add the normalisation a model was trained with.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

SIZE = 224
GREY = 128  # neutral background for transparent pixels and padding
MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1)  # ImageNet statistics (torchvision models)
STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)
IMAGENET = (MEAN, STD)


def _check(rgba: np.ndarray) -> None:
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8 or 0 in rgba.shape:
        raise ValueError(f"expected a non-empty (H, W, 4) uint8 RGBA array, got {rgba.shape} {rgba.dtype}")


def on_grey(rgba: np.ndarray, grey: int = GREY) -> np.ndarray:
    """(h, w, 3) uint8: the image alpha-composited on a solid grey."""
    _check(rgba)
    alpha = rgba[..., 3:].astype(np.uint16)
    blended = rgba[..., :3] * alpha + np.uint16(grey) * (255 - alpha)
    return ((blended + 127) // 255).astype(np.uint8)


def pixel_art(rgba: np.ndarray, size: int = SIZE, grey: int = GREY) -> np.ndarray:
    """(size, size, 3) uint8: the sprite nearest-upscaled by the largest integer factor that fits, centred on grey.

    Images larger than `size` are area-averaged down instead (aspect kept): there, the only resize that neither
    blurs nor drops pixels.
    """
    rgb = on_grey(rgba, grey)
    height, width = rgb.shape[:2]
    longest = max(height, width)
    if longest <= size:
        factor = size // longest
        scaled = np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)
    else:
        new_size = (max(1, round(width * size / longest)), max(1, round(height * size / longest)))
        scaled = np.asarray(Image.fromarray(rgb).resize(new_size, Image.Resampling.BOX))
    canvas = np.full((size, size, 3), grey, dtype=np.uint8)
    top = (size - scaled.shape[0]) // 2
    left = (size - scaled.shape[1]) // 2
    canvas[top : top + scaled.shape[0], left : left + scaled.shape[1]] = scaled
    return canvas


def seed(rgba: np.ndarray, size: int = SIZE) -> np.ndarray:
    """(size, size, 3) uint8, the original system's way: alpha dropped (transparent pixels show whatever RGB they
    hold), then a plain bilinear resize to a square whatever the aspect."""
    _check(rgba)
    rgb = Image.fromarray(np.ascontiguousarray(rgba[..., :3]))
    return np.asarray(rgb.resize((size, size), Image.Resampling.BILINEAR))


def normalised(rgb: np.ndarray, norm: tuple[np.ndarray, np.ndarray] = IMAGENET) -> np.ndarray:
    """(3, h, w) float32 network input: channels first, scaled to [0, 1], minus mean, over std."""
    mean, std = norm
    return (rgb.astype(np.float32).transpose(2, 0, 1) / 255 - mean) / std


def pixel_art_input(rgba: np.ndarray, norm: tuple[np.ndarray, np.ndarray] = IMAGENET) -> np.ndarray:
    """`pixel_art` normalised for a network (ImageNet statistics unless told otherwise)."""
    return normalised(pixel_art(rgba), norm)


def seed_input(rgba: np.ndarray, norm: tuple[np.ndarray, np.ndarray] = IMAGENET) -> np.ndarray:
    """`seed` normalised for a network (ImageNet statistics unless told otherwise)."""
    return normalised(seed(rgba), norm)


PREPS: dict[str, Callable[..., np.ndarray]] = {"pixel": pixel_art_input, "seed": seed_input}
