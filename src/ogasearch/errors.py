"""The project's exceptions: small, documented, mapped to exit codes in one place."""

from __future__ import annotations


class OgasearchError(Exception):
    """Base of every error the CLI reports as a message instead of a traceback."""

    exit_code = 1


class ConfigError(OgasearchError):
    """A setting, flag or config file is invalid."""

    exit_code = 2


class CatalogError(OgasearchError):
    """The catalog cannot be opened or is of an unknown (newer) version."""


class FetchError(OgasearchError):
    """A request failed for good (after retries); the message says why.

    `permanent` failures (404, too large, disallowed) are not retried until a
    full crawl; others are retried on the next run.
    """

    def __init__(self, message: str, status: int | None = None, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.permanent = permanent


class RobotsDisallowed(FetchError):
    """robots.txt forbids the URL."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


class RobotsUnreachable(OgasearchError):
    """robots.txt could not be read, so the host is not crawled at all."""


class TooLarge(FetchError):
    """A response is bigger than the configured limit."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)
