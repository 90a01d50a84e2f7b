"""The FastAPI application: wiring, the upload size guard and the error contract (JSON with a 4xx status
and a message for the API, a page saying what went wrong for the browser; never a traceback)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ogasearch import __version__
from ogasearch.config import Config
from ogasearch.errors import OgasearchError
from ogasearch.web import api, pages
from ogasearch.web.services import Services

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the uploaded file


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


def error_response(request: Request, status: int, message: str) -> Response:
    if wants_json(request):
        return JSONResponse({"status": status, "error": message}, status_code=status)
    return pages.error_page(request, status, message)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


class BodyLimit:
    """Refuses request bodies over `limit` bytes before any is spooled: a declared Content-Length at once, a
    chunked body as it streams in. Either way the answer is the app's own 413 (JSON or a page), not plain text.
    """

    def __init__(self, app: ASGIApp, limit: int, message: str) -> None:
        self.app, self.limit, self.message = app, limit, message

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await error_response(Request(scope), 413, self.message)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise HTTPException(413, self.message)  # raised inside the route: the handlers answer it
            return message

        await self.app(scope, limited, send)


def create_app(cfg: Config) -> FastAPI:
    services = Services(cfg)
    too_large = f"the upload is larger than the limit of {cfg.max_upload_bytes} bytes"

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        services.close()

    app = FastAPI(
        title="ogasearch",
        version=__version__,
        description="Reverse image search for the pixel art on OpenGameArt.org: by image, image URL, item or words.",
        lifespan=lifespan,
    )
    app.state.services = services
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(OgasearchError)
    async def project_error(request: Request, exc: OgasearchError) -> Response:
        return error_response(request, getattr(exc, "http_status", 400), str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request, 422, _validation_message(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and message == "Not Found":
            message = f"nothing at {request.url.path}"
        elif exc.status_code == 413:
            message = too_large
        response = error_response(request, exc.status_code, message)
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return error_response(request, 500, "internal error; the server log has the details")

    app.add_middleware(BodyLimit, limit=cfg.max_upload_bytes + MULTIPART_OVERHEAD, message=too_large)

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    return app
