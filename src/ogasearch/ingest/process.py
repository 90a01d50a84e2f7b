"""Turn one stored file into image and item records: unpack, decode, canonicalise, hash, slice.

Runs in worker processes: it reads a blob, writes member blobs into the
content-addressed store (safe from many processes: atomic renames of
hash-named files) and returns plain records. The catalog is written only by
the parent, so a killed worker loses nothing that was recorded.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path, PurePosixPath

import numpy as np

from ogasearch.blobs import BlobStore
from ogasearch.ingest.archives import ArchiveError, archive_kind, iter_members
from ogasearch.ingest.canonical import Canonical, canonicalize
from ogasearch.ingest.hashing import perceptual_hash, pixel_sha256
from ogasearch.ingest.images import ImageError, decode_image, sniff_image
from ogasearch.ingest.records import FileResult, ImageRecord, IngestLimits, ItemRecord
from ogasearch.ingest.tiles import slice_sheet

IMAGE_SUFFIXES = frozenset({".png", ".gif", ".bmp", ".jpg", ".jpeg", ".webp", ".tga", ".ico"})


def _signed(h: int) -> int:
    return h - (1 << 64) if h >= 1 << 63 else h


def _hashes(rgba: np.ndarray) -> tuple[str, int]:
    return pixel_sha256(rgba), _signed(perceptual_hash(rgba))


def is_image_name(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() in IMAGE_SUFFIXES


def image_records(
    data: bytes, name: str, archive_path: str, blob_sha256: str, limits: IngestLimits
) -> list[ImageRecord]:
    """Records for one image file: one per distinct frame, each with its items.

    The first frame's items include the tiles of a sheet; later frames of an
    animation are whole-image items only.
    """
    try:
        decoded = decode_image(data, name=name, max_pixels=limits.max_pixels, max_frames=limits.max_frames)
    except ImageError as exc:
        return [ImageRecord(archive_path, 0, blob_sha256, len(data), error=str(exc))]
    records = []
    for position, frame in enumerate(decoded.frames):
        canon = canonicalize(frame.pixels)
        sha, phash = _hashes(canon.pixels)
        height, width = frame.pixels.shape[:2]
        record = ImageRecord(
            archive_path=archive_path,
            frame=frame.index,
            blob_sha256=blob_sha256,
            blob_size=len(data),
            format=decoded.format,
            width=width,
            height=height,
            mode=decoded.mode,
            scale=canon.scale,
            box=canon.box,
            pixel_sha256=sha,
            phash=phash,
            items=[ItemRecord(None, sha, phash)],
        )
        if position == 0:
            _add_tiles(record, frame.pixels, canon, limits)
        records.append(record)
    return records


def _add_tiles(record: ImageRecord, rgba: np.ndarray, canon: Canonical, limits: IngestLimits) -> None:
    """Slice a sheet into tile items (de-duplicated, capped); a single sprite adds nothing.

    Slicing runs on the whole image reduced to its native scale (on the grid of the
    content box), so a sheet uploaded at 2x is cut on its real grid, margins kept;
    boxes are mapped back to the file's pixel coordinates.
    """
    s = canon.scale
    ox, oy = canon.box[0] % s, canon.box[1] % s
    native = rgba[oy::s, ox::s]
    slices = slice_sheet(native, max_tiles=limits.max_tiles)
    record.sheet_kind = slices.kind
    if slices.grid is not None:
        record.grid = asdict(slices.grid)
    if slices.kind == "single":
        return
    seen = {record.pixel_sha256}
    for x0, y0, x1, y1 in slices.boxes:
        sha, phash = _hashes(canonicalize(native[y0:y1, x0:x1]).pixels)
        if sha in seen:
            continue
        seen.add(sha)
        record.items.append(ItemRecord((ox + x0 * s, oy + y0 * s, ox + x1 * s, oy + y1 * s), sha, phash))


def process_file(file_id: int, blob_path: Path, name: str, store_root: Path, limits: IngestLimits) -> FileResult:
    """Everything one stored file holds, as records; faults are recorded, never raised."""
    with blob_path.open("rb") as fh:
        head = fh.read(4096)
    blob_sha = blob_path.name
    kind = archive_kind(name, head)
    if kind is None:
        if sniff_image(head, name) is None:
            return FileResult(file_id, "other")
        images = image_records(blob_path.read_bytes(), name, "", blob_sha, limits)
        error = images[0].error if len(images) == 1 and images[0].error else None
        return FileResult(file_id, "image", images, error)

    store = BlobStore(store_root)
    result = FileResult(file_id, "archive")
    nested: list[str] = []
    try:
        for member in iter_members(blob_path, name, limits.archive, want=is_image_name, errors=nested):
            sha = store.put(member.data)
            result.images += image_records(member.data, member.path, member.path, sha, limits)
    except ArchiveError as exc:
        result.error = str(exc)
    if nested:
        result.error = "; ".join(filter(None, [result.error, *nested]))
    return result
