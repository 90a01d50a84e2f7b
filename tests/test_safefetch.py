"""safefetch: SSRF refusals without any connection, then real fetches from loopback servers started here.

No test sends traffic anywhere but to its own servers on 127.0.0.1 / ::1: `net` (autouse) replaces name
resolution with a table and makes any connect to another address fail before a packet leaves.
"""

from __future__ import annotations

import dataclasses
import io
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from PIL import Image

from ogasearch import safefetch
from ogasearch.errors import FetchRefused
from ogasearch.safefetch import FetchLimits, check_url, fetch_image_bytes, resolve_checked

PUBLIC = "93.184.216.34"  # a public address: it passes the check, and `net` refuses to connect to it
LOOPBACK = ("127.0.0.1", "::1")
MAX_BYTES = 64 * 1024


def _png(size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (size, size), (200, 40, 90, 255)).save(buf, "PNG")
    return buf.getvalue()


def _bomb_png(side: int = 20_000) -> bytes:
    """A real 1-bit PNG of side×side pixels: ~50 KB on the wire, 400 megapixels decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(1 + (side + 7) // 8)  # filter byte, then the packed bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


PNG = _png()
BOMB = _bomb_png()
HTML = b"<!DOCTYPE html><html><body>Not found</body></html>"


# --- the network guard ------------------------------------------------------------------------------------


@dataclass
class Net:
    names: dict[str, list[list[str]]] = field(default_factory=dict)  # host -> answers, one per lookup (last repeats)
    lookups: list[str] = field(default_factory=list)
    connects: list[tuple[str, int]] = field(default_factory=list)

    def outside(self) -> list[tuple[str, int]]:
        return [address for address in self.connects if address[0] not in LOOPBACK]


@pytest.fixture(autouse=True)
def net(monkeypatch: pytest.MonkeyPatch) -> Net:
    """Name resolution from a table (never DNS), and connects allowed to loopback only."""
    state = Net()
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def getaddrinfo(host: str, port: object, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0):
        try:  # numeric hosts only: AI_NUMERICHOST never queries a resolver
            return real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        except socket.gaierror:
            pass
        state.lookups.append(host)
        answers = state.names.get(host)
        if answers is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (test table)")
        answer = answers[min(state.lookups.count(host), len(answers)) - 1]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answer]

    def connect(sock: socket.socket, address: tuple) -> None:
        state.connects.append((address[0], address[1]))
        if address[0] not in LOOPBACK:
            raise ConnectionRefusedError(f"test guard: no connection to {address[0]} is allowed")
        real_connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return state


# --- refusals before any connection ---------------------------------------------------------------------

REFUSED = [
    ("http://127.0.0.1/", "127.0.0.1 is a loopback"),
    ("http://localhost/", "127.0.0.1 is a loopback"),
    ("http://2130706433/", "127.0.0.1 is a loopback"),
    ("http://0177.0.0.1/", "0177.0.0.1"),  # httpx already rejects leading zeros in a dotted quad
    ("http://0x7f000001/", "127.0.0.1 is a loopback"),
    ("http://0x7f.0.0.1/", "127.0.0.1 is a loopback"),
    ("http://017700000001/", "127.0.0.1 is a loopback"),
    ("http://127.1/", "127.0.0.1 is a loopback"),
    ("http://127.0.0.1./", "127.0.0.1 is a loopback"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://[::1]/", "::1 is a loopback"),
    ("http://[::ffff:127.0.0.1]/", "IPv4-mapped form"),
    ("http://[::ffff:7f00:1]/", "IPv4-mapped form"),
    ("http://[::127.0.0.1]/", "reserved"),  # IPv4-compatible, deprecated
    ("http://10.0.0.1/", "10.0.0.1 is a private"),
    ("http://172.16.5.4/", "172.16.5.4 is a private"),
    ("http://192.168.1.1:8080/", "192.168.1.1 is a private"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local"),
    ("http://100.64.0.1/", "shared address space"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "255.255.255.255"),
    ("http://[fe80::1%25eth0]/", "zone ids"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fec0::1]/", "site-local"),
    ("http://[fc00::1]/", "private"),
    ("http://[fd12:3456::1]/", "private"),
    ("http://[ff02::1]/", "multicast"),
    ("http://[2002:7f00:1::]/", "6to4 form"),
    ("http://[2002:a00:1::]/", "6to4 form"),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo"),
    ("http://[64:ff9b::7f00:1]/", "reserved"),  # NAT64 of 127.0.0.1
    ("http://08.0.0.1/", "08.0.0.1"),
    ("http://internal.test/", "10.1.2.3 is a private"),
    ("http://mixed.test/", "10.0.0.7 is a private"),
    ("http://v6only.test/", "fd00::5 is a private"),
    ("ftp://example.com/sprite.png", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("gopher://127.0.0.1:70/_GET", "only http and https"),
    ("data:image/png;base64,iVBORw0KGgo=", "only http and https"),
    ("javascript:alert(1)", "only http and https"),
    ("http:///sprite.png", "no host"),
    ("http://evil@127.0.0.1/", "user names and passwords"),
    ("http://user:pass@example.com/", "user names and passwords"),
    ("http://example.com\\@127.0.0.1/", "user names and passwords"),
    ("http://127.0.0.1%2e/", "percent-encoded"),
    ("http://example.com:0/", "port 0"),
    ("http://example.com:99999/", "not a valid URL"),
    ("http://exa mple.com/", "whitespace"),
]


@pytest.mark.parametrize(("url", "why"), REFUSED)
def test_refused_without_connecting(net: Net, url: str, why: str) -> None:
    net.names.update(
        {
            "localhost": [["127.0.0.1", "::1"]],
            "internal.test": [["10.1.2.3"]],
            "mixed.test": [[PUBLIC, "10.0.0.7"]],
            "v6only.test": [["2606:2800:220:1::1", "fd00::5"]],
        }
    )
    with pytest.raises(FetchRefused) as caught:
        fetch_image_bytes(url)
    assert caught.value.http_status == 400
    assert why in str(caught.value)
    assert net.connects == []


@pytest.mark.parametrize("host", ["2130706433", "0177.0.0.1", "0x7f000001", "0x7f.0.0.1", "127.1", "017700000001"])
def test_numeric_hosts_refused_however_getaddrinfo_reads_them(host: str) -> None:
    """Whatever the platform resolver makes of a numeric host, that address is refused too."""
    with pytest.raises(FetchRefused, match=r"127\.0\.0\.1 is a loopback"):
        resolve_checked(host, 80)
    try:
        infos = socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)  # numeric only (see `net`)
    except socket.gaierror:
        return  # this resolver does not read the form at all; the check above still does
    for info in infos:
        assert info[4][0] == "127.0.0.1"
        with pytest.raises(FetchRefused):
            resolve_checked(info[4][0], 80)


def test_public_addresses_pass(net: Net) -> None:
    net.names["images.test"] = [[PUBLIC, "2606:2800:220:1::1"]]
    assert resolve_checked("images.test", 443) == [PUBLIC, "2606:2800:220:1::1"]
    assert resolve_checked("8.8.8.8", 80) == ["8.8.8.8"]
    assert resolve_checked("[2606:4700::1111]", 80) == ["2606:4700::1111"]
    assert net.connects == []


def test_check_url_returns_the_parts() -> None:
    parts = check_url("https://OpenGameArt.org:8443/sites/default/files/a%20b.png?x=1")
    assert (parts.scheme, parts.hostname, parts.port, parts.path) == (
        "https",
        "opengameart.org",
        8443,
        "/sites/default/files/a%20b.png",
    )


def test_slow_dns_is_cut_by_the_time_limit(net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    answer = socket.getaddrinfo

    def slow(host: str, *args: object, **kwargs: object):
        if host == "slow.test":
            time.sleep(1.0)
        return answer(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    started = time.monotonic()
    with pytest.raises(FetchRefused, match="time limit") as caught:
        fetch_image_bytes("http://slow.test/sprite.png", FetchLimits(timeout=0.2))
    assert caught.value.http_status == 504
    assert time.monotonic() - started < 0.8


# --- injected transports get the same checks ---------------------------------------------------------


def test_injected_transport_is_checked_too(net: Net) -> None:
    net.names["images.test"] = [["198.51.100.10"]]  # documentation range: not global
    net.names["cdn.test"] = [[PUBLIC]]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "cdn.test" and request.url.path == "/ok.png":
            return httpx.Response(200, headers={"Content-Type": "image/png"}, content=PNG)
        return httpx.Response(302, headers={"Location": "http://10.0.0.1/x.png"})

    mock = httpx.MockTransport(handler)
    assert fetch_image_bytes("http://cdn.test/ok.png", transport=mock) == (PNG, "http://cdn.test/ok.png")
    with pytest.raises(FetchRefused, match=r"redirected to http://10\.0\.0\.1/x\.png: .*10\.0\.0\.1 is a private"):
        fetch_image_bytes("http://cdn.test/moved.png", transport=mock)
    with pytest.raises(FetchRefused, match=r"198\.51\.100\.10 is a private"):
        fetch_image_bytes("http://images.test/ok.png", transport=mock)


def test_injected_transport_keeps_the_time_limit(net: Net) -> None:
    net.names["cdn.test"] = [[PUBLIC]]

    def trickle() -> Iterator[bytes]:
        for i in range(len(PNG)):  # bounded: about 0.05 s a byte
            time.sleep(0.05)
            yield PNG[i : i + 1]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "image/png"}, content=trickle())

    started = time.monotonic()
    with pytest.raises(FetchRefused, match="limit") as caught:
        fetch_image_bytes("http://cdn.test/a.png", FetchLimits(timeout=0.3), transport=httpx.MockTransport(handler))
    assert caught.value.http_status == 504
    assert time.monotonic() - started < 0.6


def test_transport_errors_become_fetch_refused(net: Net) -> None:
    net.names["cdn.test"] = [[PUBLIC]]

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection reset", request=request)

    with pytest.raises(FetchRefused, match="connection reset") as caught:
        fetch_image_bytes("http://cdn.test/a.png", transport=httpx.MockTransport(handler))
    assert caught.value.http_status == 502


# --- loopback servers -------------------------------------------------------------------------------------


def _drip(handler: BaseHTTPRequestHandler, body: bytes, pause: float) -> None:
    for i in range(len(body)):  # bounded: one byte per pause
        handler.wfile.write(body[i : i + 1])
        handler.wfile.flush()
        time.sleep(pause)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read the server's `seen` list instead."""

    def reply(self, body: bytes, content_type: str = "image/png", *, headers: dict[str, str] | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Host")))  # type: ignore[attr-defined]
        self.close_connection = True
        path = self.path
        try:
            if path == "/sprite.png":
                self.reply(PNG)
            elif path == "/octet":
                self.reply(PNG, "application/octet-stream")
            elif path == "/octet-html":
                self.reply(HTML, "application/octet-stream")
            elif path.startswith("/hops/"):
                left = int(path.rsplit("/", 1)[1])
                self.redirect(f"/hops/{left - 1}" if left else "/sprite.png")
            elif path == "/to-private":
                self.redirect("http://10.0.0.1/x.png")
            elif path == "/to-internal-name":
                self.redirect("http://internal.test/x.png")
            elif path == "/to-file":
                self.redirect("file:///etc/passwd")
            elif path == "/html":
                self.reply(HTML, "text/html; charset=utf-8")
            elif path == "/fake.png":
                self.reply(HTML)
            elif path == "/gzip.png":
                self.reply(zlib.compress(PNG), headers={"Content-Encoding": "gzip"})
            elif path == "/bomb.png":
                self.reply(BOMB)
            elif path == "/missing.png":
                self.send_error(404)
            elif path == "/big-length":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(4 * MAX_BYTES))
                self.end_headers()
                self.wfile.write(PNG + bytes(4 * MAX_BYTES - len(PNG)))
            elif path == "/big-chunked":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for piece in [PNG] + [bytes(8192)] * (4 * MAX_BYTES // 8192):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")
            elif path == "/slow-headers":
                time.sleep(1.5)
                self.reply(PNG)
            elif path == "/drip":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(PNG)))
                self.end_headers()
                _drip(self, PNG[:40], 0.05)  # 2 s at most, each byte well inside any read timeout
            elif path == "/stall":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(PNG)))
                self.end_headers()
                _drip(self, PNG[:2], 0.6)  # a byte at once, one at 0.6 s, then silence
            else:
                self.send_error(404)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should


