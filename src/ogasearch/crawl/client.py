"""A polite HTTP client: robots.txt, one rate limit per host, retries, conditional GET.

Every request of the crawler goes through `PoliteClient`, so no code path can
skip robots.txt, the rate limit or the download-counter guard.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from ogasearch import __version__
from ogasearch.blobs import BlobStore
from ogasearch.catalog import Catalog
from ogasearch.config import Config
from ogasearch.crawl.polite import RETRY_STATUSES, RateLimiter, Robots, parse_retry_after, retry_delay
from ogasearch.crawl.urls import is_dlcounter
from ogasearch.errors import FetchError, RobotsDisallowed, RobotsUnreachable, TooLarge

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
ROBOTS_AGENT = "ogasearch"


@dataclass
class Response:
    status: int  # 200, or 304 when the validators still match
    url: str  # after redirects
    etag: str | None
    last_modified: str | None
    content_type: str | None
    body: bytes | None = None  # pages
    sha256: str | None = None  # downloads, streamed into the blob store
    size: int | None = None


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def user_agent(contact: str) -> str:
    """An honest User-Agent: who we are and how to reach the operator."""
    tail = f"; contact: {contact}" if contact else ""
    return f"{ROBOTS_AGENT}/{__version__} (reverse image search of OpenGameArt pixel art{tail})"


class PoliteClient:
    def __init__(
        self,
        cfg: Config,
        catalog: Catalog,
        store: BlobStore,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.cfg = cfg
        self.catalog = catalog
        self.store = store
        self.user_agent = user_agent(cfg.contact)
        self.limiter = RateLimiter()
        self._robots: dict[str, tuple[Robots, float]] = {}
        self._robots_lock = asyncio.Lock()
        self._http = httpx.AsyncClient(
            transport=transport,
            headers={"User-Agent": self.user_agent},
            timeout=httpx.Timeout(cfg.timeout),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max(1, cfg.concurrency)),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- robots.txt -----------------------------------------------------------

    async def robots(self, url: str) -> Robots:
        """The robots.txt for the URL's origin, cached in memory and in the catalog."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        async with self._robots_lock:
            cached = self._robots.get(origin)
            if cached and time.time() - cached[1] < self.cfg.robots_ttl:
                return cached[0]
            row = self.catalog.get_robots(origin)
            if row is not None and time.time() - row["fetched_at"] < self.cfg.robots_ttl:
                robots, fetched_at = Robots(row["status"], row["body"]), row["fetched_at"]
            else:
                robots, fetched_at = await self._fetch_robots(origin), time.time()
                self.catalog.put_robots(origin, robots.status, robots.body, fetched_at)
            self._robots[origin] = (robots, fetched_at)
            return robots

    async def _fetch_robots(self, origin: str) -> Robots:
        url = f"{origin}/robots.txt"
        last = ""
        for attempt in range(1, self.cfg.retries + 2):
            try:
                resp = await self._http.get(url, follow_redirects=True)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code < 500 and resp.status_code != 429:
                    return Robots(resp.status_code, resp.text)
                last = f"HTTP {resp.status_code}"
            if attempt <= self.cfg.retries:
                await asyncio.sleep(retry_delay(attempt, base=self.cfg.backoff, cap=self.cfg.backoff_max))
        raise RobotsUnreachable(f"robots.txt at {url} is unreachable ({last}); not crawling {origin}")

    def _interval(self, robots: Robots) -> float:
        if self.cfg.delay is not None:
            return self.cfg.delay
        delay = robots.crawl_delay(ROBOTS_AGENT)
        return self.cfg.min_interval if delay is None else delay

    # -- requests -------------------------------------------------------------

    async def get_page(self, url: str, etag: str | None = None, last_modified: str | None = None) -> Response:
        """GET an HTML page (conditional when validators are given), body in memory."""

        async def consume(resp: httpx.Response) -> Response:
            chunks, size = [], 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > self.cfg.max_page_bytes:
                    raise TooLarge(f"page larger than {self.cfg.max_page_bytes} bytes")
                chunks.append(chunk)
            return _response(resp, body=b"".join(chunks))

        return await self._fetch(url, etag, last_modified, consume)

    async def download(
        self,
        url: str,
        etag: str | None = None,
        last_modified: str | None = None,
        expected_length: int | None = None,
    ) -> Response:
        """Stream a file into the blob store, checking its length against the
        Content-Length header and the length the page declared."""
        limit = self.cfg.max_file_bytes

        async def consume(resp: httpx.Response) -> Response:
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise TooLarge(f"file is {declared} bytes, over the limit of {limit} (max_file_bytes)")
            with self.store.writer(max_bytes=limit) as writer:
                async for chunk in resp.aiter_bytes(1 << 16):
                    writer.write(chunk)
                if declared and declared.isdigit() and writer.size != int(declared):
                    raise _Retryable(f"truncated download: {writer.size} of {declared} bytes")
            if expected_length is not None and writer.size != expected_length:
                raise FetchError(f"length mismatch: the page declares {expected_length} bytes, got {writer.size}")
            return _response(resp, sha256=writer.sha256, size=writer.size)

        return await self._fetch(url, etag, last_modified, consume)

    async def _fetch(
        self,
        url: str,
        etag: str | None,
        last_modified: str | None,
        consume: Callable[[httpx.Response], Awaitable[Response]],
    ) -> Response:
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        for _ in range(MAX_REDIRECTS + 1):
            if is_dlcounter(url):
                raise FetchError(f"refusing download-counter URL {url}", permanent=True)
            robots = await self.robots(url)
            if not robots.allowed(url, ROBOTS_AGENT):
                raise RobotsDisallowed(f"robots.txt disallows {url}")
            interval = self._interval(robots)
            outcome = await self._with_retries(url, headers, interval, consume)
            if isinstance(outcome, Response):
                return outcome
            url = outcome  # a redirect: check robots and the rate limit again
        raise FetchError(f"more than {MAX_REDIRECTS} redirects from {url}", permanent=True)

    async def _with_retries(
        self,
        url: str,
        headers: dict[str, str],
        interval: float,
        consume: Callable[[httpx.Response], Awaitable[Response]],
    ) -> Response | str:
        host = urlsplit(url).netloc
        attempt = 0
        while True:
            await self.limiter.wait(host, interval)
            try:
                async with self._http.stream("GET", url, headers=headers) as resp:
                    status = resp.status_code
                    if status in (301, 302, 303, 307, 308) and "location" in resp.headers:
                        return urljoin(url, resp.headers["location"])
                    if status == 304:
                        return _response(resp)
                    if status in RETRY_STATUSES:
                        raise _Retryable(f"HTTP {status}", parse_retry_after(resp.headers.get("retry-after")))
                    if status >= 400:
                        raise FetchError(f"HTTP {status} for {url}", status, permanent=True)
                    return await consume(resp)
            except (_Retryable, httpx.TimeoutException, httpx.TransportError) as exc:
                attempt += 1
                reason = str(exc) or type(exc).__name__
                if isinstance(exc, httpx.TimeoutException):
                    reason = f"timed out after {self.cfg.timeout:g} s"
                if attempt > self.cfg.retries:
                    raise FetchError(f"{reason} ({attempt} attempts) for {url}") from exc
                wait = retry_delay(
                    attempt,
                    base=self.cfg.backoff,
                    cap=self.cfg.backoff_max,
                    retry_after=getattr(exc, "retry_after", None),
                )
                log.info("retrying %s in %.1f s: %s", url, wait, reason)
                await asyncio.sleep(wait)


def _response(
    resp: httpx.Response, *, body: bytes | None = None, sha256: str | None = None, size: int | None = None
) -> Response:
    return Response(
        status=resp.status_code,
        url=str(resp.url),
        etag=resp.headers.get("etag"),
        last_modified=resp.headers.get("last-modified"),
        content_type=resp.headers.get("content-type"),
        body=body,
        sha256=sha256,
        size=size,
    )
