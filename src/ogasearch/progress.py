"""Progress of long stages: a bar on a terminal, plain periodic log lines elsewhere."""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType

from tqdm import tqdm

log = logging.getLogger("ogasearch.progress")


class Progress:
    """done / total, rate and ETA; `total` may grow as work is discovered."""

    def __init__(self, desc: str, total: int | None = None, unit: str = "it", every: float = 10.0) -> None:
        self.desc = desc
        self.total = total
        self.unit = unit
        self.done = 0
        self.every = every
        self._start = self._last = time.monotonic()
        self._bar = tqdm(desc=desc, total=total, unit=unit, file=sys.stderr) if sys.stderr.isatty() else None

    def set_total(self, total: int) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            log.info("%s", self.line())

    def line(self) -> str:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = self.done / elapsed
        text = f"{self.desc}: {self.done}"
        if self.total:
            text += f"/{self.total}"
            if rate > 0:
                text += f", ETA {_duration((self.total - self.done) / rate)}"
        return text + f" ({rate * 60:.1f} {self.unit}/min)"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.done:
            log.info("%s (finished)", self.line())

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
