"""A local OpenGameArt-like HTTP site for crawler tests.

It serves listing pages, content pages and files in the real OGA (Drupal 7) markup, on 127.0.0.1 only,
so crawler tests never touch the network. Faults (error statuses, slow and truncated responses, robots.txt
outages) can be injected per path, every request is logged for assertions, and every page and file answers
conditional GETs, so re-crawl behaviour can be tested.

Run ``python tests/oga_site.py --pages 30 --port 8765`` to browse a demo site by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import html
import io
import itertools
import random
import re
import socket
import sys
import threading
import time
import traceback
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from PIL import Image

ART_TYPE_TIDS: dict[str, int] = {
    "2D Art": 9,
    "3D Art": 10,
    "Concept Art": 7273,
    "Texture": 14,
    "Music": 12,
    "Sound Effect": 13,
    "Document": 11,
}

LICENSES: dict[str, str] = {
    "CC0": "http://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY 3.0": "http://creativecommons.org/licenses/by/3.0/",
    "CC-BY 4.0": "http://creativecommons.org/licenses/by/4.0/",
    "CC-BY-SA 3.0": "http://creativecommons.org/licenses/by-sa/3.0/",
    "CC-BY-SA 4.0": "http://creativecommons.org/licenses/by-sa/4.0/",
    "OGA-BY 3.0": "http://static.opengameart.org/OGA-BY-3.0.txt",
    "GPL 3.0": "http://www.gnu.org/licenses/gpl-3.0.html",
    "GPL 2.0": "http://www.gnu.org/licenses/old-licenses/gpl-2.0.html",
}

FILES_PATH = "/sites/default/files/"
DEFAULT_ROBOTS = "User-agent: *\nDisallow: /user/\n"
ITEMS_PER_PAGE = 24

_fids = itertools.count(900001)
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass
class SiteFile:
    """One downloadable file of an art page.

    ``declared_length`` is what the page's ``type="...; length=N"`` says; it defaults to the real size and is
    not updated when ``data`` changes later, so tests can model stale metadata.
    """

    name: str
    data: bytes
    mime: str = "image/png"
    fid: int = field(default_factory=lambda: next(_fids))
    declared_length: int | None = None

    def __post_init__(self) -> None:
        if self.declared_length is None:
            self.declared_length = len(self.data)

    @property
    def path(self) -> str:
        """The URL path exactly as the content page links it (Drupal percent-encodes the name)."""
        return FILES_PATH + quote(self.name)


@dataclass(kw_only=True)
class SitePage:
    """One art node; the site renders its content page and listing row from these values."""

    slug: str
    node_id: int
    title: str
    author: str
    submitter: str | None = None  # shown as "Submitted by" only when it differs from the author
    post_date: datetime  # naive, read as UTC
    art_type: str = "2D Art"
    tags: list[str] = field(default_factory=list)
    licenses: list[tuple[str, str]] = field(default_factory=lambda: [("CC0", LICENSES["CC0"])])
    attribution: str | None = None
    description: str = ""
    favorites: int = 0
    collections: list[tuple[str, str]] = field(default_factory=list)  # (title, slug)
    previews: list[str] = field(default_factory=list)  # file names under /sites/default/files/
    files: list[SiteFile] = field(default_factory=list)

    @property
    def path(self) -> str:
        return "/content/" + self.slug


@dataclass
class RequestRecord:
    """One request as the site saw it; appended on arrival and updated as the answer goes out.

    ``status`` is 0 until the answer is chosen; ``completed`` is set just before the last body bytes are
    written, so a client that has its full answer always finds the record complete. ``time`` is
    ``time.monotonic()`` at arrival, for rate-limit assertions.
    """

    method: str
    path: str  # raw request target, with query
    headers: dict[str, str]  # lower-case keys
    status: int
    bytes_sent: int  # body bytes only
    completed: bool
    time: float


@dataclass
class _Fault:
    kind: str  # "status", "truncate" or "slow"
    path: str
    remaining: int | None  # None: forever
    status: int = 0
    retry_after: int | None = None
    seconds: float = 0.0


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    truncate: bool = False


# ---------------------------------------------------------------------------------------------------------
# Test data


def _slugify(text: str) -> str:
    """Like Drupal pathauto: transliterate, drop apostrophes, hyphenate the rest."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().replace("'", "")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def _png(rng: random.Random, width: int, height: int) -> bytes:
    """A small real pixel-art PNG: a few flat-colour blocks on a transparent ground."""
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    for _ in range(rng.randint(2, 5)):
        x, y = rng.randrange(width), rng.randrange(height)
        w, h = rng.randint(2, width), rng.randint(2, height)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256), 255)
        image.paste(colour, (x, y, min(width, x + w), min(height, y + h)))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    """A zip with fixed timestamps, so the same seed always gives the same bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


_SUBJECTS = (
    "Knight & Dragon",
    "Forest \u201cTiles\u201d",
    "\u00c9p\u00e9e Icons",
    "Slime <Mini> Pack",
    "Dungeon Crawl",
    "O'Hara's Potions",
    "Space Shooter",
    "Tiny Town",
)
_AUTHORS = ("Pixel Wren", "Ashgrove", "Mira K\u014dsaka", "tilesmith", "O'Neil", "Bram & Co")
_TAGS = ("pixel art", "16x16", "32x32", "sprite", "tileset", "RPG", "character", "animation", "ui", "LPC")
_LICENSE_SETS = (
    ("CC0",),
    ("CC-BY 3.0",),
    ("CC-BY-SA 3.0", "GPL 3.0"),
    ("CC-BY 4.0", "CC-BY-SA 4.0", "OGA-BY 3.0"),
    ("OGA-BY 3.0",),
)
_COLLECTIONS = (
    ("LPC Compatible", "lpc-compatible"),
    ("HQ 2D & Isometric", "hq-2d-isometric"),
    ("Good CC0-Art", "good-cc0-art"),
    ("My Project", "my-project-0"),
)
_PNG_NAMES = ("Hero {n} (v2).png", "\u00e9p\u00e9e {n}.png", "sprites_{n}.png", "a+b & c {n}.png")
_ZIP_NAMES = ("tiles {n} 100%.zip", "Pack {n} (final).zip")


def make_pages(n: int, seed: int = 0) -> list[SitePage]:
    """Deterministic, varied pages, newest first.

    They cover what trips crawlers: submitters who differ from the author, missing optional fields, several
    licences, and file names with spaces, parentheses, ``%``, ``+``, ``&`` and non-ASCII letters. Node ids,
    fids, slugs and file names include the seed, so pages from different seeds can share one site.
    """
    rng = random.Random(seed)
    when = datetime(2024, 5, 20, 17, 45)
    pages = []
    for i in range(n):
        node_id = 10000 + 10000 * seed + i
        subject = _SUBJECTS[i % len(_SUBJECTS)]
        title = f"{subject} {i + 1}"
        author = _AUTHORS[i % len(_AUTHORS)]
        when -= timedelta(hours=rng.randint(3, 80), minutes=rng.randint(0, 59))
        files = []
        for k, template in enumerate(rng.sample(_PNG_NAMES + _ZIP_NAMES, rng.randint(1, 3))):
            name = template.format(n=node_id)
            fid = node_id * 10 + k
            if name.endswith(".zip"):
                members = {f"pack/sprite {m}.png": _png(rng, 16, 16) for m in range(2)}
                members["pack/\u00e9l\u00e9ments/tile.png"] = _png(rng, 32, 16)
                files.append(SiteFile(name, _zip(members), "application/zip", fid))
            else:
                files.append(SiteFile(name, _png(rng, rng.choice((16, 32, 48)), 16), "image/png", fid))
        pngs = [f.name for f in files if f.mime == "image/png"]
        previews = pngs[:1] if pngs and i % 3 else [f"preview_{node_id}.png"]
        if i % 5 == 4:
            previews.append(f"sample {node_id}.png")
        pages.append(
            SitePage(
                slug=_slugify(title) + (f"-{seed}" if seed else ""),
                node_id=node_id,
                title=title,
                author=author,
                submitter=_AUTHORS[(i + 1) % len(_AUTHORS)] if i % 4 == 1 else None,
                post_date=when,
                art_type="3D Art" if i % 7 == 3 else "2D Art",
                tags=[] if i % 6 == 1 else rng.sample(_TAGS, rng.randint(1, 4)),
                licenses=[(name, LICENSES[name]) for name in _LICENSE_SETS[i % len(_LICENSE_SETS)]],
                attribution=f'Credit "{author}" & link back, please.' if i % 2 == 0 else None,
                description="" if i % 8 == 5 else f"{title}: a small pack.\n\nMade for <16x16> games.",
                favorites=0 if i % 5 == 3 else rng.randint(1, 300),
                collections=[] if i % 3 == 1 else rng.sample(_COLLECTIONS, rng.randint(1, 3)),
                previews=previews,
                files=files,
            )
        )
    return pages


# ---------------------------------------------------------------------------------------------------------
# Markup


def _e(text: str) -> str:
    """Escape like Drupal's check_plain (htmlspecialchars with ENT_QUOTES)."""
    return html.escape(text, quote=True).replace("&#x27;", "&#039;")


