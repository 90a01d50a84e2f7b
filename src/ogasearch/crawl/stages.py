"""The crawl stages: listing pages → art pages → files, resumable and incremental.

Every unit of work is recorded in the catalog in the transaction that finishes
it, so a crawl killed at any moment continues where it stopped when run again:
an unfinished run is resumed (same run id), and work attempted in it is not
repeated. A run sorted newest first stops paging at the first listing page whose
art pages are all known, unless `full` is set.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from ogasearch.blobs import BlobStore
from ogasearch.catalog import DONE, Catalog
from ogasearch.config import Config
from ogasearch.crawl.client import PoliteClient
from ogasearch.crawl.oga import ListingPage, ParseError, parse_art_page, parse_listing
from ogasearch.crawl.urls import listing_url
from ogasearch.errors import FetchError
from ogasearch.progress import Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CrawlOptions:
    art_types: list[int]
    full: bool = False
    max_pages: int | None = None  # listing pages per art type
    max_items: int | None = None  # art pages fetched in this run


@dataclass
class CrawlReport:
    run_id: int = 0
    resumed: bool = False
    listing_pages: int = 0
    listing_unchanged: int = 0
    pages_fetched: int = 0
    pages_unchanged: int = 0
    page_errors: int = 0
    files_downloaded: int = 0
    files_unchanged: int = 0
    file_errors: int = 0
    bytes_downloaded: int = 0
    stopped_at_known: list[int] = field(default_factory=list)  # art types whose paging stopped early


class Crawler:
    def __init__(self, cfg: Config, catalog: Catalog, store: BlobStore, client: PoliteClient) -> None:
        self.cfg = cfg
        self.catalog = catalog
        self.store = store
        self.client = client

    async def run(self, opts: CrawlOptions) -> CrawlReport:
        run_id, resumed = self.catalog.start_run(self.cfg.base_url, opts.art_types, opts.full)
        report = CrawlReport(run_id=run_id, resumed=resumed)
        if resumed:
            log.info("resuming unfinished crawl run %d", run_id)
        self.store.clean_tmp()
        for tid in opts.art_types:
            await self._listings(tid, run_id, opts, report)
        await self._pages(run_id, opts, report)
        await self._files(self.catalog.files_to_fetch(run_id, opts.full), run_id, report)
        self.catalog.finish_run(run_id)
        return report

    # -- listing pages ----------------------------------------------------------

    async def _listings(self, tid: int, run_id: int, opts: CrawlOptions, report: CrawlReport) -> None:
        discovered = 0
        page = 0
        with Progress(f"listing pages (type {tid})", unit="pages") as progress:
            while opts.max_pages is None or page < opts.max_pages:
                url = listing_url(self.cfg.base_url, tid, page, self.cfg.items_per_page)
                row = self.catalog.get_listing(url)
                if row is not None and row["run_id"] == run_id and row["state"] == DONE:
                    entries, last_page, known = row["entries"] or 0, row["last_page"], bool(row["known"])
                else:
                    outcome = await self._listing(url, tid, page, run_id, row, report)
                    if outcome is None:
                        break
                    entries, last_page, known = outcome
                progress.update()
                if last_page is not None:
                    progress.set_total(last_page + 1 if opts.max_pages is None else min(opts.max_pages, last_page + 1))
                discovered += entries
                if known and not opts.full:
                    log.info("listing page %d of type %d holds only known art: stopping (use --full)", page, tid)
                    report.stopped_at_known.append(tid)
                    break
                if not entries or last_page is None or page >= last_page:
                    break
                if opts.max_items is not None and discovered >= opts.max_items:
                    break
                page += 1

    async def _listing(
        self, url: str, tid: int, page: int, run_id: int, row: sqlite3.Row | None, report: CrawlReport
    ) -> tuple[int, int | None, bool] | None:
        """Fetch and record one listing page; None when paging cannot go on."""
        have_body = row is not None and row["body_sha256"] and self.store.exists(row["body_sha256"])
        try:
            resp = await self.client.get_page(
                url,
                row["etag"] if have_body else None,
                row["last_modified"] if have_body else None,
            )
        except FetchError as exc:
            log.warning("listing page %s: %s", url, exc)
            self.catalog.listing_error(url, tid=tid, page=page, run_id=run_id, error=str(exc))
            return None
        report.listing_pages += 1
        if resp.status == 304:
            assert row is not None
            report.listing_unchanged += 1
            sha, body = row["body_sha256"], self.store.read(row["body_sha256"])
        else:
            body = resp.body or b""
            sha = self.store.put(body)
        listing = parse_listing(body.decode("utf-8", "replace"), self.cfg.base_url)
        urls = [e.url for e in listing.entries]
        known = bool(urls) and len(self.catalog.known_urls(urls)) == len(set(urls))
        self.catalog.record_listing(
            url,
            tid=tid,
            page=page,
            run_id=run_id,
            etag=resp.etag,
            last_modified=resp.last_modified,
            body_sha256=sha,
            body_size=len(body),
            entries=listing.entries,
            total=listing.total,
            last_page=last_page_index(listing),
            known=known,
        )
        return len(listing.entries), last_page_index(listing), known

    # -- art pages --------------------------------------------------------------

    async def _pages(self, run_id: int, opts: CrawlOptions, report: CrawlReport) -> None:
        limit = None
        if opts.max_items is not None:
            limit = max(0, opts.max_items - self.catalog.count_attempted_pages(run_id))
        rows = self.catalog.pages_to_fetch(run_id, opts.full, limit)
        with Progress("art pages", total=len(rows), unit="pages") as progress:

            async def one(row: sqlite3.Row) -> None:
                await self._page(row, run_id, opts, report)
                progress.update()

            await _run_workers(rows, one, self.cfg.concurrency)

    async def _page(self, row: sqlite3.Row, run_id: int, opts: CrawlOptions, report: CrawlReport) -> None:
        revalidate = row["state"] == DONE
        try:
            resp = await self.client.get_page(
                row["url"],
                row["etag"] if revalidate else None,
                row["last_modified"] if revalidate else None,
            )
        except FetchError as exc:
            log.warning("art page %s: %s", row["url"], exc)
            report.page_errors += 1
            self.catalog.page_error(row["id"], run_id, str(exc), permanent=exc.permanent)
            return
        if resp.status == 304:
            report.pages_unchanged += 1
            self.catalog.page_unchanged(row["id"], run_id)
        else:
            body = resp.body or b""
            try:
                page = parse_art_page(body.decode("utf-8", "replace"), row["url"])
            except ParseError as exc:
                report.page_errors += 1
                self.catalog.page_error(row["id"], run_id, f"not an art page: {exc}", permanent=True)
                return
            sha = self.store.put(body)
            self.catalog.store_page(
                row["id"],
                page,
                run_id=run_id,
                etag=resp.etag,
                last_modified=resp.last_modified,
                html_sha256=sha,
                html_size=len(body),
            )
            report.pages_fetched += 1
        await self._files(self.catalog.files_to_fetch(run_id, opts.full, row["id"]), run_id, report, workers=1)

    # -- files ------------------------------------------------------------------

    async def _files(
        self, rows: Iterable[sqlite3.Row], run_id: int, report: CrawlReport, workers: int | None = None
    ) -> None:
        async def one(row: sqlite3.Row) -> None:
            await self._file(row, run_id, report)

        await _run_workers(list(rows), one, workers or self.cfg.concurrency)

    async def _file(self, row: sqlite3.Row, run_id: int, report: CrawlReport) -> None:
        revalidate = row["state"] == DONE and row["sha256"] and self.store.exists(row["sha256"])
        try:
            resp = await self.client.download(
                row["url"],
                row["etag"] if revalidate else None,
                row["last_modified"] if revalidate else None,
                expected_length=row["declared_length"],
            )
        except FetchError as exc:
            log.warning("file %s: %s", row["url"], exc)
            report.file_errors += 1
            self.catalog.file_error(row["id"], run_id, str(exc), permanent=exc.permanent)
            return
        if resp.status == 304:
            report.files_unchanged += 1
            self.catalog.file_unchanged(row["id"], run_id)
            return
        assert resp.sha256 is not None and resp.size is not None
        self.catalog.store_file(
            row["id"],
            run_id=run_id,
            sha256=resp.sha256,
            size=resp.size,
            content_type=resp.content_type,
            etag=resp.etag,
            last_modified=resp.last_modified,
        )
        report.files_downloaded += 1
        report.bytes_downloaded += resp.size


def last_page_index(listing: ListingPage) -> int | None:
    """The last page to read: from the pager, or from "Displaying a - b of N" when the pager says less."""
    pages = listing.last_page
    if listing.total and listing.first == 1 and listing.last_shown:
        from_header = math.ceil(listing.total / listing.last_shown) - 1
        pages = from_header if pages is None else max(pages, from_header)
    return pages


async def _run_workers(
    rows: list[sqlite3.Row], work: Callable[[sqlite3.Row], Awaitable[None]], concurrency: int
) -> None:
    """Process rows with at most `concurrency` in flight (the client's rate limit still applies)."""
    queue: asyncio.Queue[sqlite3.Row] = asyncio.Queue()
    for row in rows:
        queue.put_nowait(row)

    async def worker() -> None:
        while not queue.empty():
            await work(queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(rows))))))