class Server(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[tuple[str, str | None]]  # (path, Host header) of every request

    def server_bind(self) -> None:
        """No reverse lookup of the bound address (HTTPServer's getfqdn), so no resolver traffic."""
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients hanging up mid-body is what the limit tests do."""


def _serve(host: str, kind: type[Server] = Server) -> Iterator[Server]:
    """A server on an ephemeral loopback port, in a thread, for as long as the generator is open."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = type("Bound", (kind,), {"address_family": family})((host, 0), Handler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    yield from _serve("127.0.0.1")


@pytest.fixture
def base(server: Server) -> str:
    server.seen.clear()
    return f"http://127.0.0.1:{server.server_port}"


@pytest.fixture
def limits(server: Server) -> FetchLimits:
    return FetchLimits(max_bytes=MAX_BYTES, timeout=3.0, allow_hosts=frozenset({f"127.0.0.1:{server.server_port}"}))


def test_fetches_an_image(net: Net, base: str, limits: FetchLimits) -> None:
    assert fetch_image_bytes(f"{base}/sprite.png", limits) == (PNG, f"{base}/sprite.png")
    assert fetch_image_bytes(f"{base}/octet", limits)[0] == PNG
    assert net.outside() == []


def test_allowlist_is_exact(net: Net, server: Server, base: str, limits: FetchLimits) -> None:
    net.names["localhost"] = [["127.0.0.1"]]
    for url in (f"http://localhost:{server.server_port}/sprite.png", "http://127.0.0.1:1/sprite.png"):
        with pytest.raises(FetchRefused, match=r"127\.0\.0\.1 is a loopback"):
            fetch_image_bytes(url, limits)
    assert net.connects == []


def test_host_header_is_the_urls_host(net: Net, server: Server, limits: FetchLimits) -> None:
    """A name pinned to its checked address still reaches the server under its own name."""
    net.names["images.test"] = [["127.0.0.1"]]
    allow = FetchLimits(allow_hosts=frozenset({f"Images.Test:{server.server_port}"}))  # names are case-blind
    url = f"http://images.test:{server.server_port}/sprite.png"
    server.seen.clear()
    assert fetch_image_bytes(url, allow) == (PNG, url)
    assert server.seen == [("/sprite.png", f"images.test:{server.server_port}")]


def test_connects_to_the_checked_address_only(net: Net, server: Server) -> None:
    """DNS rebinding: the name answers a public address to the check, then loopback to any later lookup.

    The fetch must connect to the checked (public) address, which the guard stops before any packet, and
    never look the name up again: an unpinned client would reach the loopback server instead.
    """
    net.names["rebind.test"] = [[PUBLIC], ["127.0.0.1"]]
    server.seen.clear()
    with pytest.raises(FetchRefused, match="test guard") as caught:
        fetch_image_bytes(f"http://rebind.test:{server.server_port}/sprite.png")
    assert caught.value.http_status == 502
    assert net.lookups == ["rebind.test"]
    assert net.connects == [(PUBLIC, server.server_port)]
    assert server.seen == []


def test_pinned_transport_refuses_hosts_never_checked(net: Net) -> None:
    """The connection layer holds the line by itself: no pin, no connection."""
    transport = safefetch._pinned_transport({}, time.monotonic() + 1.0)
    with pytest.raises(FetchRefused, match="never checked"):
        transport.handle_request(httpx.Request("GET", "http://127.0.0.1:9/"))
    transport.close()
    assert net.connects == []


def test_redirects(net: Net, base: str, limits: FetchLimits) -> None:
    assert fetch_image_bytes(f"{base}/hops/4", limits) == (PNG, f"{base}/sprite.png")  # 5 redirects
    with pytest.raises(FetchRefused, match="more than 5 redirects") as caught:
        fetch_image_bytes(f"{base}/hops/5", limits)  # 6 redirects
    assert caught.value.http_status == 400
    assert net.outside() == []


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/to-private", r"redirected to http://10\.0\.0\.1/x\.png: refused '10\.0\.0\.1': 10\.0\.0\.1 is a private"),
        ("/to-internal-name", r"redirected to http://internal\.test/x\.png: .*10\.1\.2\.3 is a private"),
        ("/to-file", "redirected to file:/etc/passwd: .*only http and https"),
    ],
)
def test_redirect_refused_before_connecting(net: Net, base: str, limits: FetchLimits, path: str, why: str) -> None:
    net.names["internal.test"] = [["10.1.2.3"]]
    with pytest.raises(FetchRefused, match=why) as caught:
        fetch_image_bytes(base + path, limits)
    assert caught.value.http_status == 400
    assert net.outside() == []