def _oga_date(when: datetime) -> str:
    """Drupal's 'l, F j, Y - H:i', e.g. "Thursday, April 12, 2018 - 05:17", locale-independent."""
    return (
        f"{_WEEKDAYS[when.weekday()]}, {_MONTHS[when.month - 1]} {when.day}, {when.year} - "
        f"{when.hour:02d}:{when.minute:02d}"
    )


def _size_text(length: int) -> str:
    if length < 1000:
        return f"{length} bytes"
    if length < 1_000_000:
        return f"{length / 1000:.1f} Kb"
    return f"{length / 1_000_000:.1f} Mb"


def _user_link(name: str) -> str:
    return f"<span class='username'><a href=\"/users/{_slugify(name)}\">{_e(name)}</a></span>"


def _parity(k: int) -> str:
    return "even" if k % 2 == 0 else "odd"


def _field(name: str, kind: str, label: str | None, items: list[str], item_attrs: str = "") -> str:
    """One Drupal field block; ``label`` None renders field-label-hidden as the real theme does."""
    label_class = "field-label-hidden" if label is None else "field-label-above"
    label_html = "" if label is None else f'<div class="field-label">{label}:&nbsp;</div>'
    body = "".join(f'<div class="field-item {_parity(k)}"{item_attrs}>{item}</div>' for k, item in enumerate(items))
    return (
        f'<div class="field field-name-{name} field-type-{kind} {label_class}">{label_html}'
        f'<div class="field-items">{body}</div></div>'
    )


