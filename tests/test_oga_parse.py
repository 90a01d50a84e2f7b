"""Tests for the OGA HTML parser: real saved pages (../shared/oga_pages) and small synthetic pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from ogasearch.crawl.oga import (
    ArtPage,
    FileLink,
    License,
    Link,
    ListingEntry,
    ParseError,
    Preview,
    parse_art_page,
    parse_listing,
)

SITE = "https://opengameart.org"
LISTING_URL = f"{SITE}/art-search-advanced?keys=&field_art_type_tid%5B%5D=9"
NATURE_KIT_URL = f"{SITE}/content/nature-kit"
NATURE_KIT_FILE = f"{SITE}/sites/default/files/Nature%20Kit%20%282.1%29.zip"


def _read(pages: Path, name: str) -> str:
    return (pages / name).read_text(encoding="utf-8")


# ------------------------------------------------------------------ real listing page


@pytest.fixture(scope="module")
def listing(oga_pages: Path):
    return parse_listing(_read(oga_pages, "oga_search_2d_page0.html"), LISTING_URL)


def test_listing_header_counts(listing) -> None:
    assert (listing.first, listing.last_shown, listing.total) == (1, 24, 16293)


def test_listing_entries_are_the_art_view_only(listing) -> None:
    # 24 art rows; the sidebar forum block's 8 views-row items must not be counted.
    assert len(listing.entries) == 24
    assert all(e.url.startswith(f"{SITE}/content/") for e in listing.entries)
    assert len({e.url for e in listing.entries}) == 24


def test_listing_first_and_last_entry(listing) -> None:
    assert listing.entries[0] == ListingEntry(
        url=f"{SITE}/content/trevor-martial-artist",
        title="Trevor - Martial Artist",
        thumb_url=f"{SITE}/sites/default/files/styles/thumbnail/public/trev-bb_0.png.preview.jpg",
    )
    assert listing.entries[-1].url == f"{SITE}/content/xorgramana-pngs-spng"
    assert listing.entries[-1].thumb_url is not None


def test_listing_last_page_from_pager_last(listing) -> None:
    assert listing.last_page == 678


def test_pager_fragment_last_page(oga_pages: Path) -> None:
    page = parse_listing(_read(oga_pages, "fragment_pager_page2.html"), LISTING_URL)
    assert page.last_page == 7
    assert page.entries == []
    assert page.total is None


# ------------------------------------------------------------------ real content page


@pytest.fixture(scope="module")
def nature_kit(oga_pages: Path) -> ArtPage:
    # A non-canonical input URL shows that the canonical link wins.
    return parse_art_page(_read(oga_pages, "oga_content_nature-kit.html"), f"{SITE}/node/83240")


def test_nature_kit_identity(nature_kit: ArtPage) -> None:
    assert nature_kit.url == NATURE_KIT_URL
    assert nature_kit.node_id == 83240
    assert nature_kit.title == "Nature Kit"


def test_nature_kit_author(nature_kit: ArtPage) -> None:
    assert nature_kit.author == "Kenney"
    assert nature_kit.author_url == f"{SITE}/users/kenney"
    assert nature_kit.submitter is None
    assert nature_kit.submitter_url is None


def test_nature_kit_date_is_the_node_not_a_comment(nature_kit: ArtPage) -> None:
    assert nature_kit.post_date == "Thursday, April 12, 2018 - 05:17"
    assert nature_kit.posted_at == "2018-04-12T05:17"


def test_nature_kit_type_and_tags(nature_kit: ArtPage) -> None:
    assert (nature_kit.art_type, nature_kit.art_type_tid) == ("3D Art", 10)
    assert len(nature_kit.tags) == 15
    assert nature_kit.tags[0] == "plant"
    assert nature_kit.tags[-1] == "palm"


def test_nature_kit_license_and_attribution(nature_kit: ArtPage) -> None:
    assert nature_kit.licenses == [License(name="CC0", url="http://creativecommons.org/publicdomain/zero/1.0/")]
    assert nature_kit.attribution == 'Credit "Kenney.nl" or "www.kenney.nl", this is not mandatory.'


def test_nature_kit_collections_and_favorites(nature_kit: ArtPage) -> None:
    assert len(nature_kit.collections) == 36
    assert nature_kit.collections[0] == Link(title="2Use4CG", url=f"{SITE}/content/2use4cg")
    assert all(c.url.startswith(f"{SITE}/content/") for c in nature_kit.collections)
    assert nature_kit.favorites == 153


def test_nature_kit_previews(nature_kit: ArtPage) -> None:
    files = f"{SITE}/sites/default/files"
    assert nature_kit.previews == [
        Preview(url=f"{files}/Preview_320.png", thumb_url=f"{files}/styles/medium/public/Preview_320.png"),
        Preview(url=f"{files}/Sample_75.png", thumb_url=f"{files}/styles/medium/public/Sample_75.png"),
    ]


def test_nature_kit_file_url_is_byte_exact(nature_kit: ArtPage) -> None:
    assert nature_kit.files == [
        FileLink(
            url=NATURE_KIT_FILE,
            name="Nature Kit (2.1).zip",
            mime="application/zip",
            length=10537521,
            fid=156865,
        )
    ]
    assert "/dlcounter" not in nature_kit.files[0].url


def test_nature_kit_description(nature_kit: ArtPage) -> None:
    desc = nature_kit.description
    assert desc is not None
    assert desc.startswith("This package includes over 330 nature themed objects")
    # Paragraphs and list items become separate lines; no runs of blank lines or spaces.
    assert "\nWorks in Unity, Unreal and all other 3D engines\n330+ objects!\n" in desc
    assert "\n\n" not in desc
    assert "  " not in desc
    # Comments are not part of the description.
    assert "As always good work" not in desc


def test_2d_fragment_fields(oga_pages: Path) -> None:
    page = parse_art_page(_read(oga_pages, "fragment_2d_content_fields.html"), f"{SITE}/content/x")
    assert page.node_id == 14914  # from the flag-favorites-14914 span
    assert (page.art_type, page.art_type_tid) == ("2D Art", 9)
    assert len(page.tags) == 14
    assert page.tags[5] == "Market Booth"
    assert page.licenses == [License(name="CC-BY-SA 3.0", url="http://creativecommons.org/licenses/by-sa/3.0/")]
    assert len(page.collections) == 78  # the "(remove)" link is not a collection
    assert all("/collect/remove/" not in c.url for c in page.collections)
    assert Link(title="BesideTheVoid's Downloads", url=f"{SITE}/content/besidethevoids-downloads") in (page.collections)
    assert page.favorites == 235
    assert page.files == []
    assert page.author is None


# ------------------------------------------------------------------ synthetic pages


def _art_page(left: str = "", right: str = "", head: str = "") -> str:
    """A minimal page with OGA's node layout around the given field markup."""
    return (
        f"<html><head>{head}</head><body>"
        '<div class="ds-2col-stacked node node-art view-mode-full clearfix">'
        '<div class="group-header"><div class="field field-name-title"><div class="field-items">'
        '<div class="field-item even"><h2>Tiny Knight</h2></div></div></div></div>'
        f'<div class="group-left left-column">{left}</div>'
        f'<div class="group-right right-column">{right}</div>'
        "</div></body></html>"
    )


