"""The JSON API: the same searches as the page, as data (OpenAPI docs at /docs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, UploadFile
from pydantic import BaseModel

from ogasearch.credits import with_page_credits
from ogasearch.search import MAX_COUNT, MAX_OFFSET, Filters, Result, UnknownItem
from ogasearch.web.services import Services, read_upload, result_json

router = APIRouter(prefix="/api", tags=["search"])

MAX_ITEM_ID = 2**63 - 1
Count = Annotated[int, Query(ge=1, le=MAX_COUNT, description=f"Results per page (1–{MAX_COUNT}).")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description=f"Results to skip (paging, at most {MAX_OFFSET}).")]
ItemId = Annotated[int, Path(ge=1, le=MAX_ITEM_ID, description="An item id from a result.")]


@dataclass
class ResultOut(Result):
    """A result as the API returns it (the schema in /docs): every field, plus the credits line to paste."""

    credit: str = ""


class SearchOut(BaseModel):
    query: dict[str, Any]
    count: int
    offset: int
    results: list[ResultOut]


def services(request: Request) -> Services:
    """The process's services, made once by `create_app`."""
    return request.app.state.services


def filters(
    license: Annotated[str | None, Query(max_length=100, description="Licence name contains this, e.g. CC0.")] = None,
    art_type: Annotated[str | None, Query(max_length=100, description="Art type, e.g. 2D Art.")] = None,
    kind: Annotated[Literal["all", "whole", "tiles"], Query(description="Whole images, tiles, or both.")] = "all",
) -> Filters:
    return Filters(license=license or None, art_type=art_type or None, kind=kind)


Svc = Annotated[Services, Depends(services)]
Filter = Annotated[Filters, Depends(filters)]


def answer(query: dict[str, Any], results: list[Result], count: int, offset: int) -> dict[str, Any]:
    return {"query": query, "count": count, "offset": offset, "results": [result_json(r) for r in results]}


@router.get("/search", response_model=SearchOut)
def search(
    svc: Svc,
    q: Annotated[str, Query(min_length=1, max_length=2000, description="Words, or an http(s) image URL.")],
    f: Filter,
    count: Count = 20,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Words search titles, tags, authors, descriptions and file names; an image URL is an image search."""
    results, upload = svc.words_or_url(q, count, offset, f)
    return answer({"q": q, "kind": "url" if upload else "text", "upload": upload}, results, count, offset)


@router.post("/search/image", response_model=SearchOut)
def search_image(svc: Svc, file: UploadFile, f: Filter, count: Count = 20, offset: Offset = 0) -> dict[str, Any]:
    """Search by an uploaded image (multipart field `file`): PNG, GIF, BMP, JPEG, WebP, TGA or ICO."""
    data = read_upload(file, svc.cfg.max_upload_bytes)
    results, upload = svc.image(data, file.filename or "upload", count, offset, f)
    return answer({"kind": "image", "upload": upload}, results, count, offset)


@router.get("/search/url", response_model=SearchOut)
def search_url(
    svc: Svc,
    url: Annotated[str, Query(min_length=1, max_length=4000, description="An http(s) image URL.")],
    f: Filter,
    count: Count = 20,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Search by an image URL, fetched from public addresses only, within size, time and type limits."""
    results, upload = svc.url(url, count, offset, f)
    return answer({"url": url, "kind": "url", "upload": upload}, results, count, offset)


@router.get("/similar/{item_id}", response_model=SearchOut)
def similar(svc: Svc, item_id: ItemId, f: Filter, count: Count = 20, offset: Offset = 0) -> dict[str, Any]:
    """More like this item (the item itself left out)."""
    results = svc.similar(item_id, count, offset, f)
    return answer({"similar": item_id, "kind": "similar"}, results, count, offset)


@router.get("/items/{item_id}")
def item(svc: Svc, item_id: ItemId) -> dict[str, Any]:
    """One item's full provenance: image, box, file, archive path and every OGA page holding it."""
    info = svc.catalog.item(item_id)
    if info is None:
        raise UnknownItem(f"no item {item_id}")
    return {**with_page_credits(info), "thumb_url": f"/thumb/{item_id}.png"}


@router.get("/stats")
def stats(svc: Svc) -> dict[str, Any]:
    """What is indexed (pages, files, images, whole items, tiles) and when the last crawl ran."""
    engine = svc.live.get()
    return {**svc.summary(), "model": engine.embedder.name, "indexed": len(engine.index)}