_MENUBAR = (
    '  <div id=\'menubar\'>\n  <ul class="menu"><li class="first leaf"><a href="/">Home</a></li>\n'
    '<li class="expanded"><a href="/latest">Browse</a><ul class="menu">'
    + "".join(
        f'<li class="leaf"><a href="/art-search-advanced?keys=&amp;field_art_type_tid%5B%5D={tid}'
        f'&amp;sort_by=count&amp;sort_order=DESC">{_e(name)}</a></li>\n'
        for name, tid in ART_TYPE_TIDS.items()
    )
    + '</ul></li>\n<li class="leaf"><a href="/node/add/art">Submit Art</a></li>\n'
    '<li class="last leaf"><a href="/content/faq">FAQ</a></li>\n</ul>\n </div>\n'
)

_FORUM_TOPICS = (
    ("/forumtopic/spending-the-next-year-here#comment-113376", "Spending the next year here", "thenewkgb"),
    ("/forumtopic/escape-1945#comment-113373", "ESCAPE - 1945", "RetroBoy"),
    (
        "/forumtopic/chess-pieces-anthropomorphic#comment-113370",
        "Chess pieces, anthropomorphic ",
        "woodsmoke",
    ),
)


def _forum_block() -> str:
    """The sidebar "Active Forum Topics" view: its rows carry views-row classes too, as on the real page."""
    rows = []
    for k, (href, title, user) in enumerate(_FORUM_TOPICS, start=1):
        classes = f"views-row views-row-{k} views-row-{'odd' if k % 2 else 'even'}"
        classes += " views-row-first" if k == 1 else ""
        classes += " views-row-last" if k == len(_FORUM_TOPICS) else ""
        rows.append(
            f'          <li class="{classes}">  \n'
            f'  <span class="views-field views-field-title">        <span class="field-content">'
            f'<a href="{href}">{_e(title)}</a></span>  </span>  \n'
            f'  <span class="views-field views-field-last-comment-name">    <span class="views-label '
            f'views-label-last-comment-name">by</span>    <span class="field-content"><a href="/users/'
            f'{_slugify(user)}" title="View user profile." class="username">{_e(user)}</a></span>'
            "  </span></li>"
        )
    return (
        '<div id="block-views-new-forum-topics-block-1" class="block block-views">\n\n'
        "    <h2>Active Forum Topics - (<a href='/forum'>view more</a>)</h2>\n  \n  <div class=\"content\">\n"
        '    <div class="view view-new-forum-topics view-id-new_forum_topics view-display-id-block_1 '
        'view-dom-id-bfeb38a4d6f8273f4879e358712740a4">\n      <div class="view-content">\n'
        '      <div class="item-list">    <ul>' + "\n".join(rows) + "\n      </ul></div>    </div>\n"
        "</div>  </div>\n</div>\n"
    )


def _head(title: str, canonical: str, shortlink: str) -> str:
    return (
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML+RDFa 1.0//EN"\n'
        '  "http://www.w3.org/MarkUp/DTD/xhtml-rdfa-1.dtd">\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" version="XHTML+RDFa 1.0" dir="ltr">\n\n'
        '<head profile="http://www.w3.org/1999/xhtml/vocab">\n'
        '  <meta http-equiv="Content-Type" content="text/html; charset=utf-8" />\n'
        '<meta name="generator" content="Drupal 7 (http://drupal.org)" />\n'
        f'<link rel="canonical" href="{canonical}" />\n'
        f'<link rel="shortlink" href="{shortlink}" />\n'
        '<meta property="og:site_name" content="OpenGameArt.org" />\n'
        f'<meta property="og:url" content="{canonical}" />\n'
        f'<meta property="og:title" content="{_e(title)}" />\n'
        f"  <title>{_e(title)} | OpenGameArt.org</title>\n</head>\n"
    )


