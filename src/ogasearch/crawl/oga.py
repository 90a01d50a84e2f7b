"""Parse OpenGameArt.org HTML into plain dataclasses.

Pure functions: HTML text in, dataclasses out. No network, no catalog, so the
parser is tested on real saved pages. Drupal leaves empty fields out of the
markup, so every field may be missing and parsing never fails on that.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qs, urljoin, urlsplit

import lxml.etree
import lxml.html
from lxml.html import HtmlElement


@dataclass(frozen=True)
class License:
    name: str  # as shown, e.g. "CC0", "CC-BY-SA 3.0"
    url: str | None  # deed URL, e.g. http://creativecommons.org/publicdomain/zero/1.0/


@dataclass(frozen=True)
class Link:
    title: str
    url: str  # absolute


@dataclass(frozen=True)
class Preview:
    url: str  # absolute URL of the full-size preview (the lightbox href)
    thumb_url: str | None  # absolute URL of the styled image shown on the page


@dataclass(frozen=True)
class FileLink:
    url: str  # absolute, exactly as linked (percent-encoding untouched)
    name: str  # the `download` attribute, else the link text
    mime: str | None  # from type="application/zip; length=123"
    length: int | None  # declared byte length from the same attribute
    fid: int | None  # data-fid


@dataclass
class ArtPage:
    url: str  # canonical content URL, absolute (/content/<slug>)
    node_id: int | None
    title: str | None
    author: str | None
    author_url: str | None
    submitter: str | None  # only when it differs from the author
    submitter_url: str | None
    post_date: str | None  # as shown, e.g. "Thursday, April 12, 2018 - 05:17"
    posted_at: str | None  # ISO 8601, e.g. "2018-04-12T05:17"
    art_type: str | None  # e.g. "2D Art"
    art_type_tid: int | None  # e.g. 9
    tags: list[str] = field(default_factory=list)
    licenses: list[License] = field(default_factory=list)
    attribution: str | None = None  # Copyright/Attribution Notice, as text
    description: str | None = None  # body as plain text
    favorites: int | None = None
    collections: list[Link] = field(default_factory=list)
    previews: list[Preview] = field(default_factory=list)
    files: list[FileLink] = field(default_factory=list)


@dataclass(frozen=True)
class ListingEntry:
    url: str  # absolute content URL
    title: str
    thumb_url: str | None


@dataclass
class ListingPage:
    entries: list[ListingEntry]
    total: int | None  # N in "Displaying a - b of N"
    first: int | None  # a
    last_shown: int | None  # b
    last_page: int | None  # 0-based index of the last page (pager-last href `page=`), 0 with no pager


# ---------------------------------------------------------------------------- parsing

SITE = "https://opengameart.org/"

_TITLE_SUFFIX = re.compile(r"\s*\|\s*OpenGameArt\.org\s*$", re.I)
_HEADER = re.compile(r"Displaying\s+(\d[\d,.]*)\s*[-\u2013]\s*(\d[\d,.]*)\s+of\s+(\d[\d,.]*)", re.I)
_NODE_IN_URL = re.compile(r"(?:^|[/=])node/(\d+)")
_FLAG_CLASS = re.compile(r"\bflag-favorites-(\d+)\b")
_DLCOUNTER = re.compile(r"/file/\d+/dlcounter")
_DLCOUNT_ID = re.compile(r"^dlcount-(\d+)$")
_SUBMITTED = re.compile(r"submitted\s+by", re.I)
_LONG_DATE = re.compile(r"([A-Za-z]+)\s+(\d{1,2}),\s*(\d{4})\s*-\s*(\d{1,2}):(\d{2})")
_SHORT_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})\s*-\s*(\d{1,2}):(\d{2})")
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_BLOCK_TAGS = frozenset(
    {"blockquote", "br", "dd", "div", "dt", "hr", "li", "ol", "p", "pre", "table", "tr", "ul"}
).union(f"h{n}" for n in range(1, 7))


class ParseError(ValueError):
    """The HTML is not an OGA art page at all, so re-parsing or retrying will not help."""


# ------------------------------------------------------------------------ helpers


def _doc(html: str) -> HtmlElement:
    """Parse text into a tree; empty or unparseable input becomes an empty page so selectors miss."""
    try:
        return lxml.html.document_fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        return lxml.html.document_fromstring("<html><body></body></html>")


def _classes(el: HtmlElement) -> list[str]:
    return (el.get("class") or "").split()


def _text(el: HtmlElement | None) -> str:
    """Visible text with whitespace (incl. &nbsp;) collapsed, since markup splits it arbitrarily."""
    if el is None:
        return ""
    return " ".join(el.text_content().split())


def _int(text: str | None) -> int | None:
    """First integer in text, thousands separators allowed ("16,293" -> 16293)."""
    if not text:
        return None
    m = re.search(r"\d[\d,.]*", text)
    return int(re.sub(r"\D", "", m.group(0))) if m else None


def _abs(base: str, href: str | None) -> str | None:
    """Absolute URL. An absolute href is returned as is: urljoin may normalise it, and file URLs
    are keys that must stay byte-identical to the link."""
    if href is None or not href.strip():
        return None
    href = href.strip()
    parts = urlsplit(href)
    if parts.scheme and parts.netloc:
        return href
    return urljoin(base or SITE, href)


def _foreign(el: HtmlElement) -> bool:
    """True inside a comment or a listed teaser: both reuse the node's field classes."""
    return any({"comment", "view-mode-art_preview"} & set(_classes(a)) for a in el.iterancestors())


