"""Cut tile sheets into tiles, so that a query tile finds the sheet it came from.

Pure functions on an ``(H, W, 4)`` uint8 RGBA array. Background is every pixel with alpha 0 whatever its RGB;
an image with no transparency uses the colour that dominates its border instead, if one does. Three outcomes:

- ``grid``: a regular grid of cells, read from the pixels one axis at a time:
  1. narrow background gutters on a regular period give tile size, spacing and margin exactly;
  2. else each line between two columns is scored by how little content carries on across it (the median
     over bands of rows, so one odd region does not hide the grid); the common tile sizes and the sizes
     that divide the image are tried, the best is kept if its lines clearly beat ordinary lines, and it is
     walked down to a divisor when the divisor's extra lines are boundaries too or the content repeats at
     the divisor's shift (seamless autotiles);
  3. else, for sparse sheets where every line is clean, the size that holds each run of content in one
     cell at one offset;
  4. else a common size at which the content clearly repeats.
  An axis without a grid takes the other axis's size when its lines lean that way (tiles are mostly
  square), or is one cell high or wide (a strip of frames).
- ``components``: an irregular sheet (a packed atlas, sprites at arbitrary positions): the boxes of the
  8-connected groups of non-background pixels, with pieces within a pixel merged and specks dropped.
- ``single``: not a sheet; the whole image is the only item.

Empty and single-colour cells are dropped and a cell identical to an earlier one is kept once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1), exclusive x1/y1, in the sheet's pixel coordinates

# Common pixel-art tile sizes: always tried, preferred when gutters leave the cell size ambiguous, and the only
# sizes taken on repetition alone.
PREFERRED_SIZES = (8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 72, 80, 96, 128, 192, 256)
MIN_TILE = 8
# An opaque image's border colour is its background if it covers this share of the border.
BORDER_BACKGROUND_SHARE = 0.5
# A period is a grid when its lines score this much above the ordinary lines near content.
GRID_MARGIN = 0.15
# A finer period is kept when its extra lines score this much, and this much above ordinary lines near content.
FINER_SCORE = 0.3
FINER_CONTRAST = 0.25
# ... and the lines at each place inside a coarse cell must score this on their own.
FINER_WORST = 0.25
# The other axis's size is taken for an axis without a grid when its lines score this much above ordinary.
SQUARE_MARGIN = 0.05
# A finer size must split content: coarse cells with content hold this many parts on average that have
# content on at least 1/SUBCELL_FILL of their lines.
FINER_SPLIT = 1.5
SUBCELL_FILL = 4
# ... or the content must repeat at its shift: share of equal detailed pixels, over at least this share of
# them, this much more than half a size further, and within this much of the coarse shift.
REPEAT_RATE = 0.3
REPEAT_OVERLAP = 0.3
REPEAT_CONTRAST = 0.12
REPEAT_SLACK = 0.3
# A common size is taken on repetition alone (no boundary lines) when the content repeats this well there
# (over this share of the detailed pixels), this much more than half a size further, and its lines score at
# most this much below ordinary ones.
REPEAT_STRONG = 0.5
REPEAT_STRONG_OVERLAP = 0.25
REPEAT_STRONG_CONTRAST = 0.25
REPEAT_LINE_SLACK = 0.1
# Rows sampled when measuring repetition on a large sheet.
REPEAT_ROWS = 512
# Sparse sheets: this share of cells must start their content at one offset (give or take this share of the
# size: animation frames sway), and this share of the cells between the first and last with content must
# have some.
RUN_ALIGNED = 0.6
RUN_JITTER = 0.125
RUN_OCCUPIED = 0.6
# Pseudo-lines of ordinary score added to every mean, and the fewest lines that make a grid: one clean line
# between two sprites is not a grid.
PRIOR_LINES = 1
MIN_LINES = 2
# Score handicaps of a grid with a leading margin, and of one that leaves a partial cell at the end.
PHASE_PENALTY = 0.15
FIT_PENALTY = 0.15
# A grid must agree with the sheet's separate sprites (when there are at least AGREE_MIN_SPRITES of about a
# cell's size): at most this share straddle cell lines (a box edge within AGREE_EDGE_SLACK of a size, at most
# AGREE_EDGE_PX, from a cell edge counts as on it), and cells with sprites hold at most AGREE_PER_CELL of them
# on average.
AGREE_MIN_SPRITES = 2
AGREE_STRADDLING = 0.4
AGREE_EDGE_SLACK = 0.125
AGREE_EDGE_PX = 3
AGREE_PER_CELL = 3.0
# Pieces closer than this many pixels belong to the same sprite; atlases pad sprites by 2 px or more.
MERGE_GAP = 1
# A sprite with fewer pixels than this share of a min_tile square is a speck.
SPECK_SHARE = 0.25
# Rows per band when scoring a column line (and columns per band for a row line).
BAND = 16
# A single-cell axis is allowed next to a split axis (a strip of frames) when the cell's sides stay within
# this ratio and the strip has at least MIN_STRIP cells: two halves of one sprite are not a strip.
MAX_ASPECT = 2
MIN_STRIP = 3


@dataclass(frozen=True)
class Grid:
    """A regular grid: ``cols`` x ``rows`` cells of ``tile_w`` x ``tile_h``, after a margin, with spacing."""

    tile_w: int
    tile_h: int
    margin_x: int
    margin_y: int
    spacing_x: int
    spacing_y: int
    cols: int
    rows: int

    def boxes(self) -> list[Box]:
        """Every cell's box in reading order (row by row)."""
        return [
            (x, y, x + self.tile_w, y + self.tile_h)
            for y in _starts(self.margin_y, self.tile_h, self.spacing_y, self.rows)
            for x in _starts(self.margin_x, self.tile_w, self.spacing_x, self.cols)
        ]


