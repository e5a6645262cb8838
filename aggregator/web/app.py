"""The web server: public feeds and article pages, the review desk, its JSON API, health.

Thin: the route table comes first; views live in ``public`` (cached feeds and articles),
``review`` (HTML pages) and ``api`` (JSON), sharing the ``desk``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from aggregator.clock import utc_now
from aggregator.config import Settings
from aggregator.desk.health import status_words
from aggregator.desk.service import Desk
from aggregator.errors import AggregatorError
from aggregator.i18n import SOURCE_LANGUAGE, language_name, messages, ui_language
from aggregator.publishing.credit import source_name
from aggregator.publishing.representation import Representation, request_key, send_representation
from aggregator.publishing.websub import HubNotifier
from aggregator.shapes import spend_words
from aggregator.store import Store
from aggregator.untrusted import CONTROL_TABLE, plain_text, safe_http_url
from aggregator.web.answers import error_answer
from aggregator.web.api import ApiViews
from aggregator.web.auth import Auth
from aggregator.web.images import IMAGE_ROUTE, ImageProxy, desk_html, upstream_html
from aggregator.web.metrics import metrics_view
from aggregator.web.public import PublicationCache, PublicationRenderer, PublicViews
from aggregator.web.review import ReviewViews
from aggregator.web.web_input import wants_json

TEMPLATES = Path(__file__).parent.parent / "templates"
STATIC = Path(__file__).parent.parent / "static"
HUB_CHECK_SECONDS = 10.0


class AggregatorApp(Starlette):
    """Starlette, with cached feeds and articles answered before anything else runs (no
    middleware, no routing, no request object): the hot path of a public feed."""

    def __init__(self, lookup: Callable[[str], Representation | None], **options: Any) -> None:
        super().__init__(**options)
        self.lookup = lookup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            rep = self.lookup(request_key(scope))
            if rep is not None:
                await send_representation(rep, scope, send)
                return
        await super().__call__(scope, receive, send)


def routes(
    public: PublicViews,
    review: ReviewViews,
    api: ApiViews,
    metrics: Callable[..., Any],
    images: ImageProxy | None = None,
    languages: Sequence[str] = (),
) -> list[BaseRoute]:
    desk_images = [Route(IMAGE_ROUTE, images.image)] if images is not None else []
    return [
        # Public, answered from rendered bytes.
        Route("/", public.home),
        Route("/feeds/published.{format}", public.published),
        Route("/feeds/sources/{name}", public.source),
        Route("/articles/{id:int}", public.article),
        Route("/feeds/drafts.atom", public.drafts_feed),
        Route("/healthz", public.healthz),
        Route("/metrics", metrics),  # Prometheus text, read from the database
        # Review pages: login, queue, draft, changes.
        Route("/review", lambda request: RedirectResponse("/review/", 308)),
        Route("/review/", review.queue),
        Route("/review/login", review.login_form, methods=["GET"]),
        Route("/review/audit", review.audit),
        *desk_images,  # the desk's images, fetched here, never by the browser from upstream
        Route("/review/drafts/{id:int}", review.draft),
        Route("/review/feeds", review.feeds),
        Route("/review/entries", review.entries),
        # The desk's forms. A draft's named edits come before its actions, which would take
        # "title" or "body" for an action's name.
        *(
            Route(path, form, methods=["POST"])
            for path, form in (
                ("/review/login", review.login),
                ("/review/logout", review.logout),
                ("/review/drafts/{id:int}/title", review.edit_title),
                ("/review/drafts/{id:int}/blocks/{index:int}", review.edit_block),
                ("/review/drafts/{id:int}/body", review.edit_body),
                ("/review/drafts/{id:int}/{action}", review.action),
                ("/review/entries/{id:int}/retry", review.retry_entry),
                ("/review/entries/{id:int}/text", review.paste_entry_text),
            )
        ),
        # JSON API.
        *api.routes(),  # each from its operation, as /api/openapi.json describes it
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        # The same public resources under each target language (a feed's ``languages``).
        *(
            route
            for language in languages
            for route in (
                Route(f"/{language}/", public.home),
                Route(f"/{language}/feeds/published.{{format}}", public.published),
                Route(f"/{language}/feeds/sources/{{name}}", public.source),
                Route(f"/{language}/articles/{{id:int}}", public.article),
            )
        ),
    ]


def create_app(
    settings: Settings,
    store: Store,
    *,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = utc_now,
    wall_clock: Callable[[], float] = time.time,
) -> Starlette:
    """``clock`` paces the feed cache, ``now`` dates review actions, ``wall_clock`` expires
    sessions and login throttling; tests inject all three."""
    # The desk speaks the editor's language; the public pages the articles' language.
    translation = settings.translation
    templates = make_templates(
        now, ui_language(settings.review.language, translation.target_language)
    )

    @functools.cache
    def public_templates(language: str) -> Environment:
        return make_templates(now, ui_language("", language, public=True))

    auth = Auth(settings, store, clock=wall_clock)
    cache = PublicationCache(
        store,
        float(settings.publish.cache_ttl),
        PublicationRenderer(settings, store, public_templates),
        Path(settings.publish.directory),
        clock=clock,
    )
    notifier = None
    if settings.publish.hub_url:
        notifier = HubNotifier(
            settings.publish.hub_url,
            lambda: hub_topics(settings, store),
            lambda: store.publication_stamp().published,
            interval=HUB_CHECK_SECONDS,
        )
        notifier.start()
    desk = Desk(
        settings,
        store,
        on_publication_change=cache.invalidate,
        notifier=notifier,
        now=now,
        html_from_page=upstream_html,
    )
    public = PublicViews(settings, store, cache, auth)
    review = ReviewViews(desk, auth, templates)
    images = ImageProxy(settings, auth)
    app = AggregatorApp(
        cache.fresh,
        routes=routes(
            public,
            review,
            ApiViews(desk, auth),
            metrics_view(store),
            images,
            languages=settings.published_languages,
        ),
        exception_handlers={
            AggregatorError: lambda request, exc: _problem(review, request, error_answer(exc)),
            HTTPException: lambda request, exc: _problem(
                review, request, (exc.status_code, str(exc.detail), dict(exc.headers or {}))
            ),
        },
    )
    app.state.desk = desk
    app.state.cache = cache
    app.state.images = images
    return app


def hub_topics(settings: Settings, store: Store) -> list[str]:
    root = settings.server.base_url.rstrip("/")
    topics = [f"{root}/feeds/published.{fmt}" for fmt in ("atom", "rss", "json")]
    return topics + [f"{root}/feeds/sources/{slug}.atom" for slug in sorted(store.feed_slugs())]


def _problem(
    review: ReviewViews, request: Request, answer: tuple[int, str, dict[str, str]]
) -> Response:
    status, message, headers = answer
    path = request.url.path
    if path.startswith("/api/") or wants_json(request):
        return JSONResponse(
            {"error": message, "status": status},
            status_code=status,
            headers={"Cache-Control": "no-store", **headers},
        )
    if path.startswith("/review/"):
        return review.problem_page(request, answer)
    return PlainTextResponse(f"{status}: {message}\n", status_code=status, headers=headers)


# ---------------------------------------------------------------- templates


def make_templates(now: Callable[[], datetime], language: str = SOURCE_LANGUAGE) -> Environment:
    """The templates in ``language`` (Jinja's i18n extension over its Babel catalogue)."""
    words = messages(language)
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(),
        auto_reload=False,
        finalize=_without_controls,
        extensions=["jinja2.ext.i18n"],
    )
    # {% trans %} blocks are written over several lines; their msgids are one line.
    environment.policies["ext.i18n.trimmed"] = True
    environment.install_gettext_translations(words.translations, newstyle=True)  # type: ignore[attr-defined]
    environment.globals["language"] = words.language

    def age(moment: datetime, prefix: bool = True) -> str:
        seconds = (moment - now()).total_seconds()
        return words.ago(moment, now()) if prefix else words.duration(seconds)

    environment.filters.update(
        age=age,
        when=words.when,
        day=words.day,
        number=words.number,
        amount=words.amount,
        source_name=source_name,
        status_label=words.status_label,
        feed_status=lambda feed: status_words(feed, words),
        spend=lambda spent: spend_words(spent, words),
        action_label=words.action_label,
        stored=words.stored,
        safe_url=safe_url,
        http_url=lambda url: safe_http_url(url) or "",
        desk_html=desk_html,
        language_name=language_name,
    )
    return environment


def _without_controls(value: Any) -> Any:
    """Every value a template prints loses NUL, controls and bidi overrides (defence in
    depth: they are stripped on the way in too); markup stays markup."""
    if isinstance(value, Markup):
        return value.translate(CONTROL_TABLE)
    if isinstance(value, str):
        return plain_text(value)
    return value


def safe_url(url: str | None) -> str:
    """Only web links go into an href: never javascript:, data: or the like."""
    return safe_http_url(url) or "#"