def _field(scope: HtmlElement, name: str) -> HtmlElement | None:
    """The node's own `.field-name-<name>` block, never one inside a comment."""
    for el in scope.cssselect(f".field-name-{name}"):
        if not _foreign(el):
            return el
    return None


def _item_text(field_el: HtmlElement | None) -> str | None:
    """A field's value as one line of text, without its "Label:" part."""
    if field_el is None:
        return None
    items = field_el.cssselect(".field-item")
    if items:
        return _text(items[0]) or None
    return _text_without_labels(field_el) or None


def _text_without_labels(el: HtmlElement) -> str:
    parts = [text for _, text in _walk(el) if text]
    return " ".join("".join(parts).split())


def _walk(el: HtmlElement) -> Iterator[tuple[HtmlElement | None, str]]:
    """Elements and text in document order, as (element, "") and (None, text) pairs.

    Field labels and HTML comments are skipped (their tails are kept): they are not values.
    """
    if not isinstance(el.tag, str) or "field-label" in _classes(el):
        return
    yield el, ""
    if el.text:
        yield None, el.text
    for child in el:
        yield from _walk(child)
        if child.tail:
            yield None, child.tail


def _query_int(href: str | None, key_prefix: str) -> int | None:
    """Integer value of the first query parameter whose decoded name starts with key_prefix
    (`field_art_type_tid%5B0%5D=9` -> name `field_art_type_tid[0]`)."""
    if not href:
        return None
    for key, values in parse_qs(urlsplit(href).query).items():
        if key.startswith(key_prefix):
            for value in values:
                if value.strip().isdigit():
                    return int(value.strip())
    return None


# ------------------------------------------------------------------- listing pages


def parse_listing(html: str, base_url: str) -> ListingPage:
    """Parse an /art-search-advanced result page: entries, result counts and last page index.

    All lookups stay inside the art view, because the sidebar's forum block reuses the same
    views-row markup. A fragment without the view wrapper is searched as a whole.
    """
    root = _doc(html)
    views = root.cssselect(".view-id-art")
    scope = views[0] if views else root

    entries: list[ListingEntry] = []
    for a in scope.cssselect("span.art-preview-title > a"):
        url = _abs(base_url, a.get("href"))
        if url is None:
            continue
        row = next(
            (anc for anc in a.iterancestors() if {"views-row", "node-art"} & set(_classes(anc))),
            None,
        )
        thumb = None
        if row is not None:
            imgs = row.cssselect(".field-name-field-art-preview img[src]") or row.cssselect("img[src]")
            if imgs:
                thumb = _abs(base_url, imgs[0].get("src"))
        entries.append(ListingEntry(url=url, title=_text(a), thumb_url=thumb))

    first = last_shown = total = None
    for header in scope.cssselect("div.view-header"):
        m = _HEADER.search(_text(header))
        if m:
            first, last_shown, total = (_int(g) for g in m.groups())
            break

    return ListingPage(
        entries=entries,
        total=total,
        first=first,
        last_shown=last_shown,
        last_page=_last_page(scope),
    )