@dataclass
class SheetSlices:
    """How a sheet was cut, and the tiles worth indexing."""

    kind: str  # 'grid' | 'components' | 'single' (not a sheet: the whole image is the only item)
    grid: Grid | None
    boxes: list[Box]  # kept tiles, after dropping empty/uniform cells and de-duplicating identical cells


@dataclass(frozen=True)
class _AxisFit:
    """The grid along one axis: cell size, spacing, margin and cell count."""

    size: int
    spacing: int
    margin: int
    count: int


def detect_grid(rgba: np.ndarray) -> Grid | None:
    """The tile grid of a sheet, or None when the pixels show no regular grid."""
    key, fg = _pixel_keys(rgba)
    return _detect_grid(key, fg, MIN_TILE)


def slice_sheet(rgba: np.ndarray, *, max_tiles: int = 2048, min_tile: int = MIN_TILE) -> SheetSlices:
    """Cut a sheet into the tiles worth indexing: grid cells, else sprite boxes, else the whole image."""
    height, width = rgba.shape[:2]
    whole = SheetSlices("single", None, [(0, 0, width, height)])
    if width < 2 * min_tile and height < 2 * min_tile:
        return whole
    key, fg = _pixel_keys(rgba)
    grid = _detect_grid(key, fg, min_tile)
    if grid is not None:
        boxes = _distinct_cells(key, grid, max_tiles)
        if len(boxes) >= 2:
            return SheetSlices("grid", grid, boxes)
    boxes = _distinct_boxes(key, _sprite_boxes(fg, min_tile), max_tiles)
    if len(boxes) >= 2:
        return SheetSlices("components", None, boxes)
    return whole


def _starts(margin: int, size: int, spacing: int, count: int) -> range:
    return range(margin, margin + count * (size + spacing), size + spacing)