@pytest.mark.parametrize(
    ("path", "status", "why"),
    [
        ("/big-length", 413, f"is {4 * MAX_BYTES} bytes, over the limit of {MAX_BYTES}"),
        ("/big-chunked", 413, f"sent more than the limit of {MAX_BYTES} bytes"),
        ("/html", 415, "is text/html, not an image"),
        ("/fake.png", 415, "not a usable image: not a supported image: it looks like HTML"),
        ("/octet-html", 415, "not a usable image"),
        ("/gzip.png", 415, "gzip-encoded"),
        ("/bomb.png", 415, "image too large, possibly a decompression bomb"),
        ("/missing.png", 502, "answered HTTP 404"),
    ],
)
def test_answers_refused(base: str, limits: FetchLimits, path: str, status: int, why: str) -> None:
    with pytest.raises(FetchRefused) as caught:
        fetch_image_bytes(base + path, limits)
    assert caught.value.http_status == status
    assert why in str(caught.value)


def test_pixel_limit_is_a_setting(base: str, limits: FetchLimits) -> None:
    with pytest.raises(FetchRefused, match="image too large: 16x16 is 256 pixels, over the limit of 100") as caught:
        fetch_image_bytes(f"{base}/sprite.png", dataclasses.replace(limits, max_pixels=100))
    assert caught.value.http_status == 415