def _last_page(scope: HtmlElement) -> int:
    """0-based index of the last page. Near the end Drupal drops the "last" link, so fall back
    to the highest linked page or the current one."""
    pagers = scope.cssselect("ul.pager")
    if not pagers:
        return 0
    pager = pagers[0]
    for a in pager.cssselect("li.pager-last a[href]"):
        page = _query_int(a.get("href"), "page")
        if page is not None:
            return page
    best = 0
    for a in pager.cssselect("a[href]"):
        page = _query_int(a.get("href"), "page")
        if page is not None:
            best = max(best, page)
    for li in pager.cssselect("li.pager-current"):
        current = _int(_text(li))
        if current:
            best = max(best, current - 1)
    return best


# ----------------------------------------------------------------------- art pages


def parse_art_page(html: str, url: str) -> ArtPage:
    """Parse an OGA /content/<slug> page.

    Missing fields give None or empty lists. Only a page without any trace of an art node
    raises ParseError, so the crawler can tell "not an art page" from "a sparse art page".
    """
    root = _doc(html)
    canonical = root.cssselect('link[rel="canonical"][href]')
    page_url = (_abs(url, canonical[0].get("href")) if canonical else None) or url
    base = page_url if urlsplit(page_url).scheme else SITE

    nodes = root.cssselect(".node-art.view-mode-full") or [
        el for el in root.cssselect(".node-art") if not _foreign(el) and "view-mode-art_preview" not in _classes(el)
    ]
    node = nodes[0] if nodes else root

    node_id = _node_id(root)
    title = None
    title_field = _field(node, "title")
    if title_field is not None:
        h2 = title_field.cssselect("h2")
        title = _text(h2[0] if h2 else title_field) or None
    node_fields = node.cssselect("[class*='field-name-field-art-'], .field-name-author-submitter")
    has_art_fields = any(not _foreign(el) for el in node_fields)
    if not (nodes or title or node_id is not None or has_art_fields):
        raise ParseError("no OpenGameArt art node in the page")
    if title is None:
        head_title = root.find(".//title")
        if head_title is not None:
            title = _TITLE_SUFFIX.sub("", _text(head_title)) or None

    author, author_url, submitter, submitter_url = _authors(_field(node, "author-submitter"), base)

    # The node's date sits in its left column; each comment carries its own post-date field.
    left = [el for el in node.cssselect(".group-left") if not _foreign(el)]
    date_field = _field(left[0], "post-date") if left else None
    if date_field is None:
        date_field = _field(node, "post-date")
    post_date = _item_text(date_field)

    art_type, art_type_tid = _art_type(_field(node, "field-art-type"))

    return ArtPage(
        url=page_url,
        node_id=node_id,
        title=title,
        author=author,
        author_url=author_url,
        submitter=submitter,
        submitter_url=submitter_url,
        post_date=post_date,
        posted_at=_iso_date(post_date),
        art_type=art_type,
        art_type_tid=art_type_tid,
        tags=_tags(_field(node, "field-art-tags")),
        licenses=_licenses(_field(node, "field-art-licenses"), base),
        attribution=_item_text(_field(node, "field-copyright-notice")),
        description=_description(_field(node, "body")),
        favorites=_int(_item_text(_field(node, "favorites"))),
        collections=_collections(_field(node, "collect"), base),
        previews=_previews(_field(node, "field-art-preview"), base),
        files=_files(_field(node, "field-art-files"), base),
    )


def _node_id(root: HtmlElement) -> int | None:
    """Drupal node id: the shortlink, else the favourite flag, else a login link's destination
    (not any body link, which may point at another node)."""
    for link in root.cssselect('link[rel="shortlink"][href]'):
        m = _NODE_IN_URL.search(urlsplit(link.get("href", "")).path)
        if m:
            return int(m.group(1))
    for el in root.cssselect("[class*='flag-favorites-']"):
        m = _FLAG_CLASS.search(el.get("class", ""))
        if m:
            return int(m.group(1))
    for a in root.cssselect("a[href*='destination=node/']"):
        m = _NODE_IN_URL.search(a.get("href", ""))
        if m:
            return int(m.group(1))
    return None


