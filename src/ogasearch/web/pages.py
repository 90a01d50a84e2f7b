"""The pages people use: search (words, image URL, upload, more like this), about, and the images they show.

Every search is a GET URL (`/?imsi=…`, `/?upload=…`, `/?similar=…`), so the address bar always holds a link
that can be shared; an upload is stored first and then shown at its own URL.
"""

from __future__ import annotations

import time
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ogasearch.credits import file_name
from ogasearch.errors import OgasearchError
from ogasearch.search import MAX_COUNT, BadQuery, Filters, Result
from ogasearch.searchable import query_views
from ogasearch.thumbs import THUMB_BOX, encode_png, thumbnail
from ogasearch.web.api import ItemId, Svc
from ogasearch.web.services import Services, UnknownUpload, credit, read_upload

router = APIRouter(include_in_schema=False)
ThumbSize = Annotated[int, Query(description="Longest side in pixels: 64, 128 or 256.")]
templates = Jinja2Templates(directory=FsPath(__file__).parent / "templates")
CACHE = "public, max-age=86400"
PRIVATE_CACHE = "private, max-age=86400"


def web_url(url: str | None) -> str | None:
    """The URL when a browser can follow it from the page (http or https); local file URLs are not links."""
    return url if url and urlsplit(url).scheme in ("http", "https") else None


templates.env.filters["filename"] = file_name
templates.env.filters["web_url"] = web_url


def _when(stamp: float | None) -> str | None:
    return None if stamp is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stamp))


def _tile(result: Result) -> str | None:
    if result.bbox is None:
        return None
    x0, y0, x1, y1 = result.bbox
    return f"tile at x {x0}, y {y0} ({x1 - x0}×{y1 - y0} px)"


def _item_label(svc: Services, item_id: int) -> str | None:
    """A name for the item a "more like this" search starts from: its page title, else its file name."""
    info = svc.catalog.item(item_id)
    if info is None:
        return None
    titles = [p["title"] for p in info["pages"] if p.get("title")]
    name = titles[0] if titles else info["file_name"] or file_name(info["file_url"])
    if info.get("archive_path") and info["archive_path"] != name:
        name += f" › {info['archive_path']}"
    return name


def _licence_class(name: str) -> str:
    low = name.lower()
    for key in ("cc0", "by-sa", "oga-by", "cc-by", "lgpl", "gpl"):
        if key in low:
            return key
    return "other"


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    """A page from its template; templates escape every value."""
    return templates.TemplateResponse(request, template, context, status_code=status)


def error_page(request: Request, status: int, message: str) -> Response:
    """The search page with only the reason a request failed (for errors raised before a route runs)."""
    return render(request, "index.html", status, error=message, params={}, results=None, licences=[])


