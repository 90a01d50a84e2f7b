"""The solid colour that replaced a sprite's transparency, found on the image border.

A sprite composited on a solid colour (a screenshot crop, a JPEG on white) lost its alpha, but that colour still
covers much of its border. The pixel descriptor (for opaque stored items) and query preparation both start
from here; each decides for itself how much border share it trusts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

TOLERANCE = (24, 48)  # colour distance (max channel, 0-255) still counted as background: floor and cap
NOISE_FACTOR = 3.0  # the tolerance grows with the noise measured on the border (JPEG)


@dataclass(frozen=True)
class Border:
    colour: np.ndarray  # (3,) mean of the border's most common colour
    tolerance: float  # colour distance still counted as that colour
    share: float  # share of the border within that distance


def border_colour(rgb: np.ndarray) -> Border:
    """The most common colour on the border of an integer (h, w, 3) image, with the tolerance its noise calls for.

    Colours are counted in coarse bins, so JPEG noise does not split the background into many colours.
    """
    ring = np.concatenate((rgb[0], rgb[-1], rgb[1:-1, 0], rgb[1:-1, -1]))
    quantised = ring >> 4
    keys = (quantised[:, 0] << 8) | (quantised[:, 1] << 4) | quantised[:, 2]
    colour = ring[keys == np.bincount(keys).argmax()].mean(axis=0)
    distance = np.abs(ring - colour).max(axis=-1)
    low, high = TOLERANCE
    tolerance = min(low + NOISE_FACTOR * float(distance[distance <= high].mean()), high)
    return Border(colour, tolerance, float((distance <= tolerance).mean()))


def flood_from_border(candidate: np.ndarray) -> np.ndarray:
    """The candidate pixels 4-connected to the image border through candidate pixels: a flood fill in one linear
    pass (a pass per pixel ring would be quadratic, and a winding corridor in a small upload could stall a server)."""
    labels, _ = ndimage.label(candidate)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(labels, edge[edge > 0])