def _authors(field_el: HtmlElement | None, base: str) -> tuple[str | None, str | None, str | None, str | None]:
    """(author, author_url, submitter, submitter_url) from the author field.

    When someone uploads another person's work OGA prints the author (a user link, an external
    link or plain text) followed by `<br/>(Submitted by <strong><a href="/users/x">x</a></strong>)`.
    The first link before "Submitted by" (else the text there) is the author; the first link
    after it (else the text there) is the submitter.
    """
    if field_el is None:
        return None, None, None, None
    before: list[str] = []
    after: list[str] = []
    before_links: list[HtmlElement] = []
    after_links: list[HtmlElement] = []
    marker = False
    for el, text in _walk(field_el):
        if el is not None:
            if el.tag == "a" and el.get("href"):
                (after_links if marker else before_links).append(el)
            continue
        if marker:
            after.append(text)
            continue
        m = _SUBMITTED.search(text)
        if m:
            marker = True
            before.append(text[: m.start()])
            after.append(text[m.end() :])
        else:
            before.append(text)

    def clean(parts: list[str]) -> str | None:
        return " ".join("".join(parts).split()).strip(" ():,;") or None

    if before_links:
        author = _text(before_links[0]) or clean(before)
        author_url = _abs(base, before_links[0].get("href"))
    else:
        author, author_url = clean(before), None
    if not marker:
        return author, author_url, None, None
    if after_links:
        submitter = _text(after_links[0]) or None
        submitter_url = _abs(base, after_links[0].get("href"))
    else:
        submitter, submitter_url = clean(after), None
    same = submitter is None or (
        (submitter_url is not None and submitter_url == author_url) or submitter.casefold() == (author or "").casefold()
    )
    if same:
        return author, author_url, None, None
    return author, author_url, submitter, submitter_url


def _iso_date(shown: str | None) -> str | None:
    """ "Thursday, April 12, 2018 - 05:17" (or "04/12/2018 - 05:17") -> "2018-04-12T05:17".

    Parsed by hand rather than strptime so the result does not depend on the process locale.
    """
    if not shown:
        return None
    m = _LONG_DATE.search(shown)
    if m:
        prefix = m.group(1)[:3].casefold()
        month = _MONTH_NAMES.index(prefix) + 1 if prefix in _MONTH_NAMES else None
        day, year, hour, minute = (int(g) for g in m.groups()[1:])
    else:
        m = _SHORT_DATE.search(shown)
        if not m:
            return None
        month, day, year, hour, minute = (int(g) for g in m.groups())
    try:
        return datetime(year, month or 0, day, hour, minute).isoformat(timespec="minutes")
    except ValueError:  # unknown month name, 31 February, 25:00 ...
        return None


def _art_type(field_el: HtmlElement | None) -> tuple[str | None, int | None]:
    """Art type name and taxonomy id (the search link's `field_art_type_tid[]` value)."""
    if field_el is None:
        return None, None
    links = field_el.cssselect(".field-item a") or field_el.cssselect("a")
    if not links:
        return _item_text(field_el), None
    return _text(links[0]) or None, _query_int(links[0].get("href"), "field_art_type_tid")


def _tags(field_el: HtmlElement | None) -> list[str]:
    if field_el is None:
        return []
    links = field_el.cssselect(".field-item a") or field_el.cssselect("a")
    return [t for t in (_text(a) for a in links) if t]


def _licenses(field_el: HtmlElement | None, base: str) -> list[License]:
    """Licences, each usually an icon link with a `.license-name`; a plain link or bare text
    (no icon) is accepted too so an unusual licence is never dropped."""
    if field_el is None:
        return []
    found: list[License] = []
    items = field_el.cssselect(".field-item") or [field_el]
    for item in items:
        links = item.cssselect("a")
        if not links:
            name = _text_without_labels(item)
            if name:
                found.append(License(name=name, url=None))
            continue
        for a in links:
            names = a.cssselect(".license-name")
            name = _text(names[0]) if names else _text(a)
            if not name:
                imgs = a.cssselect("img")
                name = (imgs[0].get("title") or imgs[0].get("alt") or "").strip() if imgs else ""
            if name:
                found.append(License(name=name, url=_abs(base, a.get("href"))))
    return list(dict.fromkeys(found))