def _pixel_keys(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's RGBA packed into a uint32 with background as 0, and the foreground mask.

    Zeroing the background makes transparent pixels equal whatever RGB they carry, so empty, uniform and
    duplicate cells compare by plain equality.
    """
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 4) uint8 array, got {rgba.shape} {rgba.dtype}")
    key = np.ascontiguousarray(rgba).view("<u4")[..., 0]
    fg = rgba[..., 3] > 0
    if fg.all():
        border = np.concatenate([key[0], key[-1], key[1:-1, 0], key[1:-1, -1]])
        values, counts = np.unique(border, return_counts=True)
        top = counts.argmax()
        if counts[top] >= BORDER_BACKGROUND_SHARE * border.size:
            fg = key != values[top]
    return np.where(fg, key, 0).astype(np.uint32), fg


# --- grid detection ---------------------------------------------------------------------------------------


def _detect_grid(key: np.ndarray, fg: np.ndarray, min_tile: int) -> Grid | None:
    """Fit each axis on its own, then check that the cells make a plausible sheet.

    When only one axis shows a grid, the other gets the same size if its lines lean that way at all:
    most pixel-art tiles are square, and touching sprites can hide one axis's boundaries.
    """
    height, width = fg.shape
    if not fg.any():
        return None
    informative = _informative(key, fg)
    axis_x = _Axis(key, fg, informative) if width >= 2 * min_tile else None
    axis_y = _Axis(key.T, fg.T, informative.T) if height >= 2 * min_tile else None
    fit_x = _fit_axis(axis_x, min_tile) if axis_x else None
    fit_y = _fit_axis(axis_y, min_tile) if axis_y else None
    if fit_x is None and fit_y is not None:
        fit_x = (_square_fit(axis_x, fit_y) if axis_x else None) or _whole_axis(width, fit_y)
    elif fit_y is None and fit_x is not None:
        fit_y = (_square_fit(axis_y, fit_x) if axis_y else None) or _whole_axis(height, fit_x)
    if fit_x is None or fit_y is None or fit_x.count * fit_y.count < 2:
        return None
    grid = Grid(
        fit_x.size, fit_y.size, fit_x.margin, fit_y.margin, fit_x.spacing, fit_y.spacing, fit_x.count, fit_y.count
    )
    return grid if _sprites_agree(fg, grid, min_tile) else None


def _sprites_agree(fg: np.ndarray, grid: Grid, min_tile: int) -> bool:
    """Whether the separate sprites of the sheet sit in the grid's cells, a few to a cell at most.

    A packed sheet of loose sprites can show a chance period; its sprites then straddle the cell lines, or
    crowd several to a big cell. Sprites up to two cells wide and high are checked: one counts as fitting
    when it lies in one cell or its box runs from cell line to cell line (touching tiles). Bigger pieces are
    blocks of touching tiles and say nothing. Each axis is judged on its own: a sprite two cells wide in one
    row fits when its left and right run from cell line to cell line.
    """
    boxes = np.array(_sprite_boxes(fg, min_tile), dtype=np.int64).reshape(-1, 4)
    x0, y0, x1, y1 = boxes.T
    small = (x1 - x0 <= 2 * grid.tile_w) & (y1 - y0 <= 2 * grid.tile_h)
    if small.sum() < AGREE_MIN_SPRITES:
        return True
    col_x = _on_grid(x0, x1, grid.margin_x, grid.tile_w, grid.spacing_x)
    row_y = _on_grid(y0, y1, grid.margin_y, grid.tile_h, grid.spacing_y)
    inside = (col_x[0] >= 0) & (row_y[0] >= 0)
    straddling = small & ~(((col_x[0] >= 0) | col_x[1]) & ((row_y[0] >= 0) | row_y[1]))
    if straddling.sum() > AGREE_STRADDLING * small.sum():
        return False
    cells = row_y[0][small & inside] * grid.cols + col_x[0][small & inside]
    return len(cells) == 0 or len(cells) <= AGREE_PER_CELL * len(np.unique(cells))


def _on_grid(
    start: np.ndarray, stop: np.ndarray, margin: int, size: int, spacing: int
) -> tuple[np.ndarray, np.ndarray]:
    """For spans [start, stop) along an axis: the cell holding each whole span (else -1), and whether both
    ends lie within a few pixels of a cell edge."""
    pitch = size + spacing
    cell = (start - margin) // pitch
    whole = np.where(cell == (stop - 1 - margin) // pitch, cell, -1)
    slack = min(AGREE_EDGE_PX, max(1, round(size * AGREE_EDGE_SLACK)))

    def near_edge(v: np.ndarray) -> np.ndarray:
        offset = (v - margin) % pitch
        return (offset <= slack) | (offset >= pitch - slack) | (np.abs(offset - size) <= slack)

    return whole, near_edge(start) & near_edge(stop)


def _square_fit(axis: _Axis, other: _AxisFit) -> _AxisFit | None:
    """The other axis's cell size on this axis, if its lines score above ordinary ones at all.

    Only next to a real run of cells (MIN_STRIP): two halves of one sprite say nothing about the other axis.
    """
    size = other.size
    if other.spacing or other.count < MIN_STRIP or axis.length // size < 2:
        return None
    lines = axis.separating(axis.grid(size, 0), size)
    if len(lines) == 0 or axis.mean(lines) < axis.ordinary + SQUARE_MARGIN:
        return None
    return _AxisFit(size, 0, 0, axis.length // size)


def _whole_axis(length: int, other: _AxisFit) -> _AxisFit | None:
    """One cell across a whole axis (a strip of frames), if the cells stay tile-shaped and there are a few."""
    if length > MAX_ASPECT * other.size or other.size > MAX_ASPECT * length or other.count < MIN_STRIP:
        return None
    return _AxisFit(length, 0, 0, 1)


def _informative(key: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """Foreground pixels that differ from their left or upper neighbour: flat areas repeat at any shift."""
    changed = np.zeros(fg.shape, dtype=bool)
    changed[:, 1:] |= key[:, 1:] != key[:, :-1]
    changed[1:, :] |= key[1:, :] != key[:-1, :]
    return changed & fg


def _true_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and (exclusive) ends of the runs of True in a 1-D mask."""
    padded = np.concatenate([[0], mask.astype(np.int8), [0]])
    change = np.diff(padded)
    return np.flatnonzero(change == 1), np.flatnonzero(change == -1)


def _line_scores(key: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """How much each line between columns x-1 and x looks like a cell boundary, in [0, 1]; index x-1.

    Per band of BAND rows: the share of the rows with content beside the line where that content does not
    carry on across it (carrying on in the same colour counts fully, in another colour half: touching
    tiles rarely match at their seam). Shares, not counts, so that the thin top of a sprite does not look
    like a boundary. A line's score is the median over the bands where it has content beside it, so that
    one odd region (a text box, a big sprite) does not hide the grid elsewhere; through empty space, 1.
    """
    pad = -fg.shape[0] % BAND
    if pad:
        fg = np.pad(fg, ((0, pad), (0, 0)))
        key = np.pad(key, ((0, pad), (0, 0)))
    left, right = fg[:, :-1], fg[:, 1:]
    both = left & right
    same = both & (key[:, 1:] == key[:, :-1])
    bands = (-1, BAND, fg.shape[1] - 1)
    active = (left | right).reshape(bands).sum(axis=1, dtype=np.float64)
    carried = same.reshape(bands).sum(axis=1) + 0.5 * (both & ~same).reshape(bands).sum(axis=1)
    share = np.where(active > 0, 1.0 - carried / np.maximum(active, 1.0), np.nan)
    scores = np.ones(share.shape[1])
    seen = (active > 0).any(axis=0)
    if seen.any():
        scores[seen] = np.nanmedian(share[:, seen], axis=0)
    return scores


class _Axis:
    """One axis of a sheet seen along its columns (transposed arrays give the rows), with the evidence.

    Only lines with content within one cell on both sides are evidence: a line in empty space says nothing
    about the grid, so a sparse sheet is not cut finer than its sprites.
    """

    def __init__(self, key: np.ndarray, fg: np.ndarray, informative: np.ndarray) -> None:
        step = max(1, fg.shape[0] // REPEAT_ROWS)
        self.key, self.fg, self.informative = key[::step], fg[::step], informative[::step]
        self.length = fg.shape[1]
        self.filled = fg.any(axis=0)
        self.starts, self.ends = _true_runs(self.filled)
        self.lead = int(self.starts[0])
        self.scores = _line_scores(key, fg)
        self.ordinary = float(self.scores[self.filled[1:] | self.filled[:-1]].mean())
        self._filled_before = np.concatenate([[0], np.cumsum(self.filled)])

    def grid(self, size: int, phase: int) -> np.ndarray:
        """Interior lines (0 < x < length) of cells of ``size`` starting at ``phase``."""
        return np.arange(phase if phase > 0 else size, self.length, size)

    def content(self, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
        """Whether each span [start, stop) of lines has content."""
        before = self._filled_before
        return before.take(stop, mode="clip") > before.take(start, mode="clip")

    def separating(self, lines: np.ndarray, size: int) -> np.ndarray:
        """The lines with content within ``size`` on both sides."""
        return lines[self.content(lines - size, lines) & self.content(lines, lines + size)]

    def mean(self, lines: np.ndarray) -> float:
        """Mean line score, shrunk towards an ordinary line so that a few lucky lines do not make a grid."""
        return float((self.scores[lines - 1].sum() + PRIOR_LINES * self.ordinary) / (len(lines) + PRIOR_LINES))

    def repeat(self, shift: int) -> tuple[float, float]:
        """How often a detailed pixel equals the pixel ``shift`` further on, and how many pairs there were.

        Autotiles and animation frames repeat at the tile period even where no line separates them.
        """
        if shift >= self.length:
            return 0.0, 0.0
        fg, key, informative = self.fg, self.key, self.informative
        pairs = fg[:, :-shift] & fg[:, shift:] & (informative[:, :-shift] | informative[:, shift:])
        count = int(pairs.sum())
        if count == 0:
            return 0.0, 0.0
        equal = int((pairs & (key[:, :-shift] == key[:, shift:])).sum())
        return equal / count, count / max(1, int(informative.sum()))

    def split(self, size: int, phase: int, divisor: int) -> float:
        """Mean number of well-filled sub-cells of ``divisor`` in the cells of ``size`` that have any.

        A sub-cell counts when content fills a quarter of its lines: the end of a sprite spilling over a
        line is not a tile.
        """
        before = self._filled_before
        cells = np.arange(phase, self.length - size + 1, size)
        filled = [before[cells + i + divisor] - before[cells + i] for i in range(0, size, divisor)]
        counts = (np.stack(filled) * SUBCELL_FILL >= divisor).sum(axis=0)
        return float(counts[counts > 0].mean()) if (counts > 0).any() else 0.0


def _fit_axis(axis: _Axis, min_tile: int) -> _AxisFit | None:
    """The grid along one axis, or None for no split.

    Gutters, else boundary lines, else run positions; a common size at which the content clearly repeats
    replaces no fit or a fit of an uncommon size.
    """
    length = axis.length
    gutters = _gutter_fit(axis.starts, axis.ends, length, min_tile)
    if gutters is not None:
        return gutters
    sizes = {t for t in PREFERRED_SIZES if t < length}
    sizes |= {d for d in range(min_tile, length // 2 + 1) if length % d == 0}
    pitch = _run_pitch(axis.starts)
    if pitch is not None:
        sizes.add(pitch)
    candidates = sorted(t for t in sizes if t >= min_tile)
    fit = _periodic_fit(axis, candidates, min_tile) or _run_grid_fit(axis, candidates)
    if fit is None or fit.size not in PREFERRED_SIZES:
        fit = _repeat_fit(axis, min_tile) or fit
    return fit


def _gutter_fit(starts: np.ndarray, ends: np.ndarray, length: int, min_tile: int) -> _AxisFit | None:
    """A grid whose cells are separated by narrow background gutters, read from the runs of non-empty lines.

    It holds when the longest runs all have one length and start on one period, and every run lies inside
    a cell. Wide gutters, or a cell size that is not a common tile size on a period that is, mean sprites
    with transparent padding inside cells of the period's size: that is left to the other fits.
    """
    if len(starts) < 2:
        return None
    lengths = ends - starts
    size = int(lengths.max())
    full = starts[lengths == size]
    if size < min_tile or len(full) < 2:
        return None
    pitch = int(np.diff(full).min())
    spacing = pitch - size
    if spacing < 1 or spacing > max(2, size // 4) or np.any(np.diff(full) % pitch):
        return None
    if size not in PREFERRED_SIZES and pitch in PREFERRED_SIZES:
        return None
    margin = int(full[0] % pitch)
    offset = (starts - margin) % pitch
    if np.any(offset + lengths > size):
        return None
    count = (length - margin + spacing) // pitch
    if count < 2 or ends.max() > margin + (count - 1) * pitch + size:
        return None
    return _AxisFit(size, spacing, margin, count)


def _run_pitch(starts: np.ndarray) -> int | None:
    """The most common distance between starts of content runs: a candidate cell size."""
    if len(starts) < 3:
        return None
    values, counts = np.unique(np.diff(starts), return_counts=True)
    return int(values[counts.argmax()])


def _periodic_fit(axis: _Axis, sizes: list[int], min_tile: int) -> _AxisFit | None:
    """The best cell size and phase whose lines look like boundaries, refined to its finest good divisor.

    The phase may only skip leading background (a margin); phase 0 and grids that fill the axis exactly
    win ties. A multiple of the true size scores as well as the size itself, so the best size is walked
    down through its divisors, keeping each one whose extra lines also look like boundaries or at whose
    shift the content repeats.
    """
    length = axis.length
    best: tuple[float, int, int] | None = None
    for size in sizes:
        phased: tuple[float, int] | None = None
        for phase in range(min(size, axis.lead + 1)):
            if (length - phase) // size < 2:
                continue
            evidence = axis.separating(axis.grid(size, phase), size)
            if len(evidence) < MIN_LINES:
                continue
            score = axis.mean(evidence) - PHASE_PENALTY * (phase > 0)
            if phased is None or score > phased[0]:
                phased = (score, phase)
        if phased is None:
            continue
        score, phase = phased
        score -= FIT_PENALTY * ((length - phase) % size > 0)
        if best is None or score > best[0]:
            best = (score, size, phase)
    if best is None or best[0] < axis.ordinary + GRID_MARGIN:
        return None
    _, size, phase = best
    accepted = [size]
    for divisor in range(size - 1, min_tile - 1, -1):
        if size % divisor == 0:
            coarser = min(a for a in accepted if a % divisor == 0)
            if _finer_holds(axis, phase, divisor, coarser):
                accepted.append(divisor)
    size = min(accepted)
    phase %= size
    return _AxisFit(size, 0, phase, (length - phase) // size)


def _finer_holds(axis: _Axis, phase: int, divisor: int, coarser: int) -> bool:
    """Whether cells of ``divisor`` are real inside cells of ``coarser``.

    They must split content (most coarse cells hold content in more than one part), and either the lines
    they add look like boundaries, clearly more than the other lines near content, at every place inside a
    coarse cell (sprite outlines in sparse sheets look like boundaries too), and some of them lie on no grid
    between the two sizes (so they are not just a middle size's lines); or, with those lines no worse than
    ordinary ones, the content repeats at the divisor's shift much more than half a divisor further on,
    about as well as at the coarse shift (seamless autotiles, whose boundaries do not show).
    """
    if axis.split(coarser, phase % coarser, divisor) < FINER_SPLIT:
        return False
    lines = axis.grid(divisor, phase % divisor)
    extra = axis.separating(np.setdiff1d(lines, axis.grid(coarser, phase % coarser)), divisor)
    new = axis.separating(lines[np.gcd((lines - phase % divisor) // divisor, coarser // divisor) == 1], divisor)
    every = np.arange(1, axis.length)
    others = axis.separating(every[(every - phase) % divisor > 0], divisor)
    if len(new) and len(others):
        score = axis.mean(extra)
        place = (extra - phase % divisor) // divisor % (coarser // divisor)
        worst = min(float(axis.scores[extra[place == p] - 1].mean()) for p in np.unique(place))
        contrast = score - float(axis.scores[others - 1].mean())
        if score >= FINER_SCORE and contrast >= FINER_CONTRAST and worst >= FINER_WORST:
            return True
    if len(extra) and axis.mean(extra) < axis.ordinary:
        return False
    rate, overlap = axis.repeat(divisor)
    return (
        overlap >= REPEAT_OVERLAP
        and rate >= REPEAT_RATE
        and rate - axis.repeat(divisor + divisor // 2)[0] >= REPEAT_CONTRAST
        and rate >= axis.repeat(coarser)[0] - REPEAT_SLACK
    )


def _repeat_fit(axis: _Axis, min_tile: int) -> _AxisFit | None:
    """A common tile size at which the content clearly repeats, when boundary lines found none.

    Tiles drawn to join seamlessly (terrain, traps, ore veins) hide their boundaries but repeat at the tile
    period, much more than half a period further on; the lines there must not look worse than ordinary,
    and the period must fit a few times (two copies of a sprite are no grid).
    """
    best: tuple[float, int] | None = None
    for size in PREFERRED_SIZES:
        if size < min_tile or axis.length // size < MIN_STRIP:
            continue
        rate, overlap = axis.repeat(size)
        contrast = rate - axis.repeat(size + size // 2)[0]
        if overlap < REPEAT_STRONG_OVERLAP or rate < REPEAT_STRONG or contrast < REPEAT_STRONG_CONTRAST:
            continue
        lines = axis.separating(axis.grid(size, 0), size)
        if (
            len(lines)
            and axis.mean(lines) >= axis.ordinary - REPEAT_LINE_SLACK
            and (best is None or contrast > best[0])
        ):
            best = (contrast, size)
    if best is None:
        return None
    return _AxisFit(best[1], 0, 0, axis.length // best[1])


def _run_grid_fit(axis: _Axis, sizes: list[int]) -> _AxisFit | None:
    """A grid read from where sparse content sits: each run of content inside one cell, at one place in it.

    For sheets whose sprites are small in their cells every line near content is clean, so lines cannot
    tell the period; the runs can. The smallest size that holds each run in one cell, puts the first run
    of most cells at the same offset, and leaves few cells empty between the first and last one with
    content (a divisor of the true size would leave every other cell empty).
    """
    if len(axis.starts) < 3:
        return None
    longest = int((axis.ends - axis.starts).max())
    for size in sizes:
        if size < longest or axis.length // size < 2:
            continue
        for phase in range(min(size, axis.lead + 1)):
            cells = (axis.starts - phase) // size
            if not np.array_equal(cells, (axis.ends - 1 - phase) // size):
                continue
            occupied, first = np.unique(cells, return_index=True)
            offsets = (axis.starts[first] - phase) % size
            mode = np.bincount(offsets).argmax()
            aligned = np.mean(np.abs(offsets - mode) <= size * RUN_JITTER)
            share = len(occupied) / (occupied[-1] - occupied[0] + 1)
            if len(occupied) >= 2 and aligned >= RUN_ALIGNED and share >= RUN_OCCUPIED:
                return _AxisFit(size, 0, phase, (axis.length - phase) // size)
            break
    return None


def _distinct_cells(key: np.ndarray, grid: Grid, max_tiles: int) -> list[Box]:
    """The grid's cells minus empty and uniform ones and repeats of an earlier cell, in reading order."""
    ys = np.array(_starts(grid.margin_y, grid.tile_h, grid.spacing_y, grid.rows))[:, None] + np.arange(grid.tile_h)
    xs = np.array(_starts(grid.margin_x, grid.tile_w, grid.spacing_x, grid.cols))[:, None] + np.arange(grid.tile_w)
    cells = key[ys[:, None, :, None], xs[None, :, None, :]].reshape(grid.rows * grid.cols, -1)
    varied = np.flatnonzero(~(cells == cells[:, :1]).all(axis=1))
    boxes = grid.boxes()
    kept: list[Box] = []
    seen: set[bytes] = set()
    for i in varied:
        fingerprint = cells[i].tobytes()
        if fingerprint not in seen:
            seen.add(fingerprint)
            kept.append(boxes[i])
            if len(kept) >= max_tiles:
                break
    return kept


# --- connected components ---------------------------------------------------------------------------------


def _sprite_boxes(fg: np.ndarray, min_tile: int) -> list[Box]:
    """Boxes of 8-connected foreground groups, merged when within MERGE_GAP px, specks dropped; reading order."""
    boxes, areas = _component_boxes(fg)
    while len(boxes) > 1:
        canvas = np.zeros((fg.shape[0] + MERGE_GAP, fg.shape[1] + MERGE_GAP), dtype=bool)
        for x0, y0, x1, y1 in boxes:
            canvas[y0 : y1 + MERGE_GAP, x0 : x1 + MERGE_GAP] = True
        labels, groups = _label(canvas)
        group = labels[boxes[:, 1], boxes[:, 0]]
        if groups == len(boxes):
            break
        merged = np.empty((groups, 4), dtype=np.int64)
        merged[:, :2] = np.iinfo(np.int64).max
        merged[:, 2:] = -1
        np.minimum.at(merged[:, 0], group, boxes[:, 0])
        np.minimum.at(merged[:, 1], group, boxes[:, 1])
        np.maximum.at(merged[:, 2], group, boxes[:, 2])
        np.maximum.at(merged[:, 3], group, boxes[:, 3])
        areas = np.bincount(group, weights=areas, minlength=groups)
        boxes = merged
    big = areas >= SPECK_SHARE * min_tile * min_tile
    order = np.lexsort((boxes[big, 0], boxes[big, 1]))
    return [tuple(int(v) for v in box) for box in boxes[big][order]]


def _component_boxes(fg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) and pixel counts (N,) of the 8-connected components of a mask."""
    rows, x0, x1, label, count = _labelled_runs(fg)
    if count == 0:
        return np.zeros((0, 4), dtype=np.int64), np.zeros(0)
    boxes = np.empty((count, 4), dtype=np.int64)
    boxes[:, :2] = np.iinfo(np.int64).max
    boxes[:, 2:] = -1
    np.minimum.at(boxes[:, 0], label, x0)
    np.minimum.at(boxes[:, 1], label, rows)
    np.maximum.at(boxes[:, 2], label, x1)
    np.maximum.at(boxes[:, 3], label, rows + 1)
    return boxes, np.bincount(label, weights=x1 - x0, minlength=count)


def _label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """An 8-connected label image of a mask (background -1) and the number of labels."""
    rows, x0, x1, label, count = _labelled_runs(mask)
    image = np.full(mask.shape, -1, dtype=np.int64)
    width = mask.shape[1]
    flat = image.reshape(-1)
    lengths = x1 - x0
    pixel = np.repeat(rows * width + x0 - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    flat[pixel] = np.repeat(label, lengths)
    return image, count


def _labelled_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Horizontal runs of a mask (row, x0, x1) with an 8-connected component label each, and the label count.

    Runs in adjacent rows that overlap or touch diagonally are joined; the union-find is done with array
    operations (hook each root to the smaller one, then compress paths) so large atlases stay fast.
    """
    height, width = mask.shape
    padded = np.zeros((height, width + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    change = np.diff(padded, axis=1)
    rows, x0 = np.nonzero(change == 1)
    x1 = np.nonzero(change == -1)[1]
    n = len(rows)
    if n == 0:
        return rows, x0, x1, np.zeros(0, dtype=np.int64), 0
    stride = width + 2
    start = rows * stride + x0
    end = rows * stride + x1
    lo = np.searchsorted(end, (rows + 1) * stride + x0, side="left")
    hi = np.searchsorted(start, (rows + 1) * stride + x1, side="right")
    links = np.maximum(hi - lo, 0)
    a = np.repeat(np.arange(n), links)
    b = np.repeat(lo, links) + np.arange(links.sum()) - np.repeat(np.cumsum(links) - links, links)
    parent = np.arange(n)
    while len(a):
        ra, rb = parent[a], parent[b]
        differ = ra != rb
        if not differ.any():
            break
        a, b, ra, rb = a[differ], b[differ], ra[differ], rb[differ]
        np.minimum.at(parent, np.maximum(ra, rb), np.minimum(ra, rb))
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
    _, label = np.unique(parent, return_inverse=True)
    return rows, x0, x1, label, int(label.max()) + 1


def _distinct_boxes(key: np.ndarray, boxes: list[Box], max_tiles: int) -> list[Box]:
    """Boxes minus uniform ones and repeats of an earlier box's pixels, capped at max_tiles."""
    kept: list[Box] = []
    seen: set[tuple[int, int, bytes]] = set()
    for box in boxes:
        x0, y0, x1, y1 = box
        crop = key[y0:y1, x0:x1]
        if (crop == crop.flat[0]).all():
            continue
        fingerprint = (x1 - x0, y1 - y0, crop.tobytes())
        if fingerprint in seen:
            continue
        seen.add(fingerprint)
        kept.append(box)
        if len(kept) >= max_tiles:
            break
    return kept
