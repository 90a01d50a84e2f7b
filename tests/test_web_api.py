"""The JSON API and the pages, in process, over a small searchable data dir (a crawl of the OGA-like test site
plus a folder of sprites): every endpoint with real values, paging and filters, and bad input answered with a
4xx status and a message (JSON for the API, a page for the browser), never a 500 or a traceback.

Image URLs are fetched from a loopback server started here and allowlisted. `net` (autouse) answers name
lookups from a table and fails any connect to an address other than loopback, so refused URLs are shown to be
refused before any connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import io
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from webapp import SearchableData, build_searchable

from ogasearch.ingest.canonical import canonicalize
from ogasearch.thumbs import integer_scale
from ogasearch.web.app import MULTIPART_OVERHEAD, create_app

SMALL_UPLOAD = 4096  # max_upload_bytes of the `small` app
SMALL_PIXELS = 600  # max_query_pixels of the `small` app: a 16×16 sprite passes, the 64×32 sheet does not
SPRITE_PATH = "/files/my%20sprite.png"  # served by the loopback image server, exactly so
REQUIRED = {
    "item_id",
    "score",
    "page_url",
    "file_url",
    "title",
    "author",
    "licenses",
    "archive_path",
    "bbox",
    "width",
    "height",
    "thumb_url",
    "credit",
}


# --- the network guard and a loopback image server ------------------------------------------------------


@dataclass
class Net:
    connects: list[tuple[str, int]] = field(default_factory=list)

    def outside(self) -> list[tuple[str, int]]:
        return [address for address in self.connects if address[0] not in ("127.0.0.1", "::1")]


@pytest.fixture(autouse=True)
def net(monkeypatch: pytest.MonkeyPatch) -> Net:
    """Numeric hosts and `localhost` only (never DNS); connects to loopback only."""
    state = Net()
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        if host == "localhost":
            host = "127.0.0.1"
        return real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)

    def connect(sock: socket.socket, address: Any) -> None:
        state.connects.append((address[0], address[1]))
        if address[0] not in ("127.0.0.1", "::1"):
            raise ConnectionRefusedError(f"test guard: no connection to {address[0]} is allowed")
        real_connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return state


class ImageHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ImageServer

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read the server's `seen` list instead."""

    def do_GET(self) -> None:
        self.server.seen.append(self.path)
        self.close_connection = True
        status, headers, body = self.server.routes.get(self.path, (404, {}, b""))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ImageServer(ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[str, tuple[int, dict[str, str], bytes]]
    seen: list[str]  # the request target of every request, exactly as sent

    def server_bind(self) -> None:
        """No reverse lookup of the bound address (HTTPServer's getfqdn)."""
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name, self.server_port = self.server_address[:2]


# --- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> SearchableData:
    return build_searchable(tmp_path_factory.mktemp("web-api"))


def asset(data: SearchableData, name: str) -> Path:
    return data.assets / "monsters" / name if name.startswith("monster") else data.assets / name


@pytest.fixture(scope="module")
def image_server(data: SearchableData) -> Iterator[ImageServer]:
    server = ImageServer(("127.0.0.1", 0), ImageHandler)
    png = {"Content-Type": "image/png"}
    server.routes = {
        SPRITE_PATH: (200, png, asset(data, "monster 05.png").read_bytes()),
        "/to-private": (302, {"Location": "http://10.0.0.1/x.png"}, b""),
        "/page.html": (200, {"Content-Type": "text/html"}, b"<!doctype html><p>not an image</p>"),
        "/sheet.png": (200, png, asset(data, "tileset.png").read_bytes()),
    }
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def images(image_server: ImageServer) -> ImageServer:
    image_server.seen.clear()
    return image_server


def base_url(server: ImageServer) -> str:
    return f"http://127.0.0.1:{server.server_port}"


@pytest.fixture(scope="module")
def client(data: SearchableData, image_server: ImageServer) -> Iterator[TestClient]:
    cfg = data.config(fetch_allow_hosts=f"127.0.0.1:{image_server.server_port}")
    with TestClient(create_app(cfg), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def small(data: SearchableData, image_server: ImageServer) -> Iterator[TestClient]:
    allow = f"127.0.0.1:{image_server.server_port}"
    cfg = data.config(max_upload_bytes=SMALL_UPLOAD, max_query_pixels=SMALL_PIXELS, fetch_allow_hosts=allow)
    with TestClient(create_app(cfg), raise_server_exceptions=False) as client:
        yield client


# --- helpers --------------------------------------------------------------------------------------------


def results(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body = response.json()
    for result in body["results"]:
        assert result.keys() >= REQUIRED
        assert result["thumb_url"] == f"/thumb/{result['item_id']}.png"
    return body["results"]


def ids(found: list[dict[str, Any]]) -> list[int]:
    return [r["item_id"] for r in found]


def search_image(client: TestClient, data: bytes, **params: Any) -> list[dict[str, Any]]:
    return results(client.post("/api/search/image", files={"file": ("q.png", data, "image/png")}, params=params))


def png_bytes(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(out, "PNG")
    return out.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def item_id_of(client: TestClient, data: SearchableData, name: str) -> int:
    """The item of a local sprite, found by uploading its own file."""
    found = search_image(client, asset(data, name).read_bytes(), count=1)
    assert found[0]["match"] == "exact" and found[0]["file_url"] == asset(data, name).as_uri()
    return found[0]["item_id"]


def tile(data: SearchableData, row: int, col: int) -> np.ndarray:
    sheet = decode(asset(data, "tileset.png").read_bytes())
    return sheet[row * 16 : (row + 1) * 16, col * 16 : (col + 1) * 16]


def assert_json_error(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body == {"status": status, "error": body["error"]}
    assert isinstance(body["error"], str) and body["error"]
    for word in words:
        assert word in body["error"], body["error"]


def assert_page_error(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    text = html.unescape(response.text)
    assert "Traceback" not in text and "internal error" not in text
    for word in words:
        assert word in text


class Page(HTMLParser):
    """What the tests read from a page: form inputs, links, `rel` links and result items."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.inputs: dict[str, list[str]] = {}
        self.rel: dict[str, str] = {}
        self.hrefs: list[str] = []
        self.items: list[int] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input" and a.get("name"):
            self.inputs.setdefault(a["name"], []).append(a.get("value", ""))
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
            if a.get("rel"):
                self.rel[a["rel"]] = a["href"]
        if "data-item" in a:
            self.items.append(int(a["data-item"]))


def page(client: TestClient, target: str) -> Page:
    response = client.get(target)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    return Page(response.text)


def query_of(link: str) -> dict[str, list[str]]:
    assert link.startswith("/?"), link
    return parse_qs(urlsplit(link).query, keep_blank_values=True)


# --- the API: words ----------------------------------------------------------------------------------------


def test_words_find_the_oga_page_with_its_author_and_licences(client: TestClient, data: SearchableData) -> None:
    page_ = data.pages[2]  # "Épée Icons 3": two licences, an author with a non-ASCII name, an attribution
    body = client.get("/api/search", params={"q": page_.title}).json()
    assert body["query"] == {"q": page_.title, "kind": "text", "upload": None}
    assert (body["count"], body["offset"]) == (20, 0)
    found = results(client.get("/api/search", params={"q": page_.title}))
    first = found[0]
    assert first["title"] == page_.title
    assert first["author"] == page_.author == "Mira K\u014dsaka"
    assert first["licenses"] == [name for name, _ in page_.licenses] == ["CC-BY-SA 3.0", "GPL 3.0"]
    assert first["page_url"].endswith(page_.path)
    assert any(first["file_url"].endswith(f.path) for f in page_.files)
    assert first["attribution"] == page_.attribution
    assert first["match"] == "text" and 0 < first["score"] <= 1
    for part in (page_.title, page_.author, "CC-BY-SA 3.0 / GPL 3.0", first["page_url"]):
        assert part in first["credit"]
    assert all(r["title"] == page_.title for r in found)  # only this page has all three words


def test_words_find_files_inside_an_archive(client: TestClient, data: SearchableData) -> None:
    page_ = data.pages[1]  # "Forest “Tiles” 2" has `tiles 10001 100%.zip` with pack/sprite 0.png etc.
    zipped = next(f for f in page_.files if f.name.endswith(".zip"))
    found = results(client.get("/api/search", params={"q": "Forest Tiles 2", "count": 100}))
    members = {r["archive_path"] for r in found if r["file_url"].endswith(zipped.path)}
    assert members and members <= {"pack/sprite 0.png", "pack/sprite 1.png", "pack/\u00e9l\u00e9ments/tile.png"}
    assert all(r["title"] == page_.title and r["licenses"] == ["CC-BY 3.0"] for r in found)


def test_count_default_and_maximum(client: TestClient) -> None:
    body = client.get("/api/search", params={"q": "monster"}).json()
    assert body["count"] == 20 and len(body["results"]) == 20
    everything = results(client.get("/api/search", params={"q": "monster", "count": 100}))
    assert len(everything) == 24  # the 24 local monsters, all on one page of at most 100
    assert_json_error(client.get("/api/search", params={"q": "monster", "count": 101}), 422, "count")


def test_offset_pages_without_overlap(client: TestClient) -> None:
    everything = ids(results(client.get("/api/search", params={"q": "monster", "count": 100})))
    pages = [
        ids(results(client.get("/api/search", params={"q": "monster", "count": 10, "offset": o}))) for o in (0, 10, 20)
    ]
    assert [len(p) for p in pages] == [10, 10, 4]
    assert pages[0] + pages[1] + pages[2] == everything
    assert results(client.get("/api/search", params={"q": "monster", "offset": 24})) == []


def test_licence_filter(client: TestClient) -> None:
    everything = results(client.get("/api/search", params={"q": "png", "count": 100}))
    cc0 = results(client.get("/api/search", params={"q": "png", "count": 100, "license": "CC0"}))
    assert cc0 and all(any("CC0" in name for name in r["licenses"]) for r in cc0)
    assert any("CC0" not in " ".join(r["licenses"]) for r in everything)  # the filter has something to remove
    assert {r["item_id"] for r in everything if "CC0" in r["licenses"]} <= set(ids(cc0))
    gpl = results(client.get("/api/search", params={"q": "png", "count": 100, "license": "gpl"}))  # case-blind
    assert gpl and all(any("GPL" in name for name in r["licenses"]) for r in gpl)


# --- the API: images -------------------------------------------------------------------------------------


def test_uploaded_sprite_finds_that_exact_file_first(client: TestClient, data: SearchableData) -> None:
    raw = asset(data, "monster 07.png").read_bytes()
    response = client.post("/api/search/image", files={"file": ("monster 07.png", raw, "image/png")})
    body = response.json()
    assert body["query"] == {"kind": "image", "upload": hashlib.sha256(raw).hexdigest()}
    first = results(response)[0]
    assert first["file_url"] == asset(data, "monster 07.png").as_uri()
    assert (first["match"], first["score"]) == ("exact", 1.0)
    assert (first["bbox"], first["width"], first["height"], first["archive_path"]) == (None, 16, 16, "")
    assert (first["title"], first["author"], first["page_url"], first["licenses"]) == (None, None, None, [])
    assert "monster 07.png" in first["credit"]
    assert all(r["match"] != "exact" for r in results(response)[1:])


def test_a_tile_finds_the_sheet_with_its_box(client: TestClient, data: SearchableData) -> None:
    piece = tile(data, 1, 1)
    for query in (piece, np.repeat(np.repeat(piece, 3, axis=0), 3, axis=1)):  # the same sprite at 3× too
        first = search_image(client, png_bytes(query))[0]
        assert first["file_url"] == asset(data, "tileset.png").as_uri()
        assert first["bbox"] == [16, 16, 32, 32]
        assert (first["width"], first["height"], first["match"]) == (16, 16, "exact")


def test_kind_filter(client: TestClient, data: SearchableData) -> None:
    query = png_bytes(tile(data, 0, 2))
    tiles = search_image(client, query, kind="tiles", count=100)
    assert tiles and all(r["bbox"] is not None for r in tiles)
    assert tiles[0]["bbox"] == [32, 0, 48, 16]
    whole = search_image(client, query, kind="whole", count=100)
    assert whole and all(r["bbox"] is None for r in whole)
    both = search_image(client, query, count=100)
    assert any(r["bbox"] is None for r in both) and any(r["bbox"] is not None for r in both)


def test_more_like_this_leaves_the_item_out(client: TestClient, data: SearchableData) -> None:
    item = item_id_of(client, data, "monster 07.png")
    response = client.get(f"/api/similar/{item}", params={"count": 100})
    assert response.json()["query"] == {"similar": item, "kind": "similar"}
    found = results(response)
    assert found and item not in ids(found)
    assert ids(results(client.get(f"/api/similar/{item}", params={"count": 5, "offset": 5}))) == ids(found)[5:10]


def test_item_provenance(client: TestClient, data: SearchableData) -> None:
    page_ = data.pages[0]
    hit = results(client.get("/api/search", params={"q": page_.title, "count": 1}))[0]
    info = client.get(f"/api/items/{hit['item_id']}").json()
    assert (info["item_id"], info["file_url"], info["bbox"]) == (hit["item_id"], hit["file_url"], None)
    assert info["thumb_url"] == hit["thumb_url"]
    [where] = info["pages"]
    assert (where["title"], where["author"]) == (page_.title, page_.author)
    assert [lic["name"] for lic in where["licenses"]] == ["CC0"] and where["url"].endswith(page_.path)
    assert where["credit"] == hit["credit"]
    tile_hit = search_image(client, png_bytes(tile(data, 1, 3)), count=1)[0]
    tile_info = client.get(f"/api/items/{tile_hit['item_id']}").json()
    assert tile_info["bbox"] == [48, 16, 64, 32] and tile_info["pages"] == []


def test_stats(client: TestClient, data: SearchableData) -> None:
    stats = client.get("/api/stats").json()
    assert stats["pages"] == len(data.pages)
    assert stats["files"] == sum(len(p.files) for p in data.pages) + 25  # 24 monsters and the sheet
    assert stats["tiles"] >= 8  # the sheet's 4×2 grid at least
    assert stats["whole"] + stats["tiles"] == stats["indexed"]
    assert stats["model"] == "pixel" and stats["last_crawl_finished"] >= stats["last_crawl_started"] > 0


def test_thumbnail_is_crisp_and_cached(client: TestClient, data: SearchableData) -> None:
    item = item_id_of(client, data, "monster 07.png")
    response = client.get(f"/thumb/{item}.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert "max-age=" in response.headers["cache-control"] and response.headers["etag"].startswith('"')
    native = canonicalize(decode(asset(data, "monster 07.png").read_bytes())).pixels
    up, down = integer_scale(native.shape[1], native.shape[0], 128)
    assert down == 1 and up > 1
    assert np.array_equal(decode(response.content), np.repeat(np.repeat(native, up, axis=0), up, axis=1))
    again = client.get(f"/thumb/{item}.png", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == response.headers["etag"]
    assert client.get(f"/thumb/{item}.png", headers={"If-None-Match": '"other"'}).status_code == 200


def test_thumbnail_sizes_conditional_requests_and_head(client: TestClient, data: SearchableData) -> None:
    item = item_id_of(client, data, "monster 07.png")
    small, large = (decode(client.get(f"/thumb/{item}.png", params={"size": s}).content) for s in (64, 256))
    assert max(small.shape[:2]) <= 64 < max(large.shape[:2]) <= 256
    assert_page_error(client.get(f"/thumb/{item}.png", params={"size": 100}), 422, "size")
    etag = client.get(f"/thumb/{item}.png").headers["etag"]
    for header in ("*", f'"x", {etag}', f"W/{etag}"):
        assert client.get(f"/thumb/{item}.png", headers={"If-None-Match": header}).status_code == 304, header
    assert client.get(f"/thumb/{item}.png", headers={"If-None-Match": etag[:-2] + '"'}).status_code == 200
    head = client.head(f"/thumb/{item}.png")
    assert head.status_code == 200 and head.headers["etag"] == etag and head.content == b""


def test_thumbnail_of_a_tile_is_cut_from_its_sheet(client: TestClient, data: SearchableData) -> None:
    piece = tile(data, 0, 1)
    item = search_image(client, png_bytes(piece), count=1)[0]["item_id"]
    thumb = decode(client.get(f"/thumb/{item}.png").content)
    native = canonicalize(piece).pixels
    up = integer_scale(native.shape[1], native.shape[0], 128)[0]
    assert np.array_equal(thumb, np.repeat(np.repeat(native, up, axis=0), up, axis=1))


def test_openapi_docs(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = client.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {
        "/api/search",
        "/api/search/image",
        "/api/search/url",
        "/api/similar/{item_id}",
        "/api/items/{item_id}",
        "/api/stats",
    } <= paths
    assert "/" not in paths and "/upload" not in paths  # the pages stay out of the API docs
    form = schema["paths"]["/api/search/image"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert "file" in schema["components"]["schemas"][form["$ref"].rsplit("/", 1)[1]]["required"]


# --- the API: image URLs -------------------------------------------------------------------------------------


def test_image_url_search(client: TestClient, data: SearchableData, images: ImageServer, net: Net) -> None:
    url = base_url(images) + SPRITE_PATH
    want = asset(data, "monster 05.png")
    by_url = client.get("/api/search/url", params={"url": url})
    assert by_url.json()["query"] == {
        "url": url,
        "kind": "url",
        "upload": hashlib.sha256(want.read_bytes()).hexdigest(),
    }
    by_q = client.get("/api/search", params={"q": url})
    assert by_q.json()["query"]["kind"] == "url"
    for response in (by_url, by_q):
        first = results(response)[0]
        assert (first["file_url"], first["match"]) == (want.as_uri(), "exact")
    assert images.seen == [SPRITE_PATH, SPRITE_PATH]  # the path exactly as given, once per search
    pasted = url.replace("%20", " ")  # as people paste it: the space is escaped once before fetching
    assert results(client.get("/api/search/url", params={"url": pasted}))[0]["file_url"] == want.as_uri()
    assert images.seen[-1] == SPRITE_PATH
    assert net.outside() == []


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1/sprite.png", "127.0.0.1 is a loopback"),
        ("http://localhost/sprite.png", "127.0.0.1 is a loopback"),
        ("http://2130706433/", "127.0.0.1 is a loopback"),
        ("http://0x7f.1/", "127.0.0.1 is a loopback"),
        ("http://0x7f000001/", "127.0.0.1 is a loopback"),
        ("http://127.1/", "127.0.0.1 is a loopback"),
        ("http://[::ffff:127.0.0.1]/", "IPv4-mapped form"),
        ("http://[::1]/", "::1 is a loopback"),
        ("http://10.0.0.1/x.png", "10.0.0.1 is a private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://0.0.0.0/", "unspecified"),
        ("file:///etc/passwd", "only http and https"),
        ("http://user:pass@127.0.0.1/", "user names and passwords"),
    ],
)
def test_refused_urls(client: TestClient, images: ImageServer, net: Net, url: str, why: str) -> None:
    assert_json_error(client.get("/api/search/url", params={"url": url}), 400, why)
    if url.startswith("http"):
        assert_json_error(client.get("/api/search", params={"q": url}), 400, why)
    assert net.connects == [] and images.seen == []


def test_allowlist_is_exact(client: TestClient, images: ImageServer, net: Net) -> None:
    url = f"http://localhost:{images.server_port}{SPRITE_PATH}"  # the allowed server under another name
    assert_json_error(client.get("/api/search/url", params={"url": url}), 400, "127.0.0.1 is a loopback")
    assert net.connects == [] and images.seen == []


def test_redirect_to_a_private_address_is_refused(client: TestClient, images: ImageServer, net: Net) -> None:
    response = client.get("/api/search/url", params={"url": base_url(images) + "/to-private"})
    assert_json_error(response, 400, "redirected to http://10.0.0.1/x.png", "10.0.0.1 is a private")
    assert images.seen == ["/to-private"]
    assert net.outside() == []  # refused before any connection to 10.0.0.1


def test_remote_answers_that_are_not_images(client: TestClient, images: ImageServer) -> None:
    assert_json_error(client.get("/api/search/url", params={"url": base_url(images) + "/page.html"}), 415, "text/html")
    assert_json_error(client.get("/api/search/url", params={"url": base_url(images) + "/gone.png"}), 502, "404")


# --- the API: bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "word"),
    [
        ("/api/search", {"q": "monster", "count": 0}, "count"),
        ("/api/search", {"q": "monster", "count": 101}, "count"),
        ("/api/search", {"q": "monster", "count": "ten"}, "count"),
        ("/api/search", {"q": "monster", "offset": -1}, "offset"),
        ("/api/search", {"q": "monster", "offset": 2**62}, "offset"),
        ("/api/search", {"q": "monster", "kind": "bogus"}, "kind"),
        ("/api/search", {}, "q"),
        ("/api/search", {"q": ""}, "q"),
        ("/api/search", {"q": "!!!"}, "no words"),
        ("/api/search", {"q": "x" * 2001}, "q"),
        ("/api/search/url", {}, "url"),
        ("/api/similar/abc", {}, "item_id"),
        ("/api/similar/0", {}, "item_id"),
        ("/api/similar/1", {"count": 0}, "count"),
        ("/api/similar/1", {"offset": 10**20}, "offset"),
        ("/api/similar/99999999999999999999", {}, "item_id"),
        ("/api/items/abc", {}, "item_id"),
        ("/api/items/-3", {}, "item_id"),
    ],
)
def test_bad_parameters(client: TestClient, path: str, params: dict[str, Any], word: str) -> None:
    assert_json_error(client.get(path, params=params), 422, word)


def test_bad_image_parameters(client: TestClient, data: SearchableData) -> None:
    sprite = {"file": ("q.png", asset(data, "monster 01.png").read_bytes(), "image/png")}
    assert_json_error(client.post("/api/search/image"), 422, "file")
    assert_json_error(client.post("/api/search/image", data={"file": "not a file"}), 422, "file")
    assert_json_error(client.post("/api/search/image", files=sprite, params={"count": 0}), 422, "count")
    assert_json_error(client.post("/api/search/image", files=sprite, params={"kind": "bogus"}), 422, "kind")


@pytest.mark.parametrize(
    "path", ["/api/similar/999999", "/api/items/999999", "/thumb/999999.png", "/api/nowhere", "/upload/abc.png"]
)
def test_unknown_things(client: TestClient, path: str) -> None:
    response = client.get(path, headers={"Accept": "application/json"})
    assert_json_error(response, 404)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert client.get(path).status_code == 404  # a browser gets a page saying so


def test_unknown_upload(client: TestClient) -> None:
    assert_json_error(client.get(f"/upload/{'0' * 64}.png", headers={"Accept": "application/json"}), 404, "no upload")
    assert_page_error(client.get(f"/?upload={'0' * 64}"), 404, "no upload")


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        ("notes.txt", b"hello, this is text", "not a supported image"),
        ("page.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not a supported image"),
        ("empty.png", b"", "empty"),
        ("cut.png", None, "truncated"),
    ],
)
def test_not_an_image(client: TestClient, data: SearchableData, name: str, content: bytes | None, why: str) -> None:
    if content is None:
        content = asset(data, "monster 01.png").read_bytes()[:40]
    response = client.post("/api/search/image", files={"file": (name, content, "image/png")})
    assert_json_error(response, 415, name, why)
    assert_page_error(client.post("/upload", files={"file": (name, content, "image/png")}), 415, why)
    as_json = client.post("/upload", files={"file": (name, content)}, headers={"Accept": "application/json"})
    assert_json_error(as_json, 415, why)


def test_too_many_pixels(small: TestClient, data: SearchableData, images: ImageServer) -> None:
    sheet = asset(data, "tileset.png").read_bytes()  # 64×32 = 2048 pixels, over the limit of 600
    assert_json_error(small.post("/api/search/image", files={"file": ("sheet.png", sheet)}), 413, "pixels")
    assert_page_error(small.post("/upload", files={"file": ("sheet.png", sheet)}), 413, "pixels")
    url = base_url(images) + "/sheet.png"  # the same image by URL: the same status
    assert_json_error(small.get("/api/search/url", params={"url": url}), 413, "2048 pixels, over the limit of 600")
    assert_page_error(small.get("/", params={"imsi": url}), 413, "2048 pixels")
    assert images.seen == ["/sheet.png", "/sheet.png"]
    assert results(
        small.post("/api/search/image", files={"file": ("m.png", asset(data, "monster 01.png").read_bytes())})
    )


def multipart(size: int) -> bytes:
    """A multipart body whose file part holds `size` bytes."""
    head = (
        b'--BND\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\nContent-Type: image/png\r\n\r\n'
    )
    return head + b"\x89PNG\r\n\x1a\n" + bytes(size) + b"\r\n--BND--\r\n"


FORM = {"Content-Type": "multipart/form-data; boundary=BND"}
TOO_LARGE = f"larger than the limit of {SMALL_UPLOAD} bytes"


@pytest.mark.parametrize("size", [SMALL_UPLOAD + 100, SMALL_UPLOAD + MULTIPART_OVERHEAD + 100, 1_000_000])
def test_oversized_upload(small: TestClient, size: int) -> None:
    """Over the limit by a little (the route's check) or a lot (refused before the body is read), declared with a
    Content-Length or sent chunked: always the JSON 413 for the API, the page or JSON for /upload."""
    body = multipart(size)

    def chunked() -> Iterator[bytes]:
        for start in range(0, len(body), 16384):
            yield body[start : start + 16384]

    for content in (body, chunked()):
        response = small.post("/api/search/image", content=content, headers=FORM)
        assert ("content-length" in response.request.headers) == isinstance(content, bytes)
        assert_json_error(response, 413, TOO_LARGE)
        assert response.headers["x-content-type-options"] == "nosniff"
    assert_page_error(small.post("/upload", content=body, headers=FORM), 413, TOO_LARGE)
    assert_page_error(small.post("/upload", content=chunked(), headers=FORM), 413, TOO_LARGE)
    assert_json_error(small.post("/upload", content=body, headers={**FORM, "Accept": "application/json"}), 413)


def test_oversized_body_is_refused_as_it_streams_in(small: TestClient) -> None:
    """Driven by hand over ASGI: the 413 comes after the first chunks past the limit, not after the whole body."""
    chunk, chunks = 16384, 100
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        assert pulled <= chunks, "the app read past the end of the body"
        body = multipart(0)[:-11] if pulled == 1 else bytes(chunk)
        return {"type": "http.request", "body": body, "more_body": pulled < chunks}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/search/image",
        "raw_path": b"/api/search/image",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-type", FORM["Content-Type"].encode())],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    asyncio.run(asyncio.wait_for(small.app(scope, receive, send), 30))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert b'"status":413' in b"".join(m.get("body", b"") for m in sent[1:])
    assert pulled <= (SMALL_UPLOAD + MULTIPART_OVERHEAD) // chunk + 2


def test_no_server_errors_on_odd_input(client: TestClient) -> None:
    odd = [
        client.get("/api/search", params={"q": "a\x00b"}),
        client.get("/api/search", params={"q": '"unbalanced'}),
        client.get("/api/search", params={"q": "NEAR(a b) OR AND NOT *"}),
        client.get("/api/search", params={"q": "monster", "license": "%"}),
        client.get("/api/search", params={"q": "monster", "offset": 10_000}),
        client.get("/api/search/url", params={"url": "http://[::1"}),
        client.get("/api/search/url", params={"url": "not a url"}),
        client.post("/api/search/image", content=b'{"file": 1}', headers={"Content-Type": "application/json"}),
        client.post(
            "/api/search/image", content=b"--x\r\n", headers={"Content-Type": "multipart/form-data; boundary=x"}
        ),
        client.post("/api/search"),
        client.get("/?offset=99999999999999999999&imsi=monster"),
        client.get("/?imsi=%00"),
        client.get("/thumb/99999999999999999999.png"),
    ]
    for response in odd:
        assert response.status_code < 500, (response.request.url, response.text[:300])
        assert "Traceback" not in response.text
        if response.status_code >= 400 and response.request.url.path.startswith("/api/"):
            assert_json_error(response, response.status_code)


# --- the pages ----------------------------------------------------------------------------------------------


def test_home_page(client: TestClient) -> None:
    home = page(client, "/")
    assert home.inputs["imsi"] == [""] and home.items == [] and home.rel == {}
    assert client.get("/static/style.css").status_code == 200


def test_page_words_and_paging_links(client: TestClient) -> None:
    api = ids(results(client.get("/api/search", params={"q": "monster", "count": 100})))
    first = page(client, "/?imsi=monster&count=10")
    assert first.items == api[:10] and "prev" not in first.rel
    following = query_of(first.rel["next"])
    assert (following["imsi"], following["count"], following["offset"]) == (["monster"], ["10"], ["10"])
    second = page(client, first.rel["next"])
    assert second.items == api[10:20] and query_of(second.rel["prev"]).get("offset", ["0"]) == ["0"]
    third = page(client, second.rel["next"])
    assert third.items == api[20:] and "next" not in third.rel


@pytest.mark.parametrize(
    ("raw", "words", "paged"),
    [
        ("knight%20%26%20dragon", "knight & dragon", True),
        ("knight+%26+dragon", "knight & dragon", True),
        ("a%2Bb%20%26%20c", "a+b & c", True),  # a literal plus, sent as %2B
        ("tiles%20100%25", "tiles 100%", True),
        ("100%2525", "100%25", True),  # a literal %25 typed by a user: decoded once, it stays %25
        ("50%25+off", "50% off", False),
    ],
)
def test_seed_url_round_trip(client: TestClient, raw: str, words: str, paged: bool) -> None:
    """`/?imsi=` shows the words decoded exactly once, in the search box and in the paging links."""
    shown = page(client, f"/?imsi={raw}&count=1")
    assert shown.inputs["imsi"] == [words]
    api = ids(results(client.get("/api/search", params={"q": words, "count": 2})))
    assert shown.items == api[:1]
    if paged:
        assert len(api) == 2 and query_of(shown.rel["next"])["imsi"] == [words]
        following = page(client, shown.rel["next"])
        assert following.inputs["imsi"] == [words] and following.items == api[1:2]
        assert query_of(following.rel["prev"])["imsi"] == [words]
    else:
        assert shown.items == [] and shown.rel == {}


def test_page_image_url_with_an_escaped_space(client: TestClient, data: SearchableData, images: ImageServer) -> None:
    """An image URL holding %20, percent-encoded once into `imsi`, is fetched with exactly that path."""
    url = base_url(images) + SPRITE_PATH
    shown = page(client, "/?imsi=" + quote(url, safe=""))
    assert images.seen == [SPRITE_PATH]
    assert shown.inputs["imsi"] == [url]
    want = item_id_of(client, data, "monster 05.png")
    assert shown.items[0] == want


def test_page_filters(client: TestClient, data: SearchableData) -> None:
    for params in ("license=CC0", "license=GPL", "kind=whole"):
        api = ids(results(client.get(f"/api/search?q=png&count=100&{params}")))
        assert page(client, f"/?imsi=png&count=100&{params}").items == api
    api = ids(results(client.get("/api/search?q=png&count=2&license=CC0&kind=whole")))
    first = page(client, "/?imsi=png&count=1&license=CC0&kind=whole")
    following = query_of(first.rel["next"])  # the paging links keep the filters
    assert (following["license"], following["kind"], following["offset"]) == (["CC0"], ["whole"], ["1"])
    assert first.items == api[:1] and page(client, first.rel["next"]).items == api[1:]
    query = png_bytes(tile(data, 0, 0))
    sha = client.post("/upload", files={"file": ("t.png", query)}, headers={"Accept": "application/json"}).json()[
        "upload"
    ]
    api = ids(search_image(client, query, kind="tiles"))
    shown = page(client, f"/?upload={sha}&kind=tiles")
    assert shown.items == api and shown.inputs["imsi"] == [""]


def test_page_more_like_this(client: TestClient, data: SearchableData) -> None:
    item = item_id_of(client, data, "monster 11.png")
    shown = page(client, f"/?similar={item}")
    assert shown.items == ids(results(client.get(f"/api/similar/{item}"))) and item not in shown.items
    words = page(client, "/?imsi=monster")
    similar = [query_of(h)["similar"] for h in words.hrefs if h.startswith("/?") and "similar" in query_of(h)]
    assert similar == [[str(item)] for item in words.items]  # each card links to more like it


def test_upload_redirects_to_a_shareable_url(client: TestClient, data: SearchableData) -> None:
    raw = asset(data, "monster 09.png").read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    response = client.post("/upload", files={"file": ("m.png", raw, "image/png")}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/?upload={sha}"
    kept = client.post("/upload?license=CC0&kind=whole", files={"file": ("m.png", raw)}, follow_redirects=False)
    assert query_of(kept.headers["location"]) == {"upload": [sha], "license": ["CC0"], "kind": ["whole"]}
    as_json = client.post("/upload", files={"file": ("m.png", raw)}, headers={"Accept": "application/json"})
    assert as_json.status_code == 200 and as_json.json() == {"upload": sha, "url": f"/?upload={sha}"}
    shown = page(client, f"/?upload={sha}")
    assert shown.items == ids(search_image(client, raw)) and shown.items[0] == item_id_of(
        client, data, "monster 09.png"
    )
    image = client.get(f"/upload/{sha}.png")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    native = canonicalize(decode(raw)).pixels
    up = integer_scale(native.shape[1], native.shape[0], 128)[0]
    assert np.array_equal(decode(image.content), np.repeat(np.repeat(native, up, axis=0), up, axis=1))
    cached = client.get(f"/upload/{sha}.png", headers={"If-None-Match": image.headers["etag"]})
    assert cached.status_code == 304


def test_about_page_counts(client: TestClient, data: SearchableData) -> None:
    stats = client.get("/api/stats").json()
    about = client.get("/about")
    assert about.status_code == 200
    for key in ("pages", "files", "images", "whole", "tiles", "indexed"):
        assert f'id="stat-{key}">{stats[key]}<' in about.text
    assert stats["pages"] == len(data.pages)
    assert "finished 20" in about.text  # the last crawl, as a date


@pytest.mark.parametrize(
    ("target", "status", "words"),
    [
        ("/?count=0", 422, ["count"]),
        ("/?imsi=monster&count=101", 422, ["count"]),
        ("/?imsi=monster&offset=-1", 422, ["offset"]),
        ("/?imsi=monster&offset=100000", 422, ["offset"]),
        ("/?imsi=monster&kind=bogus", 422, ["kind"]),
        ("/?similar=abc", 422, ["similar"]),
        ("/?similar=999999", 404, ["no item 999999"]),
        ("/?imsi=!!!", 422, ["no words"]),
        ("/?imsi=http://10.0.0.1/x.png", 400, ["10.0.0.1 is a private"]),
        ("/?imsi=http%3A%2F%2F2130706433%2F", 400, ["127.0.0.1 is a loopback"]),
        ("/nowhere", 404, ["nothing at /nowhere"]),
    ],
)
def test_page_errors(client: TestClient, net: Net, target: str, status: int, words: list[str]) -> None:
    assert_page_error(client.get(target), status, *words)
    assert net.connects == []


def test_a_failed_search_keeps_the_words_and_filters(client: TestClient) -> None:
    response = client.get("/?imsi=http://127.0.0.1/x.png&license=CC0&kind=tiles")
    assert_page_error(response, 400, "loopback")
    shown = Page(response.text)
    assert shown.inputs["imsi"] == ["http://127.0.0.1/x.png"]
    assert 'value="tiles" selected' in response.text and 'value="CC0" selected' in response.text


def test_upload_redirect_keeps_only_the_filters(client: TestClient, data: SearchableData) -> None:
    sprite_png = asset(data, "monster 02.png").read_bytes()
    response = client.post(
        "/upload?similar=5&kind=whole&count=5&imsi=x", files={"file": ("m.png", sprite_png)}, follow_redirects=False
    )
    assert response.status_code == 303
    target = query_of(response.headers["location"])
    assert set(target) == {"upload", "kind", "count"} and target["kind"] == ["whole"]
