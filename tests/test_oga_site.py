"""Self-tests of the local OGA test site, so crawler tests can trust its markup, validators and faults."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime
from urllib.parse import quote

import httpx
import lxml.html
import pytest
from oga_site import ART_TYPE_TIDS, OgaSite, SitePage, make_pages

from ogasearch.crawl import oga


@pytest.fixture
def pages() -> list[SitePage]:
    return make_pages(12)


@pytest.fixture
def site(pages: list[SitePage]) -> Iterator[OgaSite]:
    with OgaSite(pages) as running:
        yield running


@pytest.fixture
def client(site: OgaSite) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.base_url, timeout=5) as c:
        yield c


def _listing(client: httpx.Client, **params: str | int) -> lxml.html.HtmlElement:
    response = client.get("/art-search-advanced", params=params)
    assert response.status_code == 200
    return lxml.html.fromstring(response.text)


def test_make_pages_is_deterministic_and_varied() -> None:
    pages = make_pages(12)
    assert pages == make_pages(12)
    assert [p.post_date for p in pages] == sorted((p.post_date for p in pages), reverse=True)
    names = [f.name for p in pages for f in p.files]
    assert len(names) == len(set(names))
    assert any("%" in n for n in names) and any("(" in n for n in names) and any(not n.isascii() for n in names)
    assert {f.mime for p in pages for f in p.files} == {"image/png", "application/zip"}
    assert any(p.submitter and p.submitter != p.author for p in pages)
    assert any(p.attribution is None for p in pages) and any(not p.tags for p in pages)
    assert any(not p.collections for p in pages) and any(len(p.licenses) > 1 for p in pages)
    assert {p.art_type for p in pages} == {"2D Art", "3D Art"}
    assert not {p.node_id for p in pages} & {p.node_id for p in make_pages(12, seed=1)}


def test_site_is_on_loopback(site: OgaSite, client: httpx.Client) -> None:
    assert site.base_url.startswith("http://127.0.0.1:")
    assert client.get("/no/such/thing").status_code == 404


def test_listing_pages_newest_first(site: OgaSite, client: httpx.Client, pages: list[SitePage]) -> None:
    first = _listing(client, items_per_page=5)
    assert first.cssselect(".view-id-art .view-header")[0].text_content().strip() == "Displaying 1 - 5 of 12"
    assert first.cssselect(".pager-last a")[0].get("href").endswith("page=2")
    assert not first.cssselect(".pager-first")
    # The sidebar forum block uses views-row too; only the art view holds art.
    assert len(first.cssselect(".view-id-new_forum_topics .views-row")) == 3
    assert len(first.cssselect(".views-row")) == 5 + 3

    slugs = []
    for page in range(3):
        doc = _listing(client, items_per_page=5, page=page)
        slugs += [a.get("href") for a in doc.cssselect(".view-id-art .art-preview-title a")]
    assert slugs == [p.path for p in pages]

    last = _listing(client, items_per_page=5, page=2)
    assert last.cssselect(".view-header")[0].text_content().strip() == "Displaying 11 - 12 of 12"
    assert last.cssselect(".pager-first") and not last.cssselect(".pager-next, .pager-last")
    # Drupal clamps a page past the end to the last page instead of answering an empty one.
    beyond = _listing(client, items_per_page=5, page=99)
    assert beyond.cssselect(".view-header")[0].text_content().strip() == "Displaying 11 - 12 of 12"


def test_listing_filters_by_art_type_and_keeps_the_query_in_pager_links(
    site: OgaSite, client: httpx.Client, pages: list[SitePage]
) -> None:
    doc = _listing(client, **{"field_art_type_tid[]": ART_TYPE_TIDS["3D Art"]})
    hrefs = [a.get("href") for a in doc.cssselect(".view-id-art .art-preview-title a")]
    assert hrefs == [p.path for p in pages if p.art_type == "3D Art"]

    response = client.get(site.listing_path(0, per_page=2))
    doc = lxml.html.fromstring(response.text)
    two_d = [p for p in pages if p.art_type == "2D Art"]
    assert len(doc.cssselect(".view-id-art .views-row")) == 2
    assert doc.cssselect(".pager-next a")[0].get("href") == (
        "/art-search-advanced?keys=&field_art_type_tid%5B0%5D=9&items_per_page=2&page=1"
    )
    last_href = doc.cssselect(".pager-last a")[0].get("href")
    assert last_href.endswith(f"page={(len(two_d) - 1) // 2}")
    assert "&amp;field_art_type_tid%5B0%5D=9&amp;" in response.text  # hrefs are HTML-escaped, as on OGA


def test_content_page_markup_and_files(site: OgaSite, client: httpx.Client, pages: list[SitePage]) -> None:
    page = next(p for p in pages if p.submitter and len(p.files) > 1)
    response = client.get(page.path)
    assert response.status_code == 200
    text = response.text
    assert f'<link rel="canonical" href="{site.base_url}{page.path}" />' in text
    assert f'<link rel="shortlink" href="{site.base_url}/node/{page.node_id}" />' in text
    assert "<br/>Submitted by <span class='username'>" in text
    for file in page.files:
        url = f"{site.base_url}/sites/default/files/{quote(file.name)}"
        assert f'href="{url}" type="{file.mime}; length={len(file.data)}" data-fid="{file.fid}"' in text
        got = client.get(url)
        assert got.content == file.data
        assert got.headers["content-type"] == file.mime
        assert got.headers["content-length"] == str(len(file.data))
    assert any("%" in f.name or "(" in f.name for f in page.files)

    bare = next(p for p in pages if p.attribution is None and not p.collections and not p.tags)
    bare_text = client.get(bare.path).text
    for absent in ("field-name-field-copyright-notice", "field-name-collect", "field-name-field-art-tags"):
        assert absent not in bare_text

    redirect = client.get(f"/node/{page.node_id}")
    assert redirect.status_code == 301 and redirect.headers["location"] == site.url(page.path)


def test_conditional_get_and_changes(site: OgaSite, client: httpx.Client, pages: list[SitePage]) -> None:
    page = pages[0]
    first = client.get(page.path)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    again = client.get(page.path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert client.get(page.path, headers={"If-Modified-Since": modified}).status_code == 304
    file_url = page.files[0].path
    file_etag = client.get(file_url).headers["etag"]
    assert client.get(file_url, headers={"If-None-Match": file_etag}).status_code == 304

    page.title = "Renamed"
    changed = client.get(page.path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert client.get(page.path, headers={"If-Modified-Since": modified}).status_code == 200

    listing_etag = client.get(site.listing_path()).headers["etag"]
    newest = dataclasses.replace(make_pages(1, seed=7)[0], post_date=datetime(2030, 1, 1))
    pages.append(newest)
    fresh = client.get(site.listing_path(), headers={"If-None-Match": listing_etag})
    assert fresh.status_code == 200
    assert lxml.html.fromstring(fresh.text).cssselect(".art-preview-title a")[0].get("href") == newest.path


def test_fail_once_then_recover(site: OgaSite, client: httpx.Client, pages: list[SitePage]) -> None:
    path = pages[0].path
    site.fail_once(path, 503, retry_after=2)
    failed = client.get(path)
    assert failed.status_code == 503 and failed.headers["retry-after"] == "2"
    assert client.get(path).status_code == 200
    assert site.count(path, status=503) == 1 and site.count(path, status=200) == 1

    site.fail_always("/robots.txt", 500)
    assert client.get("/robots.txt").status_code == 500
    assert client.get("/robots.txt").status_code == 500


def test_truncate_breaks_the_body_once(site: OgaSite, client: httpx.Client, pages: list[SitePage]) -> None:
    file = next(f for p in pages for f in p.files if f.mime == "application/zip")
    site.truncate(file.path)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.get(file.path)
    assert site.count(file.path) == 0
    assert site.count(file.path, completed_only=False) == 1
    assert site.requests[-1].bytes_sent == len(file.data) // 2
    assert client.get(file.path).content == file.data


def test_dlcounter_hits_are_recorded(site: OgaSite, client: httpx.Client, pages: list[SitePage]) -> None:
    assert site.count("/file/") == 0
    client.get(f"/file/{pages[0].files[0].fid}/dlcounter")
    assert site.count("/file/") == 1


def test_robots(site: OgaSite, client: httpx.Client) -> None:
    assert client.get("/robots.txt").text == "User-agent: *\nDisallow: /user/\n"
    site.robots = "User-agent: *\nCrawl-delay: 0.2\nDisallow: /content/secret-page\n"
    assert "Crawl-delay: 0.2" in client.get("/robots.txt").text
    site.robots_status = 500
    assert client.get("/robots.txt").status_code == 500
    site.robots_status, site.robots = None, None
    assert client.get("/robots.txt").status_code == 404


@pytest.mark.skipif(
    not (hasattr(oga, "parse_listing") and hasattr(oga, "parse_art_page")),
    reason="OGA parser not written yet",
)
def test_parser_reads_back_the_site(site: OgaSite, client: httpx.Client, pages: list[SitePage]) -> None:
    listing = oga.parse_listing(client.get("/art-search-advanced", params={"items_per_page": 5}).text, site.base_url)
    assert [e.url for e in listing.entries] == [site.url(p.path) for p in pages[:5]]
    assert (listing.total, listing.last_page) == (12, 2)
    for page in pages:
        art = oga.parse_art_page(client.get(page.path).text, site.url(page.path))
        assert (art.url, art.node_id, art.title, art.author) == (
            site.url(page.path),
            page.node_id,
            page.title,
            page.author,
        )
        assert art.submitter == page.submitter
        assert art.tags == page.tags
        assert [(lic.name, lic.url) for lic in art.licenses] == page.licenses
        assert len(art.collections) == len(page.collections)
        assert art.favorites == page.favorites
        assert art.attribution == page.attribution
        assert [(f.url, f.length, f.fid, f.mime) for f in art.files] == [
            (site.url(f.path), len(f.data), f.fid, f.mime) for f in page.files
        ]