def _author_field(item_html: str) -> str:
    return (
        '<div class="field field-name-author-submitter field-type-ds field-label-above">'
        '<div class="field-label">Author:&nbsp;</div><div class="field-items">'
        f'<div class="field-item even">{item_html}</div></div></div>'
    )


def test_author_differs_from_submitter() -> None:
    # Markup as OGA prints it when the uploader is not the author (author is an external link).
    html = _art_page(
        left=_author_field(
            "<span class='username'><a href='http://3tdstudios.com/' target='_blank'>Ron Kapaun</a></span>"
            '<br/>(Submitted by <strong><a href="/users/hreikin">hreikin</a></strong>)'
        )
    )
    page = parse_art_page(html, f"{SITE}/content/tiny-knight")
    assert page.author == "Ron Kapaun"
    assert page.author_url == "http://3tdstudios.com/"
    assert page.submitter == "hreikin"
    assert page.submitter_url == f"{SITE}/users/hreikin"


def test_plain_text_author_with_submitter() -> None:
    html = _art_page(left=_author_field('Jane Doe <br/>(Submitted by <a href="/users/uploader">uploader</a>)'))
    page = parse_art_page(html, f"{SITE}/content/tiny-knight")
    assert page.author == "Jane Doe"
    assert page.author_url is None
    assert (page.submitter, page.submitter_url) == ("uploader", f"{SITE}/users/uploader")


