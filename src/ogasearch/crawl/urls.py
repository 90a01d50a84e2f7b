"""OpenGameArt URL building: pure functions, one place for the site's URL shapes."""

from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit

from ogasearch.errors import ConfigError

# Taxonomy term ids of OGA's "Art Type" vocabulary.
ART_TYPES: dict[str, int] = {
    "2D Art": 9,
    "3D Art": 10,
    "Concept Art": 7273,
    "Texture": 14,
    "Music": 12,
    "Sound Effect": 13,
    "Document": 11,
}

_DLCOUNTER = re.compile(r"/file/\d+/dlcounter")


def art_type_tid(name: str) -> int:
    """Look an art type up by name (case-insensitive) or accept a numeric tid."""
    if name.strip().isdigit():
        return int(name)
    wanted = name.strip().lower()
    for known, tid in ART_TYPES.items():
        if known.lower() == wanted or known.lower().replace(" ", "") == wanted.replace(" ", ""):
            return tid
    raise ConfigError(f"unknown art type {name!r}; known: {', '.join(ART_TYPES)}")


def listing_url(base_url: str, tid: int, page: int, items_per_page: int) -> str:
    """A page of the advanced art search for one art type, newest first.

    The sort is explicit so that paging is stable and an incremental crawl can stop
    at the first page it already knows.
    """
    query = urlencode(
        [
            ("keys", ""),
            ("field_art_type_tid[]", str(tid)),
            ("sort_by", "created"),
            ("sort_order", "DESC"),
            ("items_per_page", str(items_per_page)),
            ("page", str(page)),
        ]
    )
    return f"{base_url.rstrip('/')}/art-search-advanced?{query}"


def is_dlcounter(url: str) -> bool:
    """True for OGA's download-counter URLs, which must never be requested."""
    return bool(_DLCOUNTER.search(urlsplit(url).path))


def same_site(url: str, base_url: str) -> bool:
    return urlsplit(url).netloc == urlsplit(base_url).netloc
