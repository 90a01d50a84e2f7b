"""Fetching an image from a URL a user typed, without letting the URL reach inside our network (SSRF).

Every hop (the first URL and each redirect) is checked the same way: http/https only, no user info, and every
address its host resolves to must be public. Numeric host forms that resolvers accept (2130706433, 0177.0.0.1,
0x7f.0.0.1, 127.1) are parsed here, so they are checked whatever the platform's resolver makes of them.

No DNS-rebinding window: a host is resolved once per fetch, the checked addresses are pinned for its
(host, port), and the default transport's network backend connects to those addresses by number and never
resolves again, so the socket's peer is an address that passed the check. The Host header and, for https, the
TLS server name (SNI) and certificate check still use the URL's host, since httpcore takes them from the URL.

Limits: bytes (refused early on Content-Length, and streamed with a cap), one time limit for the whole fetch
(DNS, connects, TLS, every read, redirects included), content type, and the body must decode through the same
bomb-guarded decoder as ingest. Every failure is a FetchRefused whose http_status the web API answers with.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import httpcore
import httpx

from ogasearch import __version__
from ogasearch.errors import FetchRefused
from ogasearch.ingest.images import ImageError, decode_image

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HEADERS = {
    "User-Agent": f"ogasearch/{__version__} (reverse image search; fetching an image URL a user submitted)",
    "Accept": "image/*",
    "Accept-Encoding": "identity",  # a compressed body could inflate far past the byte cap
}
# What inet_aton accepts: one to four dot-separated decimal, octal (leading 0) or hex (0x) parts.
_NUMERIC_HOST = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}\.?", re.IGNORECASE)
_SHARED_SPACE = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT, neither private nor global
# getaddrinfo has no timeout of its own; it runs here so that a slow resolver cannot outlast the time limit.
_RESOLVER = ThreadPoolExecutor(max_workers=16, thread_name_prefix="safefetch-dns")


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 10 * 1024**2
    timeout: float = 10.0  # total seconds for the whole fetch, redirects included
    max_redirects: int = 5
    content_types: tuple[str, ...] = ("image/",)  # prefixes; application/octet-stream only if the bytes decode
    allow_hosts: frozenset[str] = frozenset()  # host, host:port, [v6] or [v6]:port that skip the address check
    max_pixels: int = 64_000_000  # decode_image's bomb guard, over all frames


DEFAULT_LIMITS = FetchLimits()


def _short(url: str) -> str:
    """URLs go into messages users see; a data: URL can be megabytes long."""
    return url if len(url) <= 200 else url[:200] + "…"


def check_url(url: str) -> SplitResult:
    """Refuse URLs that are not plain http(s) with a host, before anything is resolved or fetched.

    User info is refused outright: `http://trusted@evil/` tricks people, and parsers disagree on where the
    host starts. So is `%` in the host (percent-encoding, IPv6 zone ids): no public host needs it.
    """
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise FetchRefused(f"refused {_short(url)!r}: the URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchRefused(f"refused {_short(url)!r}: not a valid URL ({exc})") from exc
    if parts.scheme.lower() not in _SCHEMES:
        raise FetchRefused(f"refused {_short(url)!r}: only http and https URLs can be fetched")
    if "@" in parts.netloc:
        raise FetchRefused(f"refused {_short(url)!r}: user names and passwords in URLs are not accepted")
    if not parts.hostname:
        raise FetchRefused(f"refused {_short(url)!r}: the URL has no host")
    if "%" in parts.hostname:
        raise FetchRefused(f"refused {_short(url)!r}: percent-encoded hosts and IPv6 zone ids are not accepted")
    if port == 0:
        raise FetchRefused(f"refused {_short(url)!r}: port 0")
    return parts


def _numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address inet_aton reads in a numeric host (127.1, 0x7f.1, 2130706433), None for a host name.

    A host that looks numeric but is not valid (08.0.0.1, 256.0.0.1) is refused rather than sent to DNS.
    """
    if not _NUMERIC_HOST.fullmatch(host):
        return None
    values = []
    for label in host.lower().removesuffix(".").split("."):
        if label.startswith("0x"):
            values.append(int(label[2:] or "0", 16))
        elif label.startswith("0") and len(label) > 1:
            if not set(label) <= set("01234567"):
                raise FetchRefused(f"refused {host!r}: malformed numeric address")
            values.append(int(label, 8))
        else:
            values.append(int(label))
    *head, last = values
    if any(value > 255 for value in head) or last >= 256 ** (4 - len(head)):
        raise FetchRefused(f"refused {host!r}: malformed numeric address")
    return ipaddress.IPv4Address(sum(value << (8 * (3 - i)) for i, value in enumerate(head)) + last)


