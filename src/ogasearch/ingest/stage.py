"""The ingest stage and `add`: files in the catalog → images and items, on every core.

Workers turn files into records (`process.process_file`); this process writes
each file's records in one transaction, so the stage can be killed and re-run at
any moment and continues with the files not yet recorded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from ogasearch.blobs import BlobStore
from ogasearch.catalog import Catalog
from ogasearch.config import Config
from ogasearch.ingest.archives import ArchiveLimits, archive_kind
from ogasearch.ingest.images import sniff_image
from ogasearch.ingest.process import process_file
from ogasearch.ingest.records import FileResult, IngestLimits
from ogasearch.progress import Progress

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    files: int = 0
    file_errors: int = 0
    images: int = 0
    image_errors: int = 0
    items: int = 0
    tiles: int = 0


def limits_from(cfg: Config) -> IngestLimits:
    return IngestLimits(
        archive=ArchiveLimits(
            max_total_bytes=cfg.max_archive_bytes,
            max_member_bytes=cfg.max_member_bytes,
            max_members=cfg.max_members,
            max_ratio=cfg.max_ratio,
            max_depth=cfg.max_depth,
        ),
        max_pixels=cfg.max_image_pixels,
        max_frames=cfg.max_frames,
        max_tiles=cfg.max_tiles,
    )


def ingest(cfg: Config, catalog: Catalog, store: BlobStore, retry_errors: bool = False) -> IngestReport:
    """Ingest every downloaded or added file not yet ingested."""
    rows = catalog.files_to_ingest(retry_errors)
    limits = limits_from(cfg)
    report = IngestReport()
    workers = cfg.workers or os.cpu_count() or 1
    with Progress("ingest", total=len(rows), unit="files") as progress:
        for result in _results(rows, store, limits, workers):
            catalog.store_ingest(result)
            report.files += 1
            report.file_errors += result.error is not None
            for image in result.images:
                report.images += 1
                report.image_errors += image.error is not None
                report.items += len(image.items)
                report.tiles += sum(item.bbox is not None for item in image.items)
            if result.error:
                log.warning("%s: %s", _name(rows, result.file_id), result.error)
            progress.update()
    return report


def _name(rows: list, file_id: int) -> str:
    return next((r["url"] for r in rows if r["id"] == file_id), str(file_id))


def _results(rows: list, store: BlobStore, limits: IngestLimits, workers: int) -> Iterator[FileResult]:
    """Run process_file over the rows with a bounded number of files in flight."""
    if workers <= 1 or len(rows) <= 1:
        for row in rows:
            yield process_file(row["id"], store.path(row["sha256"]), row["name"] or "", store.root, limits)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: set[Future[FileResult]] = set()
        queue = iter(rows)
        while True:
            for row in queue:
                pending.add(
                    pool.submit(
                        process_file, row["id"], store.path(row["sha256"]), row["name"] or "", store.root, limits
                    )
                )
                if len(pending) >= workers * 4:
                    break
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()


def add_paths(catalog: Catalog, store: BlobStore, paths: list[Path]) -> tuple[int, int]:
    """Register local images and archives (files and folders, recursively) for ingest.

    Returns (files seen, files new or changed). Items link to the file's
    `file://` URL, so a user can search their own asset folder.
    """
    seen = changed = 0
    for path in _walk(paths):
        with path.open("rb") as fh:
            head = fh.read(4096)
        if archive_kind(path.name, head) is None and sniff_image(head, path.name) is None:
            continue
        seen += 1
        with store.writer() as writer, path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                writer.write(chunk)
        changed += catalog.register_local(path.resolve().as_uri(), path.name, writer.sha256, writer.size)
    return seen, changed


def _walk(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    candidate = Path(root) / name
                    if candidate.is_file() and not candidate.is_symlink():
                        yield candidate
        elif path.is_file():
            yield path