def _pager(page: int, last_page: int, href: Callable[[int], str]) -> str:
    """Drupal 7's theme_pager with 9 page links, reproduced step by step (ellipses, first/last items)."""
    if last_page < 1:
        return ""
    quantity, middle = 9, 5
    current, pager_max = page + 1, last_page + 1
    i, shown_last = current - middle + 1, current + quantity - middle
    if shown_last > pager_max:
        i += pager_max - shown_last
        shown_last = pager_max
    if i <= 0:
        shown_last += 1 - i
        i = 1

    def link(target: int, title: str, text: str) -> str:
        return f'<a title="{title}" href="{_e(href(target))}">{text}</a>'

    items: list[tuple[str, str]] = []
    if current > 1:
        items.append(("pager-first", link(0, "Go to first page", "\u00ab first")))
        items.append(("pager-previous", link(page - 1, "Go to previous page", "\u2039 previous")))
    if i != pager_max:
        if i > 1:
            items.append(("pager-ellipsis", "\u2026"))
        while i <= shown_last and i <= pager_max:
            if i == current:
                items.append(("pager-current", str(i)))
            else:
                items.append(("pager-item", link(i - 1, f"Go to page {i}", str(i))))
            i += 1
        if i < pager_max:
            items.append(("pager-ellipsis", "\u2026"))
    if current < pager_max:
        items.append(("pager-next", link(page + 1, "Go to next page", "next \u203a")))
        items.append(("pager-last", link(last_page, "Go to last page", "last \u00bb")))
    lis = []
    for k, (cls, data) in enumerate(items):
        cls += " first" if k == 0 else ""
        cls += " last" if k == len(items) - 1 else ""
        lis.append(f'<li class="{cls}">{data}</li>')
    return (
        '<h2 class="element-invisible">Pages</h2><div class="item-list"><ul class="pager">'
        + "\n".join(lis)
        + "\n</ul></div>"
    )


_COMMENTERS = ("Luca Pixel", "farcodev", "Croomfolk")


def _comments(page: SitePage) -> str:
    """Comments carry their own post-date and username fields, to catch selectors not scoped to the node."""
    parts = []
    for k in range(1 + page.node_id % 2):
        user = _COMMENTERS[(page.node_id + k) % len(_COMMENTERS)]
        when = page.post_date + timedelta(days=k + 1, hours=3)
        parts.append(
            f'<a id="comment-{page.node_id * 10 + k}"></a>\n'
            '<div class="ds-3col-stacked-fluid comment view-mode-full group-two-sidebars group-sidebar-left '
            'group-sidebar-right clearfix">\n\n      <div class="group-left left-side-left">\n'
            f'      <span rel="sioc:has_creator"><a href="/users/{_slugify(user)}" '
            'title="View user profile." class="username" typeof="sioc:UserAccount" property="foaf:name">'
            f"{_e(user)}</a></span>"
            + _field("date-joined", "ds", None, ["<small><em>joined 9 years 3 months ago</em></small>"])
            + _field("post-date", "ds", None, [f"{when:%m/%d/%Y - %H:%M}"])
            + '    </div>\n      <div class="group-right right-side">\n      '
            + _field(
                "comment-body",
                "text-long",
                None,
                [f'<p>Nice work! Also see <a href="/content/{page.slug}">{_e(page.title)}</a>.</p>\n'],
                ' property="content:encoded"',
            )
            + "    </div>\n  </div>\n"
        )
    return (
        '      <div class="group-footer">\n      <div id="comments" class="comment-wrapper">\n'
        '          <h2 class="title">Comments</h2>\n      \n  ' + "".join(parts) + "  </div>\n    </div>\n"
    )


def _file_icon(mime: str) -> str:
    return "image-x-generic.png" if mime.startswith("image/") else "package-x-generic.png"