@pytest.mark.parametrize(
    ("path", "limit", "most"),
    [
        ("/slow-headers", 0.5, 1.0),
        ("/drip", 0.5, 1.0),  # a drip of bytes never trips a per-read timeout
        ("/stall", 1.0, 1.4),  # a read started late must not get a whole timeout of its own (would end at 1.6 s)
    ],
)
def test_time_limit_covers_the_whole_fetch(base: str, server: Server, path: str, limit: float, most: float) -> None:
    limits = FetchLimits(timeout=limit, allow_hosts=frozenset({f"127.0.0.1:{server.server_port}"}))
    started = time.monotonic()
    with pytest.raises(FetchRefused, match=rf"longer than the {limit:g} s limit") as caught:
        fetch_image_bytes(base + path, limits)
    assert caught.value.http_status == 504
    assert time.monotonic() - started < most


def test_connection_refused(net: Net) -> None:
    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    limits = FetchLimits(allow_hosts=frozenset({f"127.0.0.1:{port}"}))
    with pytest.raises(FetchRefused, match="failed") as caught:
        fetch_image_bytes(f"http://127.0.0.1:{port}/sprite.png", limits)
    assert caught.value.http_status == 502


def test_ipv6_loopback_allowlisted_in_brackets() -> None:
    try:
        servers = _serve("::1")
        server = next(servers)
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    try:
        url = f"http://[::1]:{server.server_port}/sprite.png"
        with pytest.raises(FetchRefused, match="::1 is a loopback"):
            fetch_image_bytes(url)
        assert fetch_image_bytes(url, FetchLimits(allow_hosts=frozenset({f"[::1]:{server.server_port}"}))) == (PNG, url)
    finally:
        servers.close()


