"""The public operations: the web view's shell (``/``), its files (``/static/{name}``) and the
OpenAPI document (``/openapi.json``). None of them holds any state of the server."""

from __future__ import annotations

__all__ = ["PLACEHOLDER", "index", "openapi", "static", "static_dir"]

import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Final

from aiohttp import web

from ivr_server.api.answers import ApiError, json_response

if TYPE_CHECKING:
    from ivr_server.api.server import ApiServer

_STATIC_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

PLACEHOLDER: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>IVR Server</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>IVR Server</h1>
<p>The web view is not installed. The API is here:
<a href="/openapi.json">/openapi.json</a>, <a href="/api/v1/state">/api/v1/state</a>,
<a href="/metrics">/metrics</a>.</p>
</body></html>
"""


def static_dir() -> Path | None:
    """The web view's files (``ivr_server/api/static``), if installed."""
    try:
        path = Path(str(resources.files("ivr_server.api").joinpath("static")))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - odd installs
        return None
    return path if path.is_dir() else None


async def index(api: ApiServer, request: web.Request) -> web.StreamResponse:
    page = api.static_dir / "index.html" if api.static_dir is not None else None
    if page is not None and page.is_file():
        return web.FileResponse(page, headers={"Cache-Control": "no-cache"})
    return web.Response(text=PLACEHOLDER, content_type="text/html")


async def static(api: ApiServer, request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if api.static_dir is None or not _STATIC_NAME.fullmatch(name):
        raise ApiError(404, f"no static file {name!r}")
    path = api.static_dir / name
    if not path.is_file():
        raise ApiError(404, f"no static file {name!r}")
    return web.FileResponse(
        path, headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    )


async def openapi(api: ApiServer, request: web.Request) -> web.StreamResponse:
    return json_response(api.openapi_document())
