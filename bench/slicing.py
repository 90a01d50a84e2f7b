"""Measure tile-sheet slicing against ground truth on the real corpus.

    python bench/slicing.py [CORPUS] [--lpc-sample N] [--sprite-sample N] [--seed S]

CORPUS defaults to ../shared/corpus next to the repository. Four sets:

- DawnLike packed atlas (``thirteen/Dawnlike.png``): truth is every distinct region of ``Dawnlike.atlas``.
  Regions include transparent padding, so truth boxes (and predicted boxes) are trimmed to their
  non-transparent content before comparing.
- DawnLike 16-px grid sheets (labels.csv kind ``sheet_grid16``): truth is every 16x16 cell of the grid.
- LPC 64-px sheets (labels.csv kind ``sheet``, 832x1344, a seeded sample): truth is every 64x64 cell.
- Single sprites (labels.csv kind ``sprite``, a seeded sample): the share sliced as ``single``.

Truth cells go through the slicer's own rules: empty and single-colour cells dropped, a cell identical to an
earlier one (reading order, alpha-0 pixels equal) dropped. A prediction matches a truth box at IoU >= 0.9,
one to one. The cap on tiles per sheet is lifted so that detection, not the cap, is measured. Seconds are
the time spent in ``slice_sheet`` only (not decoding).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _machine import cpu_model
from PIL import Image

from ogasearch.ingest.tiles import Box, SheetSlices, slice_sheet

REPO = Path(__file__).resolve().parents[1]
IOU = 0.9
NO_CAP = 10**9


@dataclass
class Tally:
    """Counts for one set of images."""

    name: str
    sized: bool = False  # whether the truth has one tile size, so "grid size ok" means something
    images: int = 0
    truth: int = 0
    predicted: int = 0
    matched: int = 0
    right_size: int = 0
    seconds: float = 0.0
    kinds: dict[str, int] = field(default_factory=dict)

    def add(self, truth: list[Box], predicted: list[Box], right_size: bool, seconds: float, kind: str) -> None:
        self.images += 1
        self.truth += len(truth)
        self.predicted += len(predicted)
        self.matched += match(truth, predicted)
        self.right_size += right_size
        self.seconds += seconds
        self.kinds[kind] = self.kinds.get(kind, 0) + 1


def rgba(path: Path) -> np.ndarray:
    """The image as (H, W, 4) uint8, the way the ingest stage hands it to the slicer."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGBA"))


def keys(pixels: np.ndarray) -> np.ndarray:
    """Packed RGBA with every alpha-0 pixel equal, for comparing cells."""
    packed = np.ascontiguousarray(pixels).view("<u4")[..., 0]
    return np.where(pixels[..., 3] > 0, packed, 0)


def distinct(packed: np.ndarray, boxes: list[Box]) -> list[Box]:
    """Boxes in reading order minus empty, single-colour and repeated ones (the slicer's rules)."""
    kept, seen = [], set()
    for box in sorted(boxes, key=lambda b: (b[1], b[0])):
        x0, y0, x1, y1 = box
        crop = packed[y0:y1, x0:x1]
        if crop.size == 0 or (crop == crop.flat[0]).all():
            continue
        fingerprint = (x1 - x0, y1 - y0, crop.tobytes())
        if fingerprint not in seen:
            seen.add(fingerprint)
            kept.append(box)
    return kept


def grid_truth(pixels: np.ndarray, size: int) -> list[Box]:
    """Every full size x size cell of the sheet, by the slicer's rules."""
    height, width = pixels.shape[:2]
    cells = [
        (x, y, x + size, y + size) for y in range(0, height - size + 1, size) for x in range(0, width - size + 1, size)
    ]
    return distinct(keys(pixels), cells)


def trim(pixels: np.ndarray, box: Box) -> Box | None:
    """The box shrunk to its non-transparent pixels, or None if it has none."""
    x0, y0, x1, y1 = box
    alpha = pixels[y0:y1, x0:x1, 3] > 0
    if not alpha.any():
        return None
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    return x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1


def atlas_regions(path: Path) -> list[Box]:
    """Region bounds of a libGDX text atlas (``bounds:x,y,w,h`` lines), each distinct box once."""
    bounds = re.findall(r"^\s*bounds:\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+)\s*$", path.read_text(), re.MULTILINE)
    return sorted({(x, y, x + w, y + h) for x, y, w, h in ((int(v) for v in b) for b in bounds)})


