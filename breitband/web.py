"""The web app (web/, built by Vite into web/dist by scripts/setup.sh), served at ``/`` and ``/assets/…``.

Mounted after every API router, so API paths keep their own handlers and their problem+json 404s. The app uses hash
routes (``/#/inbox``), so its only HTML page is ``/``. The API documentation ``/docs`` is a second page of the same
build (web/docs.html: Swagger UI from the npm package swagger-ui-dist over ``/openapi.json``), served from our own
assets instead of FastAPI's default page, which loads Swagger UI from a CDN and starts it with an inline script that
the Content-Security-Policy (breitband/headers.py) forbids. ReDoc is off. Not built yet → 503 problem+json naming
the build command.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from breitband.errors import NotFound, ProblemError
from breitband.settings import PROJECT_ROOT

DIST = PROJECT_ROOT / "web" / "dist"
router = APIRouter(include_in_schema=False)

MEDIA_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".html": "text/html",
               ".svg": "image/svg+xml", ".json": "application/json", ".map": "application/json"}


class WebAppNotBuilt(ProblemError):
    status, type, title = 503, "web-app-not-built", "Web app not built"


def _dist() -> Path:
    if not (DIST / "index.html").is_file():
        raise WebAppNotBuilt("The web app has not been built: run scripts/setup.sh (or `npm ci && npm run build` "
                             "in web/)")
    return DIST


@router.get("/")
def index() -> FileResponse:
    # The page names its hashed assets; it must be revalidated so a new build is picked up at once.
    return FileResponse(_dist() / "index.html", media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


@router.get("/docs")
def docs() -> FileResponse:
    page = _dist() / "docs.html"
    if not page.is_file():
        raise WebAppNotBuilt("The API documentation page has not been built: run `npm ci && npm run build` in web/")
    return FileResponse(page, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})


@router.get("/assets/{name}")
def asset(name: str) -> FileResponse:
    base = (_dist() / "assets").resolve()
    path = (base / name).resolve()
    if path.parent != base or not path.is_file():
        raise NotFound(f"No asset {name!r}", type="asset-not-found")
    media = MEDIA_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    # Vite puts a content hash in every asset name: cache for a year.
    return FileResponse(path, media_type=media, headers={"Cache-Control": "public, max-age=31536000, immutable",
                                                         "X-Content-Type-Options": "nosniff"})


__all__ = ["router", "DIST"]
