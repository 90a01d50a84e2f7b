"""What ingesting a file yields: plain records passed from worker processes to the catalog."""

from __future__ import annotations

from dataclasses import dataclass, field

from ogasearch.ingest.archives import ArchiveLimits

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class IngestLimits:
    archive: ArchiveLimits = field(default_factory=ArchiveLimits)
    max_pixels: int = 64_000_000
    max_frames: int = 256
    max_tiles: int = 2048


@dataclass
class ItemRecord:
    bbox: Box | None  # None: the whole image
    pixel_sha256: str
    phash: int  # signed 64-bit, as SQLite stores integers


@dataclass
class ImageRecord:
    archive_path: str  # "" for a bare file, else the path inside the archive(s)
    frame: int
    blob_sha256: str | None
    blob_size: int | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    mode: str | None = None
    scale: int | None = None
    box: Box | None = None  # trimmed content box
    pixel_sha256: str | None = None
    phash: int | None = None
    sheet_kind: str | None = None  # 'grid' | 'components' | 'single'
    grid: dict[str, int] | None = None
    error: str | None = None
    items: list[ItemRecord] = field(default_factory=list)


@dataclass
class FileResult:
    file_id: int
    kind: str  # 'image' | 'archive' | 'other'
    images: list[ImageRecord] = field(default_factory=list)
    error: str | None = None  # the file-level fault (archive error, undecodable image)
