"""The public side: published feeds and article pages, served from rendered bytes.

Nothing is queried or rendered per request. Each representation (body, its gzip, ETag,
Last-Modified, headers) is rendered once and kept until the publication changes. Whether it
changed is one cheap query (``Store.publication_stamp``) at most every ``[publish]
cache_ttl`` seconds, since other processes may write to the same database; a review action
in this process invalidates at once.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import anyio.to_thread
from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from aggregator.config import Settings
from aggregator.errors import NotFoundError
from aggregator.extraction.extract import sanitize
from aggregator.publishing.publish import (
    FORMATS,
    Channel,
    atom_feed,
    credit_html,
    french_date,
    source_label,
    summary_text,
)
from aggregator.publishing.representation import Representation, answer_to, represent
from aggregator.store import Store
from aggregator.store.snapshots import DraftView, PublicationStamp
from aggregator.untrusted import is_row_id
from aggregator.web.auth import Auth

MAX_CACHED = 1024
# The published feeds as the home page announces them (autodiscovery and its footer).
HOME_FEEDS = (
    ("atom", "application/atom+xml", "Atom"),
    ("rss", "application/rss+xml", "RSS"),
    ("json", "application/feed+json", "JSON Feed"),
)
NOT_FOUND_MAX_AGE = 60
# An article page is the public republished article: its images stay where the original put
# them (copying them would be republishing them too), but the page's Referrer-Policy is
# no-referrer, so upstream hosts do not learn which page a reader is on. The review desk
# never loads them from upstream: see ``images``.
ARTICLE_POLICY = (
    "default-src 'none'; img-src https: http:; style-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


def send(request: Request, rep: Representation) -> Response:
    """The representation, or 304 when the client's copy is current (the slow path: the
    same answer the cached paths give when the representation was already cached)."""
    answer = answer_to(rep, request.headers.raw)
    response = Response(answer.body, status_code=answer.status)
    response.raw_headers = list(answer.headers)
    return response


Render = Callable[[PublicationStamp], Representation]


class PublicationCache:
    """Rendered representations, dropped whenever the publication stamp changes."""

    def __init__(
        self,
        store: Store,
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self.stamp: PublicationStamp | None = None
        self.checked_at = -math.inf
        self.generation = 0
        self.items: OrderedDict[str, Representation] = OrderedDict()
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Something was just written here: ask the database on the next request."""
        self.checked_at = -math.inf

    def check(self) -> bool:
        """Ask the database whether the publication changed; True if it did."""
        stamp = self.store.publication_stamp()
        with self._lock:
            if stamp == self.stamp:
                return False
            self.stamp = stamp
            self.generation += 1
            self.items.clear()
        return True

    async def _revalidate(self) -> None:
        now = self.clock()
        if now - self.checked_at < self.ttl:
            return
        # Requests that arrive during the check are served what is cached: at most one
        # check runs at a time, and it is the only wait.
        self.checked_at = now
        await anyio.to_thread.run_sync(self.check)

    def fresh(self, key: str) -> Representation | None:
        """The cached representation if the cache is within its TTL; never waits."""
        if self.clock() - self.checked_at >= self.ttl:
            return None
        return self.items.get(key)

    async def get(self, key: str, render: Render) -> Representation:
        await self._revalidate()
        rep = self.items.get(key)
        if rep is not None:
            return rep
        generation, stamp = self.generation, self.stamp
        assert stamp is not None
        rep = await anyio.to_thread.run_sync(render, stamp)
        with self._lock:
            # A 404 is not kept: asking for many missing pages must not evict the feeds.
            if generation == self.generation and rep.status == 200:
                self.items[key] = rep
                while len(self.items) > MAX_CACHED:
                    self.items.popitem(last=False)
        return rep