def render_content(page: SitePage, base: str) -> str:
    """A content page in the markup of the real /content/nature-kit; empty optional fields are left out."""
    left = [_field("author-submitter", "ds", "Author", [_author_html(page)])]
    left.append(_field("post-date", "ds", None, [_oga_date(page.post_date)]))
    tid = ART_TYPE_TIDS.get(page.art_type, 0)
    left.append(
        _field(
            "field-art-type",
            "taxonomy-term-reference",
            "Art Type",
            [
                f'<a href="/art-search-advanced?field_art_type_tid%5B%5D={tid}" typeof="skos:Concept" '
                f'property="rdfs:label skos:prefLabel" datatype="">{_e(page.art_type)}</a>'
            ],
        )
    )
    if page.tags:
        tag_links = [
            f'<a href="/art-search-advanced?field_art_tags_tid={quote(tag)}" typeof="skos:Concept" '
            f'property="rdfs:label skos:prefLabel" datatype="">{_e(tag)}</a>'
            for tag in page.tags
        ]
        left.append(_field("field-art-tags", "taxonomy-term-reference", "Tags", tag_links))
    if page.licenses:
        licence_items = [
            f"<div class='license-icon'><a href='{_e(deed)}' target='_blank'><img src='{base}{FILES_PATH}"
            f"license_images/{_slugify(name.split()[0])}.png' alt='' title=''><div class='license-name'>"
            f"{_e(name)}</div></a></div>"
            for name, deed in page.licenses
        ]
        left.append(_field("field-art-licenses", "taxonomy-term-reference", "License(s)", licence_items))
    if page.collections:
        links = "".join(f'<li><a href="/content/{slug}">{_e(title)}</a></li>' for title, slug in page.collections)
        left.append(_field("collect", "ds", "Collections", [f"<div class='collect-container'><ul>{links}</ul></div>"]))
    left.append(
        '<div class="field field-name-favorites field-type-ds field-label-inline clearfix">'
        '<div class="field-label">Favorites:&nbsp;</div><div class="field-items">'
        f'<div class="field-item even">{page.favorites}</div>'
        "</div></div>"
    )

    right = []
    if page.previews:
        preview_items = [
            f'<a href="{base}{FILES_PATH}{quote(name)}" class="preview-lightbox">'
            f"<img src='{base}{FILES_PATH}styles/medium/public/{quote(name)}'  alt='Preview'></a>"
            for name in page.previews
        ]
        right.append(_field("field-art-preview", "file", "Preview", preview_items))
    if page.description:
        paragraphs = "\n".join(f"<p>{_e(p)}</p>" for p in page.description.split("\n\n"))
        right.append(_field("body", "text-with-summary", None, [paragraphs + "\n"], ' property="content:encoded"'))
    if page.attribution:
        right.append(
            _field("field-copyright-notice", "text-long", "Copyright/Attribution Notice", [_e(page.attribution)])
        )
    if page.files:
        right.append(_field("field-art-files", "file", "File(s)", [_file_html(f, base) for f in page.files]))
    right.append(
        '<ul class="links inline"><li class="comment_forbidden first last"><span>'
        f'<a href="/user/login?destination=node/{page.node_id}%23comment-form">Log in</a> or '
        f'<a href="/user/register?destination=node/{page.node_id}%23comment-form">register</a> '
        "to post comments</span></li>\n</ul>"
    )

    node = (
        '    <div class="ds-2col-stacked node node-art view-mode-full clearfix">\n\n  \n'
        '      <div class="group-header">\n      '
        + _field("title", "ds", None, [f"<h2>{_e(page.title)}</h2>"], ' property="dc:title"')
        + '    </div>\n  \n      <div class="group-left left-column">\n      '
        + "".join(left)
        + '    </div>\n  \n      <div class="group-right right-column">\n      '
        + "".join(right)
        + "    </div>\n  \n"
        + _comments(page)
        + "  </div>\n"
    )
    return (
        _head(page.title, f"{base}{page.path}", f"{base}/node/{page.node_id}")
        + '<body class="html not-front not-logged-in no-sidebars page-node page-node- '
        f'page-node-{page.node_id} node-type-art domain-opengameart-org" >\n'
        "<div id='page'>\n  <a href='/' id='maintitle'></a>\n"
        + _MENUBAR
        + "  <div id='maincontent'>\n    <div id='right' class='nosidebar'>\n"
        "            <div class='tabs'></div>\n"
        '    <div class="region region-content">\n'
        '    <div id="block-system-main" class="block block-system">\n'
        '  <div class="content">\n'
        + node
        + "  </div>\n</div>\n  </div>\n    </div>\n  </div>\n</div>\n  </body>\n</html>\n"
    )


def _author_html(page: SitePage) -> str:
    out = _user_link(page.author)
    if page.submitter and page.submitter != page.author:
        out += "<br/>Submitted by " + _user_link(page.submitter)
    return out


def _file_html(file: SiteFile, base: str) -> str:
    length = "" if file.declared_length is None else f"; length={file.declared_length}"
    shown = file.declared_length if file.declared_length is not None else len(file.data)
    return (
        f'<span class="file"><img class="file-icon" alt="{_e(file.name)}" title="{_e(file.mime)}" '
        f'src="/modules/file/icons/{_file_icon(file.mime)}" /> <a href="{base}{file.path}" '
        f'type="{_e(file.mime)}{length}" data-fid="{file.fid}" target="_blank" download="{_e(file.name)}">'
        f'{_e(file.name)}</a> {_size_text(shown)} <span class="dlcount">[<span class="dlcount-number" '
        f'id="dlcount-{file.fid}">{file.fid % 97}</span> download(s)]</span></span>'
    )