# --- https: the pinned connection still verifies the certificate for the URL's host --------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-days", "1", "-subj", "/CN=images.test", "-addext", "subjectAltName=DNS:images.test"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_https_uses_the_urls_name_for_sni_and_certificate(
    net: Net, monkeypatch: pytest.MonkeyPatch, tls_files: tuple[Path, Path]
) -> None:
    cert, key = tls_files
    names: list[str | None] = []
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server_context.sni_callback = lambda _sock, name, _ctx: names.append(name)
    client_context = ssl.create_default_context(cafile=str(cert))
    monkeypatch.setattr(safefetch, "_ssl_context", lambda: client_context)

    class TLSServer(Server):
        def get_request(self) -> tuple[socket.socket, object]:
            sock, address = super().get_request()
            return server_context.wrap_socket(sock, server_side=True), address

    net.names["images.test"] = [["127.0.0.1"]]
    net.names["other.test"] = [["127.0.0.1"]]
    servers = _serve("127.0.0.1", TLSServer)
    port = next(servers).server_port
    try:
        allow = FetchLimits(timeout=3.0, allow_hosts=frozenset({f"images.test:{port}", f"other.test:{port}"}))
        url = f"https://images.test:{port}/sprite.png"
        assert fetch_image_bytes(url, allow) == (PNG, url)
        assert names == ["images.test"]
        with pytest.raises(FetchRefused, match="certificate") as caught:  # the certificate names images.test only
            fetch_image_bytes(f"https://other.test:{port}/sprite.png", allow)
        assert caught.value.http_status == 502
    finally:
        servers.close()


def test_no_exception_but_fetch_refused(net: Net) -> None:
    """Odd inputs and transports that fail strangely still come back as FetchRefused."""
    net.names["cdn.test"] = [[PUBLIC]]
    failures: list[Callable[[httpx.Request], httpx.Response]] = [
        lambda request: httpx.Response(302, headers={"Location": "http://[::1"}),
        lambda request: httpx.Response(200, headers={"Content-Type": "image/png"}, content=b""),
    ]
    for handler in failures:
        with pytest.raises(FetchRefused):
            fetch_image_bytes("http://cdn.test/a.png", transport=httpx.MockTransport(handler))
    for url in [
        "",
        "http://",
        "http://[::1/",
        "http://0x1.0x2.0x3.0x4.0x5/",
        "https://\u0000/",
        "http://xn--/",
        "http://" + "a" * 300 + "/",
    ]:
        with pytest.raises(FetchRefused):
            fetch_image_bytes(url)
    assert net.connects == []
