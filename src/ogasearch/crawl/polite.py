"""Politeness policies as small pure units: retry timing, rate limiting, robots.txt.

Kept apart from the HTTP client so each rule is tested on its own, without a
network.
"""

from __future__ import annotations

import asyncio
import random
import time
from email.utils import parsedate_to_datetime

from protego import Protego

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def retry_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Exponential backoff with full jitter; a server's Retry-After wins when longer.

    `attempt` counts from 1 (the first retry).
    """
    rng = rng or random.Random()
    backoff = min(cap, base * 2 ** (attempt - 1))
    delay = backoff / 2 + rng.uniform(0, backoff / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


class RateLimiter:
    """One minimum interval between request starts per host, shared by every worker.

    Slots are reserved under a lock, so N concurrent workers still go no faster
    than one request per interval.
    """

    def __init__(self) -> None:
        self._next: dict[str, float] = {}
        self._lock = asyncio.Lock()

    async def wait(self, host: str, interval: float) -> None:
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next.get(host, now))
            self._next[host] = start + interval
        if start > now:
            await asyncio.sleep(start - now)


class Robots:
    """A parsed robots.txt for one origin, as RFC 9309 reads a fetch outcome."""

    def __init__(self, status: int, body: str) -> None:
        self.status = status
        # 2xx: the rules; 4xx: no rules (allow all); anything else was refused earlier.
        self.body = body if 200 <= status < 300 else ""
        self._rules = Protego.parse(self.body)

    def allowed(self, url: str, user_agent: str) -> bool:
        return self._rules.can_fetch(url, user_agent)

    def crawl_delay(self, user_agent: str) -> float | None:
        delay = self._rules.crawl_delay(user_agent)
        return None if delay is None else float(delay)