def _listing_row(page: SitePage, k: int, count: int, base: str) -> str:
    classes = f"views-row views-row-{k} views-row-{'odd' if k % 2 else 'even'}"
    classes += " views-row-first" if k == 1 else ""
    classes += " views-row-last" if k == count else ""
    title = _field(
        "title",
        "ds",
        None,
        [f'<span class="art-preview-title"><a href="{page.path}">{_e(page.title)}</a></span>'],
        ' property="dc:title"',
    )
    preview = ""
    if page.previews:
        thumb = f"{base}{FILES_PATH}styles/thumbnail/public/{quote(page.previews[0])}"
        preview = _field(
            "field-art-preview",
            "file",
            None,
            [f"<a href=\"{page.path}\"><img src='{thumb}'  alt='Preview'></a>"],
        )
    return (
        f'  <div class="{classes} art-previews-inline">\n'
        '    <div class="ds-1col node node-art view-mode-art_preview clearfix ">\n\n  \n  '
        f"{title}{preview}</div>  </div>\n"
    )


# ---------------------------------------------------------------------------------------------------------
# The server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    site: OgaSite

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients hanging up (timeouts, truncation tests) are expected; report anything else."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections give their thread back eventually
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, delayed ACKs add ~40 ms per request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.site._lock:
            self.server.site._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.site._lock:
            self.server.site._connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: object) -> None:
        """Tests read ``OgaSite.requests`` instead of stderr."""

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def _serve(self) -> None:
        site = self.server.site
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = RequestRecord(self.command, self.path, headers, 0, 0, False, time.monotonic())
        with site._lock:
            site.requests.append(record)
        try:
            response = site._respond(self.command, self.path, headers)
        except Exception:
            traceback.print_exc()  # a bug in the site itself: show it, answer like a broken server
            response = _error(500)
        body = b"" if self.command == "HEAD" else response.body
        if response.truncate and body:
            body = body[: len(body) // 2]
        # The record is final before the client can see the answer, so assertions right after a request hold.
        record.status, record.bytes_sent, record.completed = response.status, len(body), not response.truncate
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            if response.truncate:
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            record.completed = False
            self.close_connection = True


class OgaSite:
    """The local OGA site: ``with OgaSite(make_pages(30)) as site: ... site.base_url ...``.

    ``pages`` may be changed while it runs; every answer is rendered from the current list. Faults match a
    request when their path equals the request's path, with or without its query (compared
    percent-decoded), so ``fail_once("/art-search-advanced")`` hits the next listing page of any query.
    """

    def __init__(
        self,
        pages: list[SitePage],
        *,
        robots: str | None = DEFAULT_ROBOTS,
        response_delay: float = 0.0,
        port: int = 0,
    ) -> None:
        self.pages = pages
        self.robots = robots  # None: /robots.txt answers 404
        self.robots_status: int | None = None  # e.g. 500: robots.txt unreachable
        self.response_delay = response_delay
        self.requests: list[RequestRecord] = []
        self._port = port
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._versions: dict[str, tuple[str, datetime]] = {}
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the site is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> OgaSite:
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.site = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="oga-site", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop open keep-alive connections, so no client waits on a dead site."""
        if self._server is None:
            return
        self._server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> OgaSite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- helpers for tests ---

    def url(self, path: str) -> str:
        return self.base_url + path

    def listing_path(
        self, page: int = 0, *, art_types: tuple[str, ...] = ("2D Art",), per_page: int | None = None
    ) -> str:
        """A listing URL path as the OGA search form builds it."""
        query = "keys=" + "".join(f"&field_art_type_tid%5B%5D={ART_TYPE_TIDS[t]}" for t in art_types)
        query += f"&items_per_page={per_page}" if per_page else ""
        return f"/art-search-advanced?{query}" + (f"&page={page}" if page else "")

    def count(self, path_prefix: str, *, status: int | None = None, completed_only: bool = True) -> int:
        """How many requests' raw path starts with ``path_prefix``."""
        with self._lock:
            records = list(self.requests)
        return sum(
            1
            for r in records
            if r.path.startswith(path_prefix)
            and (status is None or r.status == status)
            and (r.completed or not completed_only)
        )

    # --- faults ---

    def fail_once(self, path: str, status: int = 503, retry_after: int | None = None, *, times: int = 1) -> None:
        """The next ``times`` requests to ``path`` get ``status`` (+ Retry-After if given); then it heals."""
        self._add(_Fault("status", path, times, status=status, retry_after=retry_after))

    def fail_always(self, path: str, status: int = 404) -> None:
        self._add(_Fault("status", path, None, status=status))

    def slow(self, path: str, seconds: float) -> None:
        """Every request to ``path`` waits ``seconds`` before its answer starts."""
        self._add(_Fault("slow", path, None, seconds=seconds))

    def truncate(self, path: str, *, times: int | None = 1) -> None:
        """The next ``times`` (None: all) full answers to ``path`` declare the full Content-Length, send half
        the body and close the connection."""
        self._add(_Fault("truncate", path, times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take(self, kind: str, target: str) -> list[_Fault]:
        """The matching faults of one kind, each used up once."""
        split = urlsplit(target)
        keys = {unquote(target), unquote(split.path)}
        taken = []
        with self._lock:
            for fault in self._faults:
                if fault.kind == kind and unquote(fault.path) in keys:
                    taken.append(fault)
                    if fault.remaining is not None:
                        fault.remaining -= 1
            self._faults = [f for f in self._faults if f.remaining is None or f.remaining > 0]
        return taken

    # --- answers ---

    def _respond(self, method: str, target: str, headers: dict[str, str]) -> _Response:
        delay = self.response_delay + sum(f.seconds for f in self._take("slow", target))
        if delay:
            time.sleep(delay)
        failures = self._take("status", target)
        if failures:
            response = _error(failures[0].status)
            if failures[0].retry_after is not None:
                response.headers["Retry-After"] = str(failures[0].retry_after)
            return response
        response = self._route(target, headers)
        if method == "GET" and response.status == 200 and response.body and self._take("truncate", target):
            response.truncate = True
        return response

    def _route(self, target: str, headers: dict[str, str]) -> _Response:
        split = urlsplit(target)
        path = split.path
        pages = list(self.pages)
        if path == "/robots.txt":
            return self._robots()
        if path == "/art-search-advanced":
            body, newest = self._listing(split.query, pages)
            return self._conditional(target, body, newest, "text/html; charset=utf-8", headers)
        if path.startswith("/content/"):
            slug = unquote(path.removeprefix("/content/"))
            page = next((p for p in pages if p.slug == slug), None)
            if page is None:
                return _error(404)
            body = render_content(page, self.base_url).encode()
            return self._conditional(path, body, page.post_date, "text/html; charset=utf-8", headers)
        if match := re.fullmatch(r"/node/(\d+)", path):
            page = next((p for p in pages if p.node_id == int(match[1])), None)
            if page is None:
                return _error(404)
            response = _error(301)
            response.headers["Location"] = self.url(page.path)
            return response
        if re.fullmatch(r"/file/\d+/dlcounter", path):
            return _Response(200, b"{}", {"Content-Type": "application/json", "Content-Length": "2"})
        if path.startswith(FILES_PATH):
            return self._file(unquote(path.removeprefix(FILES_PATH)), pages, headers)
        return _error(404)

    def _robots(self) -> _Response:
        if self.robots_status is not None:
            return _error(self.robots_status)
        if self.robots is None:
            return _error(404)
        body = self.robots.encode()
        return _Response(200, body, {"Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(body))})

    def _file(self, name: str, pages: list[SitePage], headers: dict[str, str]) -> _Response:
        """File bytes; image styles (thumbnail, medium) and previews that are no file get a generated PNG."""
        if match := re.fullmatch(r"styles/[a-z0-9_]+/public/(.+)", name):
            name = match[1]
        for page in pages:
            for file in page.files:
                if file.name == name:
                    return self._conditional(FILES_PATH + name, file.data, page.post_date, file.mime, headers)
        for page in pages:
            if name in page.previews:
                data = _png(random.Random(name), 32, 32)
                return self._conditional(FILES_PATH + name, data, page.post_date, "image/png", headers)
        return _error(404)

    def _listing(self, query: str, pages: list[SitePage]) -> tuple[bytes, datetime]:
        """The art search view: filter by art type, sort, page (Drupal clamps a page past the end)."""
        params = parse_qsl(query, keep_blank_values=True)
        tids = {int(v) for k, v in params if re.fullmatch(r"field_art_type_tid(\[\d*\])?", k) and v.isdigit()}
        values = dict(params)
        per_page = int(values["items_per_page"]) if values.get("items_per_page", "").isdigit() else ITEMS_PER_PAGE
        per_page = per_page or ITEMS_PER_PAGE
        chosen = [p for p in pages if not tids or ART_TYPE_TIDS.get(p.art_type) in tids]
        if values.get("sort_by") == "count":
            chosen.sort(key=lambda p: (p.favorites, p.node_id))
        else:
            chosen.sort(key=lambda p: (p.post_date, p.node_id))
        if values.get("sort_order", "DESC").upper() != "ASC":
            chosen.reverse()
        last_page = max(0, (len(chosen) - 1) // per_page)
        page = min(int(values["page"]) if values.get("page", "").isdigit() else 0, last_page)
        shown = chosen[page * per_page : (page + 1) * per_page]

        kept = []
        indexes: dict[str, int] = {}
        for key, value in params:
            if key == "page":
                continue
            if key.endswith("[]"):
                base_key = key[:-2]
                key = f"{base_key}[{indexes.get(base_key, 0)}]"
                indexes[base_key] = indexes.get(base_key, 0) + 1
            kept.append(f"{quote(key, safe='')}={quote(value, safe='')}")

        def href(target: int) -> str:
            parts = [*kept, f"page={target}"] if target else kept
            return "/art-search-advanced" + ("?" + "&".join(parts) if parts else "")

        base = self.base_url
        if shown:
            first = page * per_page + 1
            content = (
                '            <div class="view-header">\n'
                f"      Displaying {first} - {first + len(shown) - 1} of {len(chosen)}    </div>\n"
                '  \n  \n  \n      <div class="view-content">\n  '
                + "".join(_listing_row(p, k, len(shown), base) for k, p in enumerate(shown, start=1))
                + "    </div>\n  \n      "
                + _pager(page, last_page, href)
            )
        else:
            content = '      <div class="view-empty">\n      <p>No results.</p>    </div>\n'
        dom_id = hashlib.md5(query.encode()).hexdigest()
        body = (
            _head("Search Art", f"{base}/art-search-advanced", f"{base}/art-search-advanced")
            + '<body class="html not-front not-logged-in no-sidebars page-art-search-advanced '
            'domain-opengameart-org" >\n'
            "<div id='page'>\n  <a href='/' id='maintitle'></a>\n"
            + _MENUBAR
            + "  <div id='maincontent'>\n    <div id='left'>\n        <div class=\"region region-left\">\n"
            + _forum_block()
            + "  </div>\n              </div>\n    <div id='right'>\n            <div class='tabs'></div>\n"
            "                  <div class='pagetitle'><h2>Search Art</h2></div>\n"
            '              <div class="region region-content">\n'
            '    <div id="block-system-main" class="block block-system">\n\n    \n  <div class="content">\n'
            '    <div class="view view-art view-id-art view-display-id-search_art_advanced '
            f'view-dom-id-{dom_id}">\n'
            + content
            + "\n</div>  </div>\n</div>\n  </div>\n    </div>\n  </div>\n</div>\n  </body>\n</html>\n"
        )
        newest = max((p.post_date for p in pages), default=datetime(2000, 1, 1))
        return body.encode(), newest

    def _conditional(self, key: str, body: bytes, modified: datetime, mime: str, headers: dict[str, str]) -> _Response:
        """200 with a strong ETag and Last-Modified, or 304.

        Last-Modified starts at ``modified`` and moves forward (to now, at least a second later) whenever the
        body served under ``key`` changes, so If-Modified-Since alone also sees edits. If-None-Match, when
        sent, decides alone (RFC 9110).
        """
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        base_modified = modified.replace(tzinfo=UTC, microsecond=0)
        with self._lock:
            seen = self._versions.get(key)
            if seen is None:
                last_modified = base_modified
            elif seen[0] == etag:
                last_modified = seen[1]
            else:
                now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
                last_modified = max(seen[1] + timedelta(seconds=1), now, base_modified)
            self._versions[key] = (etag, last_modified)
        validators = {"ETag": etag, "Last-Modified": format_datetime(last_modified, usegmt=True)}
        if _not_modified(headers, etag, last_modified):
            return _Response(304, b"", validators)
        return _Response(200, body, {"Content-Type": mime, "Content-Length": str(len(body)), **validators})


def _not_modified(headers: dict[str, str], etag: str, last_modified: datetime) -> bool:
    if "if-none-match" in headers:
        tags = [t.strip().removeprefix("W/") for t in headers["if-none-match"].split(",")]
        return "*" in tags or etag in tags
    if "if-modified-since" in headers:
        try:
            since = parsedate_to_datetime(headers["if-modified-since"])
        except (TypeError, ValueError):
            return False
        return since.tzinfo is not None and last_modified <= since
    return False


def _error(status: int) -> _Response:
    phrase = HTTPStatus(status).phrase
    data = (
        f"<html><head><title>{phrase} | OpenGameArt.org</title></head><body><h1>{status} {phrase}</h1></body></html>"
    ).encode()
    return _Response(status, data, {"Content-Type": "text/html; charset=utf-8", "Content-Length": str(len(data))})


def main(argv: list[str] | None = None) -> None:
    """Serve a demo site on 127.0.0.1 until interrupted."""
    parser = argparse.ArgumentParser(description="Serve a local OpenGameArt-like test site on 127.0.0.1.")
    parser.add_argument("--pages", type=int, default=30)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with OgaSite(make_pages(args.pages, args.seed), port=args.port) as site:
        print(f"Serving {args.pages} pages at {site.base_url}/art-search-advanced (Ctrl-C stops)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