def test_submitter_equal_to_author_is_dropped() -> None:
    html = _art_page(
        left=_author_field(
            '<span class="username"><a href="/users/ada">Ada</a></span>'
            '<br/>(Submitted by <strong><a href="/users/ada">Ada</a></strong>)'
        )
    )
    page = parse_art_page(html, f"{SITE}/content/tiny-knight")
    assert (page.author, page.author_url) == ("Ada", f"{SITE}/users/ada")
    assert page.submitter is None
    assert page.submitter_url is None


def test_every_optional_field_missing() -> None:
    page = parse_art_page(_art_page(), f"{SITE}/content/tiny-knight")
    assert page.url == f"{SITE}/content/tiny-knight"
    assert page.title == "Tiny Knight"
    assert page.node_id is None
    assert (page.author, page.author_url, page.submitter, page.submitter_url) == (None,) * 4
    assert (page.post_date, page.posted_at) == (None, None)
    assert (page.art_type, page.art_type_tid) == (None, None)
    assert (page.attribution, page.description, page.favorites) == (None, None, None)
    assert page.tags == [] and page.licenses == [] and page.collections == []
    assert page.previews == [] and page.files == []


def test_unparseable_date_keeps_text() -> None:
    html = _art_page(
        left='<div class="field field-name-post-date"><div class="field-items">'
        '<div class="field-item even">sometime last spring</div></div></div>'
    )
    page = parse_art_page(html, f"{SITE}/content/tiny-knight")
    assert page.post_date == "sometime last spring"
    assert page.posted_at is None


def test_node_date_not_comment_date_without_left_column() -> None:
    html = (
        '<html><body><div class="node node-art view-mode-full">'
        '<div class="field field-name-title"><h2>T</h2></div>'
        '<div class="comment"><div class="field field-name-post-date"><div class="field-items">'
        '<div class="field-item even">04/13/2018 - 00:50</div></div></div></div>'
        '<div class="field field-name-post-date"><div class="field-items">'
        '<div class="field-item even">Monday, March 8, 2010 - 04:05</div></div></div>'
        "</div></body></html>"
    )
    page = parse_art_page(html, f"{SITE}/content/t")
    assert page.posted_at == "2010-03-08T04:05"


def test_licenses_without_icon() -> None:
    html = _art_page(
        left='<div class="field field-name-field-art-licenses">'
        '<div class="field-label">License(s):&nbsp;</div><div class="field-items">'
        '<div class="field-item even">'
        '<a href="http://creativecommons.org/licenses/by/4.0/">CC-BY 4.0</a></div>'
        '<div class="field-item odd">GPL 2.0</div>'
        "</div></div>"
    )
    page = parse_art_page(html, f"{SITE}/content/tiny-knight")
    assert page.licenses == [
        License(name="CC-BY 4.0", url="http://creativecommons.org/licenses/by/4.0/"),
        License(name="GPL 2.0", url=None),
    ]


def test_file_link_without_type_and_relative_href() -> None:
    html = _art_page(
        right='<div class="field field-name-field-art-files"><div class="field-items">'
        '<div class="field-item even"><span class="file">'
        '<a href="/sites/default/files/knight%5Bv2%5D%20final.png">knight[v2] final.png</a>'
        ' 2 Kb <span class="dlcount">[<a href="/file/77/dlcounter">'
        '<span class="dlcount-number" id="dlcount-77">5</span></a> download(s)]</span>'
        "</span></div>"
        '<div class="field-item odd"><span class="file">'
        '<a href="https://opengameart.org/sites/default/files/sheet.gif" type="; length=42">x</a>'
        "</span></div>"
        "</div></div>"
    )
    page = parse_art_page(html, f"{SITE}/content/tiny-knight")
    assert page.files == [
        FileLink(
            url=f"{SITE}/sites/default/files/knight%5Bv2%5D%20final.png",
            name="knight[v2] final.png",
            mime=None,
            length=None,
            fid=77,  # no data-fid: taken from the download counter next to the link
        ),
        FileLink(url=f"{SITE}/sites/default/files/sheet.gif", name="x", mime=None, length=42, fid=None),
    ]