@router.api_route("/", methods=["GET", "HEAD"])
def index(
    request: Request,
    svc: Svc,
    imsi: Annotated[str | None, Query(max_length=2000)] = None,
    upload: Annotated[str | None, Query(max_length=64)] = None,
    similar: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    count: Annotated[int, Query(ge=1, le=MAX_COUNT)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
    license: Annotated[str | None, Query(max_length=100)] = None,
    kind: Literal["all", "whole", "tiles"] = "all",
) -> Response:
    """The search page; with no query, just the search box. A failed search keeps the user's words and
    filters on the page, with the reason and the error's status."""
    imsi = (imsi or "").strip()
    filters = Filters(license=license or None, kind=kind)
    params = {k: v for k, v in {"imsi": imsi, "upload": upload, "similar": similar}.items() if v not in (None, "")}
    results: list[Result] | None = None
    query_image = query_label = error = None
    status = 200
    try:
        if similar is not None:
            results = svc.similar(similar, count, offset, filters)
            query_image, query_label = f"/thumb/{similar}.png", _item_label(svc, similar)
        elif upload:
            results = svc.upload(upload, count, offset, filters)
            query_image = f"/upload/{upload}.png"
        elif imsi:
            results, kept = svc.words_or_url(imsi, count, offset, filters)
            query_image = f"/upload/{kept}.png" if kept else None
    except OgasearchError as exc:
        error, status = str(exc), getattr(exc, "http_status", 400)
    base = {**params, "count": count, "license": license or "", "kind": kind}

    def link(**changes: Any) -> str:
        merged = {k: v for k, v in {**base, **changes}.items() if v not in (None, "", "all") and k != "offset"}
        if changes.get("offset"):
            merged["offset"] = changes["offset"]
        if merged.get("count") == 20:
            del merged["count"]
        return "/?" + urlencode(merged)

    cards = [
        {"r": r, "credit": credit(r), "tile": _tile(r), "licence_classes": [_licence_class(n) for n in r.licenses]}
        for r in results or []
    ]
    return render(
        request,
        "index.html",
        status,
        results=cards if results is not None else None,
        error=error,
        params=params,
        imsi=imsi,
        query_image=query_image,
        query_label=query_label,
        count=count,
        offset=offset,
        license=license or "",
        kind=kind,
        licences=svc.license_names(),
        prev_url=link(offset=max(0, offset - count)) if offset > 0 else None,
        next_url=link(offset=offset + count) if results is not None and len(results) == count else None,
        unfiltered_url=link(license=None, kind="all"),
        similar_url=lambda item_id: link(imsi=None, upload=None, similar=item_id),
    )


@router.post("/upload")
def upload(request: Request, svc: Svc, file: Annotated[UploadFile, File()]) -> Response:
    """Keep an uploaded query image and send the browser to its search URL (JSON for scripts); the filters
    in the query string (count, license, kind) carry over."""
    data = read_upload(file, svc.cfg.max_upload_bytes)
    query_views(data, svc.cfg, file.filename or "upload")  # refuse what cannot be searched for before keeping it
    sha = svc.uploads.put(data)
    kept = {k: v for k, v in request.query_params.items() if k in ("count", "license", "kind")}
    target = "/?" + urlencode({"upload": sha, **kept})
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"upload": sha, "url": target})
    return RedirectResponse(target, status_code=303)


@router.api_route("/about", methods=["GET", "HEAD"])
def about(request: Request, svc: Svc) -> Response:
    """What is indexed and when the last crawl ran."""
    summary = svc.summary()
    engine = svc.live.get()
    return render(
        request,
        "about.html",
        stats=summary,
        model=engine.embedder.name,
        indexed=len(engine.index),
        last_crawl=_when(summary["last_crawl_finished"]),
        last_crawl_started=_when(summary["last_crawl_started"]),
    )


def not_modified(if_none_match: str, etag: str) -> bool:
    """Whether an If-None-Match header names this ETag (weak comparison, as RFC 9110 asks for GET)."""
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


def _png(request: Request, data: bytes, etag: str, cache: str = CACHE) -> Response:
    headers = {"ETag": etag, "Cache-Control": cache}
    if not_modified(request.headers.get("if-none-match", ""), etag):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type="image/png", headers=headers)


@router.api_route("/thumb/{item_id}.png", methods=["GET", "HEAD"])
def thumb(request: Request, svc: Svc, item_id: ItemId, size: ThumbSize = THUMB_BOX) -> Response:
    """The item at native scale, cropped from its sheet, enlarged by a whole number with nearest neighbour."""
    if size not in (64, 128, 256):
        raise BadQuery(f"size must be 64, 128 or 256, got {size}")
    data, etag = svc.thumbs.png(item_id, size)
    return _png(request, data, etag)


@router.api_route("/upload/{upload_id}.png", methods=["GET", "HEAD"])
def upload_image(request: Request, svc: Svc, upload_id: str) -> Response:
    """An uploaded query, re-encoded from its decoded pixels (never served as the bytes that were sent).
    It is someone's query, so browsers may cache it but shared caches may not."""
    data = svc.uploads.get(upload_id)
    if data is None:
        raise UnknownUpload(f"no upload {upload_id!r}")
    etag = f'"{upload_id[:32]}"'
    if not_modified(request.headers.get("if-none-match", ""), etag):  # before any decoding
        return _png(request, b"", etag, PRIVATE_CACHE)
    views = query_views(data, svc.cfg, "upload")
    return _png(request, encode_png(thumbnail(views[0])), etag, PRIVATE_CACHE)