class PublicViews:
    """GET-only views of what is published; all of them answer from the cache."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        cache: PublicationCache,
        templates: Environment,
        auth: Auth,
    ) -> None:
        self.settings = settings
        self.store = store
        self.cache = cache
        self.templates = templates
        self.auth = auth
        self.max_age = int(settings.publish.max_age)

    # ------------------------------------------------------------ views

    async def healthz(self, request: Request) -> Response:
        if await anyio.to_thread.run_sync(self.store.ping):
            return PlainTextResponse("ok\n")
        return PlainTextResponse("database unreachable\n", status_code=503)

    async def published(self, request: Request) -> Response:
        fmt = request.path_params["format"]
        if fmt not in FORMATS:
            return _not_found("no such feed: the published feed is .atom, .rss or .json")
        return await self._feed(request, f"/feeds/published.{fmt}", fmt, None)

    async def source(self, request: Request) -> Response:
        slug, _, fmt = request.path_params["name"].rpartition(".")
        if fmt not in FORMATS or not slug:
            return _not_found("no such feed: a source's feed is /feeds/sources/SLUG.atom")
        return await self._feed(request, f"/feeds/sources/{slug}.{fmt}", fmt, slug)

    async def _feed(self, request: Request, path: str, fmt: str, slug: str | None) -> Response:
        """One page of a published feed (all sources, or the one named by ``slug``)."""
        page = _page_number(request)
        if page is None:
            return _unprocessable("'page' must be a whole number from 1")
        rep = await self.cache.get(
            _feed_key(path, page),
            lambda stamp: self._render_feed(stamp, path, fmt, page, slug),
        )
        return send(request, rep)

    async def home(self, request: Request) -> Response:
        """The public French home page: what is published, newest first, paged."""
        page = _page_number(request)
        if page is None:
            return _unprocessable("'page' must be a whole number from 1")
        rep = await self.cache.get(
            _feed_key("/", page), lambda stamp: self._render_home(stamp, page)
        )
        return send(request, rep)

    async def article(self, request: Request) -> Response:
        draft_id = request.path_params["id"]
        rep = await self.cache.get(
            request.url.path, lambda stamp: self._render_article(stamp, draft_id)
        )
        return send(request, rep)

    def drafts_feed(self, request: Request) -> Response:
        """Pending drafts for reviewers' feed readers; the token is a read API token (a
        write token would sit in the reader's URL, logs and exports). The feed's links
        never carry the token. A reader that can send ``Authorization: Bearer TOKEN``
        fetches the feed at exactly its self link (no SelfDoesntMatchLocation warning)."""
        token = request.query_params.get("token")
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        if token is None and scheme.lower() == "bearer" and bearer.strip():
            token = bearer.strip()
            reviewer = self.auth.token_reviewer(token)  # a header is not kept like a URL
        else:
            reviewer = self.auth.token_reviewer(token, in_url=True)
        if reviewer is None:
            if self.auth.is_write_token(token):
                return PlainTextResponse(
                    "403 Forbidden: this API token has the scope 'write'; a URL may only "
                    "carry a token with the scope 'read' (a line 'name:TOKEN:read' in "
                    "[review] api_tokens_env or api_tokens_file)\n",
                    status_code=403,
                )
            message = (
                "missing ?token= (or Authorization: Bearer)"
                if not token
                else "this token is not valid"
            )
            return PlainTextResponse(
                f"401 Unauthorized: {message} (use a read API token from [review] "
                "api_tokens_env or api_tokens_file)\n",
                status_code=401,
            )
        channel = Channel(
            self.settings.server.base_url,
            "/feeds/drafts.atom",
            f"{self.settings.server.title} — brouillons à relire",
        )
        drafts = self.store.review_queue()
        root = channel.root
        body = atom_feed(
            channel, drafts, entry_link=lambda d: f"{root}/review/drafts/{d.id}", review=True
        )
        return Response(
            body,
            headers={
                "Content-Type": "application/atom+xml; charset=utf-8",
                "Cache-Control": "private, no-store",
            },
        )

    # ------------------------------------------------------------ rendering (threads)

    def _render_feed(
        self, stamp: PublicationStamp, path: str, fmt: str, page: int, slug: str | None
    ) -> Representation:
        size = self.settings.publish.max_entries
        title = self.settings.server.title
        if slug is not None:
            feed_title = self.store.feed_title_by_slug(slug)
            if feed_title is None:
                return self._missing(stamp, f"no source feed called {slug!r}")
            name = self.store.feed_slugs().get(slug, "")
            title = f"{title} — {source_label(name, feed_title)}"
        total = self.store.published_count(feed_slug=slug)
        last_page = max(1, math.ceil(total / size))
        if page > last_page:
            return self._missing(stamp, f"page {page} does not exist: the last is {last_page}")
        drafts = self.store.published(size, feed_slug=slug, offset=(page - 1) * size)
        channel = Channel(
            self.settings.server.base_url,
            path,
            title,
            subtitle="Newsletters anglaises traduites en français, avec leur source",
            hub_url=self.settings.publish.hub_url or None,
            page=page,
            last_page=last_page,
        )
        media_type, render = FORMATS[fmt]
        return represent(
            render(channel, drafts),
            f"{media_type}; charset=utf-8",
            modified=stamp.changed_at,
            max_age=self.max_age,
        )

    def _render_home(self, stamp: PublicationStamp, page: int) -> Representation:
        size = self.settings.publish.home_page_size
        total = self.store.published_count()
        last_page = max(1, math.ceil(total / size))
        if page > last_page:
            return self._missing(stamp, f"page {page} does not exist: the last is {last_page}")
        drafts = self.store.published(size, offset=(page - 1) * size)
        title = self.settings.server.title
        feeds = [
            {
                "type": media_type,
                "title": f"{title} ({label})",
                "label": label,
                "href": f"/feeds/published.{fmt}",
                "main": True,
            }
            for fmt, media_type, label in HOME_FEEDS
        ]
        # One Atom feed per source that has something published, for readers who follow
        # one newsletter only.
        for slug, name in sorted(self.store.feed_slugs().items(), key=lambda item: item[1]):
            if self.store.published_count(feed_slug=slug):
                source_title = self.store.feed_title_by_slug(slug) or name
                feeds.append(
                    {
                        "type": "application/atom+xml",
                        "title": f"{title} — {source_title}",
                        "label": source_title,
                        "href": f"/feeds/sources/{slug}.atom",
                        "main": False,
                    }
                )
        html = self.templates.get_template("home.html").render(
            site_title=title,
            articles=[(draft, summary_text(draft)) for draft in drafts],
            page=page,
            last_page=last_page,
            feeds=feeds,
            page_url=lambda number: "/" if number == 1 else f"/?page={number}",
            french_date=french_date,
        )
        return represent(
            html.encode("utf-8"),
            "text/html; charset=utf-8",
            modified=stamp.changed_at,
            max_age=self.max_age,
            extra={"Content-Security-Policy": ARTICLE_POLICY, "Referrer-Policy": "no-referrer"},
        )

    def _render_article(self, stamp: PublicationStamp, draft_id: int) -> Representation:
        try:
            draft = self.store.published_draft(draft_id) if is_row_id(draft_id) else None
        except NotFoundError:
            draft = None
        if draft is not None and not draft.published and draft.withdrawn_at is not None:
            return self._withdrawn(stamp, draft)
        if draft is None or not draft.published:
            return self._missing(stamp, "no published article with this id")
        page = self.templates.get_template("article.html").render(
            draft=draft,
            body=sanitize(draft.body_html),
            credit=credit_html(draft),
            site_title=self.settings.server.title,
        )
        return represent(
            page.encode("utf-8"),
            "text/html; charset=utf-8",
            modified=stamp.changed_at,
            max_age=self.max_age,
            extra={"Content-Security-Policy": ARTICLE_POLICY, "Referrer-Policy": "no-referrer"},
        )

    def _withdrawn(self, stamp: PublicationStamp, draft: DraftView) -> Representation:
        """410 Gone: the article was published here, then withdrawn by an editor."""
        page = self.templates.get_template("withdrawn.html").render(
            draft=draft, site_title=self.settings.server.title
        )
        return represent(
            page.encode("utf-8"),
            "text/html; charset=utf-8",
            modified=stamp.changed_at,
            max_age=NOT_FOUND_MAX_AGE,
            status=410,
            extra={"Content-Security-Policy": ARTICLE_POLICY, "Referrer-Policy": "no-referrer"},
        )

    def _missing(self, stamp: PublicationStamp, message: str) -> Representation:
        return represent(
            f"404 Not Found: {message}\n".encode(),
            "text/plain; charset=utf-8",
            modified=stamp.changed_at,
            max_age=NOT_FOUND_MAX_AGE,
            status=404,
        )


def _feed_key(path: str, page: int) -> str:
    """The one key a page of a feed is cached under, whatever else the query holds; the
    fast path finds it when a request asks for it in exactly this form."""
    return path if page == 1 else f"{path}?page={page}"


def _page_number(request: Request) -> int | None:
    raw = request.query_params.get("page", "1")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
        return None
    return int(raw)


def _not_found(message: str) -> Response:
    return PlainTextResponse(f"404 Not Found: {message}\n", status_code=404)


def _unprocessable(message: str) -> Response:
    return PlainTextResponse(f"422 Unprocessable Content: {message}\n", status_code=422)