def test_body_text_keeps_paragraph_breaks() -> None:
    html = _art_page(
        right='<div class="field field-name-body"><div class="field-items"><div class="field-item even">'
        "<p>First   line\n of text.</p><p>Second<br>third</p><ul><li>a</li><li>b</li></ul>tail"
        "</div></div></div>"
    )
    page = parse_art_page(html, f"{SITE}/content/tiny-knight")
    assert page.description == "First line of text.\nSecond\nthird\na\nb\ntail"


def test_title_falls_back_to_head_title() -> None:
    html = (
        "<html><head><title>Ghost Sprite | OpenGameArt.org</title>"
        '<link rel="shortlink" href="https://opengameart.org/node/42"></head>'
        "<body><p>nothing else</p></body></html>"
    )
    page = parse_art_page(html, f"{SITE}/content/ghost-sprite")
    assert page.title == "Ghost Sprite"
    assert page.node_id == 42


def test_node_id_from_login_link() -> None:
    html = _art_page(right='<a href="/user/login?destination=node/555%23comment-form">Log in</a>')
    assert parse_art_page(html, f"{SITE}/content/tiny-knight").node_id == 555


@pytest.mark.parametrize(
    "html",
    [
        "<html><head><title>Example Domain</title></head><body><p>Hello</p></body></html>",
        "",
        "not html at all",
    ],
)
def test_parse_error_on_non_oga_html(html: str) -> None:
    with pytest.raises(ParseError):
        parse_art_page(html, "https://example.com/")


def test_parse_error_on_listing_page_given_as_art_page() -> None:
    html = (
        '<div class="view view-id-art"><div class="views-row">'
        '<div class="node node-art view-mode-art_preview"><div class="field field-name-title">'
        '<span class="art-preview-title"><a href="/content/a">A</a></span></div>'
        '<div class="field field-name-field-art-preview"><img src="/a.png"></div></div></div></div>'
    )
    with pytest.raises(ParseError):
        parse_art_page(html, f"{SITE}/art-search-advanced")


def test_listing_without_pager_or_header() -> None:
    html = (
        '<div class="view view-art view-id-art"><div class="view-content">'
        '<div class="views-row"><div class="node node-art view-mode-art_preview">'
        '<span class="art-preview-title"><a href="/content/one">One</a></span>'
        '<div class="field field-name-field-art-preview"><a href="/content/one">'
        '<img src="/sites/default/files/styles/thumbnail/public/one.png"></a></div></div></div>'
        "</div></div>"
        '<div class="block"><ul><li class="views-row"><span class="art-preview-title">'
        '<a href="/content/outside">Outside the art view</a></span></li></ul></div>'
    )
    page = parse_listing(html, f"{SITE}/art-search-advanced?keys=knight")
    assert page.entries == [
        ListingEntry(
            url=f"{SITE}/content/one",
            title="One",
            thumb_url=f"{SITE}/sites/default/files/styles/thumbnail/public/one.png",
        )
    ]
    assert (page.total, page.first, page.last_shown) == (None, None, None)
    assert page.last_page == 0


def test_listing_header_with_thousands_separator_and_no_pager_last() -> None:
    base = "/art-search-advanced?keys=&amp;field_art_type_tid%5B0%5D=9"
    html = (
        '<div class="view view-id-art"><div class="view-header">\n  Displaying  97 -\n 120 of 16,293 \n</div>'
        '<h2 class="element-invisible">Pages</h2><div class="item-list"><ul class="pager">'
        f'<li class="pager-first first"><a href="{base}">« first</a></li>'
        f'<li class="pager-item"><a href="{base}&amp;page=2">3</a></li>'
        '<li class="pager-current">5</li>'
        f'<li class="pager-item"><a href="{base}&amp;page=5">6</a></li>'
        "</ul></div></div>"
    )
    page = parse_listing(html, LISTING_URL)
    assert (page.first, page.last_shown, page.total) == (97, 120, 16293)
    assert page.last_page == 5


def test_listing_last_page_is_current_page_when_no_later_links() -> None:
    base = "/art-search-advanced?keys=&amp;field_art_type_tid%5B0%5D=9"
    html = (
        '<div class="view view-id-art"><ul class="pager">'
        f'<li class="pager-previous"><a href="{base}&amp;page=6">‹ previous</a></li>'
        '<li class="pager-current last">8</li></ul></div>'
    )
    assert parse_listing(html, LISTING_URL).last_page == 7