def _ip_literal(host: str) -> IPAddress | None:
    """The address a host names by number, in any form, or None when it is a name to resolve."""
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return _numeric_ipv4(host)


def _address_problem(ip: IPAddress) -> str | None:
    """Why an address must not be connected to, or None if it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return f"{ip} has an IPv6 zone id"
        embedded = [("IPv4-mapped", ip.ipv4_mapped), ("6to4", ip.sixtofour)]
        embedded += [("Teredo", inner) for inner in ip.teredo or ()]
        for kind, inner in embedded:
            problem = None if inner is None else _address_problem(inner)
            if problem:
                return f"{ip} is the {kind} form of an address that is refused: {problem}"
    reasons = (
        (ip.is_unspecified, "the unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (getattr(ip, "is_site_local", False), "a site-local address"),
        (ip in _SHARED_SPACE, "in the shared address space 100.64.0.0/10"),
        (ip.is_reserved, "a reserved address"),
        (ip.is_private, "a private address"),
        (not ip.is_global, "not a globally routable address"),
    )
    for refused, reason in reasons:
        if refused:
            return f"{ip} is {reason}"
    return None


def _resolve(host: str, port: int, timeout: float | None) -> list[IPAddress]:
    """Every address of a host, without checking them; a numeric host is read here, never by DNS."""
    literal = _ip_literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = _RESOLVER.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM).result(timeout)
    except TimeoutError as exc:  # before OSError, of which it is a subclass
        raise FetchRefused(f"resolving {host!r} took longer than the time limit", 504) from exc
    except (OSError, UnicodeError, ValueError) as exc:
        raise FetchRefused(f"cannot resolve {host!r}: {exc}", 502) from exc
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if not addresses:
        raise FetchRefused(f"{host!r} has no addresses", 502)
    return addresses


def resolve_checked(host: str, port: int, *, timeout: float | None = None) -> list[str]:
    """The addresses to connect to for host:port, refused (400) if any one of them is not public.

    One bad address is enough: a name that resolves to a public and a private address could be answered
    with either on the next lookup, and a fetch connects to whichever comes first.
    """
    addresses = _resolve(host, port, timeout)
    for address in addresses:
        problem = _address_problem(address)
        if problem:
            raise FetchRefused(f"refused {host!r}: {problem}")
    return [str(address) for address in addresses]


def _allowed(host: str, port: int, allow_hosts: frozenset[str]) -> bool:
    """Whether the allowlist names this host, with or without its port (IPv6 in brackets or not)."""
    allowed = {entry.lower() for entry in allow_hosts}
    host = host.lower()
    names = {host, f"[{host}]"} if ":" in host else {host}
    return any(name in allowed or f"{name}:{port}" in allowed for name in names)


def _budget(deadline: float, timeout: float | None, error: type[Exception]) -> float:
    """The time one network operation may take: its own timeout, cut to what is left of the whole fetch."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the time limit for the whole fetch ran out")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read, write and TLS handshake ends by the fetch's deadline.

    httpx's timeouts are per operation, so a server dripping one byte at a time would never trip them.
    """

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _budget(self._deadline, timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _budget(self._deadline, timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        budget = _budget(self._deadline, timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, budget), self._deadline)

    def get_extra_info(self, info: str) -> object:
        return self._stream.get_extra_info(info)


class _PinnedBackend(httpcore.SyncBackend):
    """Connects only to the addresses pinned for a (host, port) when its URL was checked, by number."""

    def __init__(self, pins: dict[tuple[str, int], list[str]], deadline: float) -> None:
        self._pins = pins
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self._pins.get((host, port))
        if not addresses:
            raise FetchRefused(f"refused a connection to {host}:{port}, which was never checked")
        for address in addresses[:-1]:
            with contextlib.suppress(httpcore.ConnectError):
                return self._connect(address, port, timeout, local_address, socket_options)
        return self._connect(addresses[-1], port, timeout, local_address, socket_options)

    def _connect(
        self,
        address: str,
        port: int,
        timeout: float | None,
        local_address: str | None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
    ) -> httpcore.NetworkStream:
        budget = _budget(self._deadline, timeout, httpcore.ConnectTimeout)
        stream = super().connect_tcp(address, port, budget, local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One CA bundle load per process: contexts are safe to share between connections and threads."""
    return httpx.create_ssl_context()


def _pinned_transport(pins: dict[tuple[str, int], list[str]], deadline: float) -> httpx.HTTPTransport:
    """httpx's own transport, its connection pool swapped for one on the pinning backend.

    HTTPTransport takes no network backend; the pool it builds is all its state, so it is replaced. No proxy
    is ever used: a proxy would connect to the unchecked host on our behalf.
    """
    transport = httpx.HTTPTransport(verify=_ssl_context(), trust_env=False)
    backend = _PinnedBackend(pins, deadline)
    transport._pool = httpcore.ConnectionPool(ssl_context=_ssl_context(), network_backend=backend)
    return transport