def match(truth: list[Box], predicted: list[Box]) -> int:
    """Prediction-truth pairs at IoU >= 0.9, each box used once."""
    if not truth or not predicted:
        return 0
    t = np.array(truth, dtype=np.int64)
    matched, used = 0, set()
    for box in predicted:
        w = np.minimum(t[:, 2], box[2]) - np.maximum(t[:, 0], box[0])
        h = np.minimum(t[:, 3], box[3]) - np.maximum(t[:, 1], box[1])
        inter = np.clip(w, 0, None) * np.clip(h, 0, None)
        area = (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1]) + (box[2] - box[0]) * (box[3] - box[1]) - inter
        scores = inter / area
        for i in np.flatnonzero(scores >= IOU):
            if int(i) not in used:
                used.add(int(i))
                matched += 1
                break
    return matched


def timed_slice(pixels: np.ndarray) -> tuple[SheetSlices, float]:
    start = time.perf_counter()
    result = slice_sheet(pixels, max_tiles=NO_CAP)
    return result, time.perf_counter() - start


def bench_atlas(corpus: Path) -> Tally:
    tally = Tally("DawnLike packed atlas (trimmed)")
    folder = corpus / "dawnlike_atlas" / "thirteen"
    pixels = rgba(folder / "Dawnlike.png")
    trimmed = [trim(pixels, box) for box in atlas_regions(folder / "Dawnlike.atlas")]
    truth = distinct(keys(pixels), [box for box in trimmed if box is not None])
    result, seconds = timed_slice(pixels)
    predicted = [box for box in (trim(pixels, b) for b in result.boxes) if box is not None]
    tally.add(truth, predicted, False, seconds, result.kind)
    return tally


def bench_grid(name: str, paths: list[Path], size: int) -> Tally:
    tally = Tally(name, sized=True)
    for path in paths:
        pixels = rgba(path)
        result, seconds = timed_slice(pixels)
        grid = result.grid
        right = grid is not None and grid.tile_w == size and grid.tile_h == size
        tally.add(grid_truth(pixels, size), result.boxes, right, seconds, result.kind)
    return tally


def bench_sprites(paths: list[Path]) -> Tally:
    tally = Tally("single sprites")
    for path in paths:
        pixels = rgba(path)
        result, seconds = timed_slice(pixels)
        height, width = pixels.shape[:2]
        tally.add([(0, 0, width, height)], result.boxes, False, seconds, result.kind)
    return tally


def labelled(corpus: Path, kind: str, size: tuple[int, int] | None = None) -> list[Path]:
    with open(corpus / "labels.csv", newline="") as handle:
        rows = [
            row
            for row in csv.DictReader(handle)
            if row["kind"] == kind and (size is None or (int(row["width"]), int(row["height"])) == size)
        ]
    return [corpus / row["path"] for row in sorted(rows, key=lambda row: row["path"])]


def machine() -> str:
    return f"{os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}, numpy {np.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--lpc-sample", type=int, default=100, help="LPC sheets to sample (default 100)")
    parser.add_argument("--sprite-sample", type=int, default=1000, help="single sprites to sample")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    corpus: Path = args.corpus
    if not (corpus / "labels.csv").is_file():
        sys.exit(f"no corpus at {corpus} (labels.csv missing)")

    print(f"$ python {shlex.join(['bench/slicing.py', *sys.argv[1:]])}")
    print(f"machine: {machine()}")
    print()

    rng = random.Random(args.seed)
    lpc = labelled(corpus, "sheet", (832, 1344))
    lpc = sorted(rng.sample(lpc, min(args.lpc_sample, len(lpc))))
    sprites = labelled(corpus, "sprite")
    sprites = sorted(rng.sample(sprites, min(args.sprite_sample, len(sprites))))
    tallies = [
        bench_atlas(corpus),
        bench_grid("DawnLike 16-px grid sheets", labelled(corpus, "sheet_grid16"), 16),
        bench_grid(f"LPC 64-px sheets (sample {len(lpc)}, seed {args.seed})", lpc, 64),
    ]
    header = f"| {'set':<40} | images | GT boxes | predicted | precision | recall | grid size ok | seconds |"
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for tally in tallies:
        precision = tally.matched / tally.predicted if tally.predicted else 0.0
        recall = tally.matched / tally.truth if tally.truth else 0.0
        size_ok = f"{tally.right_size}/{tally.images}" if tally.sized else "n/a"
        print(
            f"| {tally.name:<40} | {tally.images:>6} | {tally.truth:>8} | {tally.predicted:>9} "
            f"| {precision:>9.3f} | {recall:>6.3f} | {size_ok:>12} | {tally.seconds:>7.2f} |"
        )
    print()
    for tally in tallies:
        print(f"{tally.name}: kinds {tally.kinds}")
    single = bench_sprites(sprites)
    print(
        f"single sprites (kind=sprite, sample {single.images}, seed {args.seed}): "
        f"{single.kinds.get('single', 0) / max(1, single.images):.3f} sliced as 'single' {single.kinds}, "
        f"{single.seconds:.2f} s"
    )


if __name__ == "__main__":
    main()
