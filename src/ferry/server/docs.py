"""``/docs`` (Swagger UI) and ``/redoc`` served from the installed ``fastapi-offline``
package's assets: nothing is fetched from the internet, so the pages work on a firewalled site.

Swagger UI's validator badge (it calls validator.swagger.io) is off. On a server without auth
``/docs`` links each model's own document (``/v1/models/{name}/openapi.json``); with auth the
names stay hidden from callers without a key (as on ``/readyz``), and the link is a template.
"""

from __future__ import annotations

import html
import importlib.util
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from ferry.server.routes import PUBLIC, Protocol, RouteTable
from ferry.server.serving.context import serving_context
from ferry.server.state import ferry_state

# the assets of the fastapi-offline package, found without importing it (its FastAPI subclass
# is not used: the pages are built here)
_SPEC = importlib.util.find_spec("fastapi_offline")
ASSETS = Path(str(_SPEC.origin if _SPEC else "")).parent / "static"
ASSET_PREFIX = "/docs/assets/"
ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
_MEDIA = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def docs_routes() -> RouteTable:
    """The offline doc pages and their assets, public (their calls need a key)."""
    routes = RouteTable(Protocol.OPS, include_in_schema=False)
    routes.add("/docs", swagger_page, "GET", PUBLIC)
    routes.add("/redoc", redoc_page, "GET", PUBLIC)
    for name in ASSET_FILES:
        routes.add(ASSET_PREFIX + name, _asset(name), "GET", PUBLIC)
    routes.add("/favicon.ico", _asset("favicon.png"), "GET", PUBLIC)
    return routes


def _asset(name: str) -> Callable[[Request], Awaitable[Response]]:
    path = ASSETS / name
    media = _MEDIA[path.suffix]

    async def asset(request: Request) -> Response:
        return FileResponse(path, media_type=media, headers={"Cache-Control": "max-age=86400"})

    return asset


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


async def swagger_page(request: Request) -> Response:
    """Swagger UI over ``/openapi.json``, or over one model's document with ``?model=NAME``."""
    root = _root(request)
    model = request.query_params.get("model")
    spec = f"{root}/v1/models/{quote(model, safe='@')}/openapi.json" if model else None
    page = get_swagger_ui_html(
        openapi_url=spec or f"{root}/openapi.json",
        title=f"{request.app.title} - API docs",
        swagger_js_url=f"{root}{ASSET_PREFIX}swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSET_PREFIX}swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSET_PREFIX}favicon.png",
        oauth2_redirect_url=None,
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
    )
    text = bytes(page.body).decode()
    text = text.replace("<body>", f"<body>\n{_model_links(request, root)}", 1)
    return HTMLResponse(text)


def _model_links(request: Request, root: str) -> str:
    """The per-model documents, as links above the main one."""
    if ferry_state(request).security is not None:
        names: list[str] = []
    else:
        names = serving_context(request).models.names()
    items = [
        f'<a href="{root}/docs?model={quote(n)}">{html.escape(n)}</a> '
        f'(<a href="{root}/v1/models/{quote(n)}/openapi.json">openapi.json</a>)'
        for n in names
    ]
    listing = " · ".join(items) or "<code>GET /v1/models/{name}/openapi.json</code>"
    return (
        '<nav id="ferry-models" style="font-family:sans-serif;padding:8px 20px">'
        f'Per-model documents: {listing} · <a href="{root}/docs">all routes</a></nav>'
    )


async def redoc_page(request: Request) -> Response:
    root = _root(request)
    return get_redoc_html(
        openapi_url=f"{root}/openapi.json",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSET_PREFIX}redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSET_PREFIX}favicon.png",
        with_google_fonts=False,
    )