def _checked_request(
    url: str, limits: FetchLimits, pins: dict[tuple[str, int], list[str]], deadline: float
) -> httpx.Request:
    """A request for one hop, after its URL and the addresses of its host passed the checks (and were pinned).

    The host checked is the one httpx parsed, which is the one the connection is made for.
    """
    check_url(url)
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise FetchRefused(f"refused {_short(url)!r}: not a valid URL ({exc})") from exc
    host = target.raw_host.decode("ascii")
    port = target.port or _DEFAULT_PORTS[target.scheme]
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchRefused(f"fetching {_short(url)} took longer than the {limits.timeout:g} s limit", 504)
    if (host, port) not in pins:
        if _allowed(host, port, limits.allow_hosts):
            pins[host, port] = [str(address) for address in _resolve(host, port, left)]
        else:
            pins[host, port] = resolve_checked(host, port, timeout=left)
    return httpx.Request("GET", target, headers=_HEADERS, extensions={"timeout": httpx.Timeout(left).as_dict()})


def _check_headers(response: httpx.Response, url: httpx.URL, limits: FetchLimits) -> None:
    """Refuse a body by its headers, before reading it."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise FetchRefused(f"{url} sent a {encoding}-encoded body; only uncompressed bodies are accepted", 415)
    media = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media not in ("", "application/octet-stream") and not media.startswith(limits.content_types):
        raise FetchRefused(f"{url} is {media}, not an image", 415)
    length = response.headers.get("Content-Length", "").strip()
    if length.isdigit() and int(length) > limits.max_bytes:
        raise FetchRefused(f"{url} is {int(length)} bytes, over the limit of {limits.max_bytes}", 413)


def _read_capped(response: httpx.Response, url: httpx.URL, limits: FetchLimits, deadline: float) -> bytes:
    """The body, streamed, stopping as soon as it passes the byte cap or the deadline."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():  # identity only (checked), so these are the bytes as sent
        size += len(chunk)
        if size > limits.max_bytes:
            raise FetchRefused(f"{url} sent more than the limit of {limits.max_bytes} bytes", 413)
        if time.monotonic() > deadline:
            raise FetchRefused(f"fetching {url} took longer than the {limits.timeout:g} s limit", 504)
        chunks.append(chunk)
    return b"".join(chunks)


def _exchange(
    http: httpx.BaseTransport, request: httpx.Request, limits: FetchLimits, deadline: float
) -> tuple[bytes, str | None]:
    """One request: the body of a 200 answer, or the absolute URL a redirect points to."""
    url = request.url
    try:
        response = http.handle_request(request)
        try:
            if response.is_redirect:
                return b"", str(url.join(response.headers["Location"]))
            if response.status_code != 200:
                raise FetchRefused(f"{url} answered HTTP {response.status_code}", 502)
            _check_headers(response, url, limits)
            return _read_capped(response, url, limits, deadline), None
        finally:
            response.close()
    except httpx.TimeoutException as exc:
        raise FetchRefused(f"fetching {url} took longer than the {limits.timeout:g} s limit", 504) from exc
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError, ValueError) as exc:
        raise FetchRefused(f"fetching {url} failed: {str(exc) or type(exc).__name__}", 502) from exc


def fetch_image_bytes(
    url: str, limits: FetchLimits = DEFAULT_LIMITS, *, transport: httpx.BaseTransport | None = None
) -> tuple[bytes, str]:
    """The bytes of the image at a user-supplied URL and the URL they came from after redirects.

    Raises FetchRefused, and nothing else, when a check or limit refuses the URL or its answer. A `transport`
    (tests, a mock) gets the same URL, address and redirect checks; only the default one pins connections.
    """
    deadline = time.monotonic() + limits.timeout
    pins: dict[tuple[str, int], list[str]] = {}
    http = transport if transport is not None else _pinned_transport(pins, deadline)
    try:
        for hop in range(limits.max_redirects + 1):
            try:
                request = _checked_request(url, limits, pins, deadline)
            except FetchRefused as exc:
                if hop:
                    raise FetchRefused(f"redirected to {_short(url)}: {exc}", exc.http_status) from exc
                raise
            body, location = _exchange(http, request, limits, deadline)
            if location is None:
                try:
                    decode_image(body, name=request.url.path, max_pixels=limits.max_pixels)
                except ImageError as exc:
                    raise FetchRefused(f"{request.url} is not a usable image: {exc}", 415) from exc
                return body, str(request.url)
            url = location
        raise FetchRefused(f"more than {limits.max_redirects} redirects; the last pointed to {_short(url)}")
    finally:
        if transport is None:
            http.close()
