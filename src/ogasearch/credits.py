"""The credits line users paste into their game: what OGA's licences ask of them, in one line."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit


def file_name(url: str) -> str:
    """The last path segment of a file URL, decoded for people to read."""
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or url


def credit_line(
    title: str | None,
    author: str | None,
    licenses: list[str],
    page_url: str | None,
    attribution: str | None = None,
    file_url: str | None = None,
) -> str:
    """`"Title" by Author, licensed CC-BY 4.0: <page>`, plus the page's own attribution notice when it has one.

    A local file (`file:` URL) is named but its path on the server is left out.
    """
    name = f'"{title}"' if title else (file_name(file_url) if file_url else "untitled")
    line = name + (f" by {author}" if author else "")
    if licenses:
        line += ", licensed " + " / ".join(licenses)
    source = page_url or (file_url if file_url and not file_url.startswith("file:") else None)
    if source:
        line += f": {source}"
    notice = " ".join((attribution or "").split())
    if notice:
        line += f" — {notice}"
    return line


def with_page_credits(item: dict) -> dict:
    """An item's provenance (`Catalog.item`) with a credits line added to each page that holds it."""
    for page in item["pages"]:
        names = [lic["name"] for lic in page["licenses"]]
        page["credit"] = credit_line(
            page["title"], page["author"], names, page["url"], page["attribution"], item["file_url"]
        )
    return item