def _description(field_el: HtmlElement | None) -> str | None:
    """Body as plain text: one line per paragraph/list item, spaces collapsed within lines."""
    if field_el is None:
        return None
    items = field_el.cssselect(".field-item")
    chunks: list[str] = []
    _block_text(items[0] if items else field_el, chunks)
    lines = (" ".join(line.split()) for line in "".join(chunks).split("\n"))
    return "\n".join(line for line in lines if line) or None


def _block_text(el: HtmlElement, out: list[str]) -> None:
    """Append el's text to out, with a line break around every block element.

    Source line breaks are only whitespace in HTML, so they become spaces here."""
    if not isinstance(el.tag, str) or "field-label" in _classes(el):
        return
    block = el.tag in _BLOCK_TAGS
    if block:
        out.append("\n")
    if el.text:
        out.append(" ".join(el.text.split("\n")))
    for child in el:
        _block_text(child, out)
        if child.tail:
            out.append(" ".join(child.tail.split("\n")))
    if block:
        out.append("\n")


def _collections(field_el: HtmlElement | None, base: str) -> list[Link]:
    """Collections the art is in; "(remove)" and other non-/content/ links are not collections."""
    if field_el is None:
        return []
    found: list[Link] = []
    for a in field_el.cssselect("li a[href]") or field_el.cssselect("a[href]"):
        if "collect-remove" in _classes(a):
            continue
        url = _abs(base, a.get("href"))
        title = _text(a)
        if url and title and urlsplit(url).path.startswith("/content/"):
            found.append(Link(title=title, url=url))
    return found


def _previews(field_el: HtmlElement | None, base: str) -> list[Preview]:
    """Preview images: the lightbox link is the full size, the inline img the styled thumb."""
    if field_el is None:
        return []
    found: list[Preview] = []
    for item in field_el.cssselect(".field-item") or [field_el]:
        for a in item.cssselect("a[href]"):
            url = _abs(base, a.get("href"))
            imgs = a.cssselect("img[src]")
            thumb = _abs(base, imgs[0].get("src")) if imgs else None
            if url:
                found.append(Preview(url=url, thumb_url=thumb))
        if not item.cssselect("a[href]"):
            for img in item.cssselect("img[src]"):
                src = _abs(base, img.get("src"))
                if src:
                    found.append(Preview(url=src, thumb_url=src))
    return found


def _files(field_el: HtmlElement | None, base: str) -> list[FileLink]:
    """Downloadable files, with the URL exactly as linked (it is the file's catalog key)."""
    if field_el is None:
        return []
    links = field_el.cssselect("span.file a[href]") or field_el.cssselect(".field-item a[href]")
    if not links:
        links = field_el.cssselect("a[href]")
    found: list[FileLink] = []
    seen: set[str] = set()
    for a in links:
        href = a.get("href", "")
        if _DLCOUNTER.search(href) or any("dlcount" in _classes(p) for p in a.iterancestors()):
            continue
        url = _abs(base, href)
        if url is None or url in seen:
            continue
        seen.add(url)
        mime, length = _file_type(a.get("type"))
        name = (a.get("download") or "").strip() or _text(a) or urlsplit(url).path.rsplit("/", 1)[-1]
        found.append(FileLink(url=url, name=name, mime=mime, length=length, fid=_fid(a)))
    return found


def _file_type(value: str | None) -> tuple[str | None, int | None]:
    """`application/zip; length=10537521` -> ("application/zip", 10537521); parts may be absent."""
    mime = length = None
    for part in (value or "").split(";"):
        part = part.strip()
        if part.lower().startswith("length="):
            digits = part[len("length=") :].strip()
            length = int(digits) if digits.isdigit() else None
        elif "/" in part and "=" not in part and mime is None:
            mime = part.lower()
    return mime, length


def _fid(a: HtmlElement) -> int | None:
    """File id from data-fid, else from the download counter next to the link."""
    fid = (a.get("data-fid") or "").strip()
    if fid.isdigit():
        return int(fid)
    parent = a.getparent()
    if parent is not None:
        for counter in parent.cssselect("[id^='dlcount-']"):
            m = _DLCOUNT_ID.match(counter.get("id", ""))
            if m:
                return int(m.group(1))
    return None
