"""Parse OpenGameArt.org HTML into plain dataclasses.

Pure functions: HTML text in, dataclasses out. No network, no catalog, so the
parser is tested on real saved pages. Drupal leaves empty fields out of the
markup, so every field may be missing and parsing never fails on that.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
