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


class FetchRefused(OgasearchError):
    """A user-supplied URL was not fetched, or its answer was not accepted; the message says why.

    `http_status` is what the web API answers, so the mapping lives in one place: 400 the URL, scheme,
    address or a redirect was refused (or too many redirects); 413 the body is over the byte limit;
    415 not an accepted content type, or the bytes are not a decodable image (bombs included);
    502 the remote server failed or answered an error; 504 the fetch ran out of time.
    """

    def __init__(self, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.http_status = http_status


class BadImage(OgasearchError):
    """A query image that cannot be searched for: not an image (415) or over a size limit (413)."""

    exit_code = 2

    def __init__(self, message: str, http_status: int = 415) -> None:
        super().__init__(message)
        self.http_status = http_status


class UploadTooLarge(OgasearchError):
    """An uploaded query image over the upload size limit."""

    exit_code = 2
    http_status = 413
