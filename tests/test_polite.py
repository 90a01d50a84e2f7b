"""Politeness rules as pure units: retry timing, Retry-After, rate limit, robots."""

import asyncio
import itertools
import random
import time
from email.utils import formatdate

from ogasearch.crawl.polite import RateLimiter, Robots, parse_retry_after, retry_delay
from ogasearch.crawl.urls import art_type_tid, is_dlcounter, listing_url


def test_retry_after_forms() -> None:
    assert parse_retry_after("120") == 120.0
    now = time.time()
    assert 58 <= parse_retry_after(formatdate(now + 60, usegmt=True), now=now) <= 61
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_grows_is_jittered_and_capped() -> None:
    rng = random.Random(1)
    delays = [retry_delay(a, base=1.0, cap=8.0, rng=rng) for a in range(1, 7)]
    for attempt, d in enumerate(delays, start=1):
        full = min(8.0, 2 ** (attempt - 1))
        assert full / 2 <= d <= full
    assert len({round(d, 6) for d in delays}) == len(delays)
    assert retry_delay(1, base=1.0, cap=60.0, retry_after=30.0) >= 30.0
    assert retry_delay(1, base=1.0, cap=60.0, retry_after=3600.0) == 60.0


def test_rate_limiter_is_shared_by_concurrent_workers() -> None:
    async def go() -> list[float]:
        limiter = RateLimiter()
        stamps: list[float] = []

        async def worker() -> None:
            for _ in range(3):
                await limiter.wait("h", 0.05)
                stamps.append(time.monotonic())

        await asyncio.gather(*(worker() for _ in range(4)))
        return sorted(stamps)

    stamps = asyncio.run(go())
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.045


def test_robots_rules_and_crawl_delay() -> None:
    robots = Robots(200, "User-agent: *\nCrawl-delay: 10\nDisallow: /user/\nDisallow: /file/*/dlcounter\n")
    assert robots.crawl_delay("ogasearch") == 10.0
    assert not robots.allowed("https://x.org/user/1", "ogasearch")
    assert not robots.allowed("https://x.org/file/12/dlcounter", "ogasearch")
    assert robots.allowed("https://x.org/content/a", "ogasearch")
    assert Robots(404, "Disallow: /").allowed("https://x.org/content/a", "ogasearch")


def test_urls() -> None:
    url = listing_url("https://opengameart.org/", 9, 3, 144)
    assert url.startswith("https://opengameart.org/art-search-advanced?")
    assert "field_art_type_tid%5B%5D=9" in url and "items_per_page=144" in url and url.endswith("page=3")
    assert "sort_by=created" in url and "sort_order=DESC" in url
    assert art_type_tid("2d art") == 9 and art_type_tid("Texture") == 14 and art_type_tid("10") == 10
    assert is_dlcounter("https://opengameart.org/file/156865/dlcounter")
    assert not is_dlcounter("https://opengameart.org/sites/default/files/a.zip")


def test_last_page_from_pager_or_header() -> None:
    from ogasearch.crawl.oga import ListingPage
    from ogasearch.crawl.stages import last_page_index

    assert last_page_index(ListingPage([], total=16293, first=1, last_shown=24, last_page=678)) == 678
    assert last_page_index(ListingPage([], total=300, first=1, last_shown=144, last_page=0)) == 2  # no pager
    assert last_page_index(ListingPage([], total=None, first=None, last_shown=None, last_page=5)) == 5
    assert last_page_index(ListingPage([], total=10, first=145, last_shown=154, last_page=1)) == 1
