"""The web server: public feeds and article pages, health. Thin: route table first;
each view reads the request, calls the store, renders."""

from __future__ import annotations

import hashlib
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from aggregator.config import Settings
from aggregator.errors import NotFoundError
from aggregator.models import DraftStatus
from aggregator.publish import Channel, article_html, atom_feed
from aggregator.store import Store

TEMPLATES = Path(__file__).parent / "templates"
ATOM_TYPE = "application/atom+xml; charset=utf-8"


def create_app(settings: Settings, store: Store) -> Starlette:
    templates = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(), auto_reload=False
    )

    async def healthz(request: Request) -> Response:
        if store.ping():
            return PlainTextResponse("ok\n")
        return PlainTextResponse("database unreachable\n", status_code=503)

    def published_atom(request: Request) -> Response:
        channel = Channel(settings.server.base_url, "/feeds/published.atom", settings.server.title)
        body = atom_feed(channel, store.published(settings.publish.max_entries))
        return cached(request, body, ATOM_TYPE)

    def article(request: Request) -> Response:
        try:
            draft = store.get_draft(int(request.path_params["id"]))
        except NotFoundError:
            draft = None
        if draft is None or draft.status != DraftStatus.APPROVED:
            return PlainTextResponse("no published article with this id\n", status_code=404)
        page = templates.get_template("article.html").render(
            draft=draft, body=article_html(draft), site_title=settings.server.title
        )
        return cached(request, page.encode(), "text/html; charset=utf-8")

    routes = [
        Route("/healthz", healthz),
        Route("/feeds/published.atom", published_atom),
        Route("/articles/{id:int}", article),
    ]
    return Starlette(routes=routes, middleware=[Middleware(GZipMiddleware, minimum_size=500)])


def cached(request: Request, body: bytes, media_type: str, max_age: int = 300) -> Response:
    """Bytes with a strong ETag; 304 when the client already has them."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)
