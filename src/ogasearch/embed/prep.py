"""Input preparation for ImageNet CNNs: pixel-art-aware, and the original system's plain resize.

A 16-px sprite resized to 224 with bilinear filtering becomes a blur; upscaled
by an integer factor with nearest neighbour it keeps its hard pixel edges, which
is what the network can recognise. Both paths return float32 CHW arrays with
ImageNet normalisation.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SIZE = 224
GREY = 128  # neutral background for transparent pixels and padding
MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)


def _normalise(rgb: np.ndarray) -> np.ndarray:
    return ((rgb.astype(np.float32) / 255.0).transpose(2, 0, 1) - MEAN) / STD


def pixel_art_input(rgba: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Nearest upscale by the largest integer factor that fits (area downscale when too big),
    alpha composited on grey, centred on a grey square."""
    h, w = rgba.shape[:2]
    image = Image.fromarray(np.ascontiguousarray(rgba), "RGBA")
    factor = size // max(h, w)
    if factor >= 1:
        image = image.resize((w * factor, h * factor), Image.NEAREST)
    else:
        scale = size / max(h, w)
        image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BOX)
    canvas = Image.new("RGBA", (size, size), (GREY, GREY, GREY, 255))
    canvas.alpha_composite(image, ((size - image.width) // 2, (size - image.height) // 2))
    return _normalise(np.asarray(canvas.convert("RGB")))


def seed_input(rgba: np.ndarray, size: int = SIZE) -> np.ndarray:
    """The original system's preparation: alpha dropped (transparent pixels keep whatever RGB they
    hold), then a plain bilinear resize to size x size."""
    image = Image.fromarray(np.ascontiguousarray(rgba[..., :3]), "RGB").resize((size, size), Image.BILINEAR)
    return _normalise(np.asarray(image))
