"""The public side: published feeds and article pages, served from rendered bytes.

Nothing is queried or rendered per request. When the publication changes, every public
resource (the feeds and their pages, the per-source feeds, the home page and its pages, the
article pages, the withdrawn articles' 410 pages) is rendered once, written to the
publication directory (``publishing.directory``) for any web server to serve, and kept here
to answer from. Whether it changed is one cheap query (``Store.publication_stamp``) at most
every ``[publish] cache_ttl`` seconds, since other processes may write to the same
database; a review action in this process invalidates at once.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio.to_thread
from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from aggregator.config import Settings
from aggregator.extraction.extract import sanitize
from aggregator.languages import article_path, language_prefix
from aggregator.publishing.credit import credit_html, public_date, source_label, subtitle
from aggregator.publishing.directory import Page, PublicationDirectory
from aggregator.publishing.publish import (
    FORMATS,
    Channel,
    alternate_paths,
    atom_feed,
    summary_text,
)
from aggregator.publishing.representation import Representation, answer_to
from aggregator.store import Store
from aggregator.store.snapshots import DraftView, PublicationStamp
from aggregator.web.auth import Auth

# The published feeds as the home page announces them (autodiscovery and its footer).
HOME_FEEDS = (
    ("atom", "application/atom+xml", "Atom"),
    ("rss", "application/rss+xml", "RSS"),
    ("json", "application/feed+json", "JSON Feed"),
)
NOT_FOUND_MAX_AGE = 60
HTML = "text/html; charset=utf-8"
# An article page is the public republished article: its images stay where the original put
# them (copying them would be republishing them too), but the page's Referrer-Policy is
# no-referrer, so upstream hosts do not learn which page a reader is on. The review desk
# never loads them from upstream: see ``images``.
ARTICLE_POLICY = (
    "default-src 'none'; img-src https: http:; style-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {"Content-Security-Policy": ARTICLE_POLICY, "Referrer-Policy": "no-referrer"}


def send(request: Request, rep: Representation) -> Response:
    """The representation, or 304 when the client's copy is current (the routed path: the
    same answer ``AggregatorApp`` gives before routing)."""
    answer = answer_to(rep, request.headers.raw)
    response = Response(answer.body, status_code=answer.status)
    response.raw_headers = list(answer.headers)
    return response


class PublicationCache:
    """The current publication by request key, rendered again whenever the stamp changes."""

    def __init__(
        self,
        store: Store,
        ttl: float,
        render: Callable[[PublicationStamp], Iterator[Page]],
        directory: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.render = render
        self.directory = PublicationDirectory(directory)
        self.clock = clock
        self.stamp: PublicationStamp | None = None
        self.checked_at = -math.inf
        self.invalidations = 0
        self.items: dict[str, Representation] = {}
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Something was just written here: ask the database on the next request."""
        self.invalidations += 1
        self.checked_at = -math.inf

    def check(self) -> bool:
        """Ask the database whether the publication changed; if it did, render and write
        the new one (one at a time) and serve it. True if it changed.

        The cache counts as checked only once the new publication is served, and not at
        all if an invalidation came meanwhile: a request after an approval is never
        answered the publication from before it, however long the rendering takes."""
        with self._lock:
            started, invalidations = self.clock(), self.invalidations
            stamp = self.store.publication_stamp()
            changed = stamp != self.stamp
            if changed:
                self.directory.publish(self.render(stamp), stamp.changed_at, self._serve)
                self.stamp = stamp
            if self.invalidations == invalidations:
                self.checked_at = started
        return changed

    def _serve(self, items: dict[str, Representation]) -> None:
        self.items = items  # one assignment: a request sees the old publication or the new

    async def _revalidate(self) -> None:
        now = self.clock()
        if now - self.checked_at < self.ttl and self.stamp is not None:
            return
        # Requests that arrive during the check are served what is published: at most one
        # check runs at a time, and it is the only wait.
        self.checked_at = now
        await anyio.to_thread.run_sync(self.check)

    def fresh(self, key: str) -> Representation | None:
        """The published representation if the cache is within its TTL; never waits."""
        if self.clock() - self.checked_at >= self.ttl:
            return None
        return self.items.get(key)

    async def get(self, key: str) -> Representation | None:
        await self._revalidate()
        if self.stamp is None:  # the first publication is being rendered by another request
            await anyio.to_thread.run_sync(self.check)
        return self.items.get(key)

    def last_page(self, path: str) -> int:
        """The last page of a paged resource of the current publication."""
        page = 1
        while f"{path}?page={page + 1}" in self.items:
            page += 1
        return page


class PublicationRenderer:
    """Every public resource of one publication, as pages to write and serve.

    Each target language has its feeds, home page and article pages under ``/{language}/``;
    the main one ([translation] target_language) also at the root paths, which existing
    subscribers follow, and its articles only there (``/articles/{id}``)."""

    def __init__(
        self, settings: Settings, store: Store, templates: Callable[[str], Environment]
    ) -> None:
        self.settings = settings
        self.store = store
        self.templates = templates  # by language
        self.max_age = int(settings.publish.max_age)
        self.main = settings.translation.target_language

    def __call__(self, stamp: PublicationStamp) -> Iterator[Page]:
        slugs = self.store.feed_slugs()
        languages = list(
            dict.fromkeys((*self.settings.published_languages, *self.store.published_languages()))
        )
        translations = self.store.translations_published()
        several = len(languages) > 1
        for language in languages:
            # Where this language's feeds and home page live: the main one at the root (and
            # under its code beside others), the others under their code.
            prefixes = [f"/{language}"] if several or language != self.main else []
            if language == self.main:
                prefixes.insert(0, "")
            for fmt in FORMATS:
                yield from self._feed(prefixes, fmt, None, slugs, language, translations)
                for slug in slugs:
                    yield from self._feed(prefixes, fmt, slug, slugs, language, translations)
            yield from self._home(slugs, language, prefixes, languages)
        total = self.store.published_count()
        for draft in self.store.published(total):
            yield self._article(draft, translations)
        for draft in self.store.list_drafts():
            if not draft.published and draft.withdrawn_at is not None:
                yield self._withdrawn(draft)

    def _feed(
        self,
        prefixes: list[str],
        fmt: str,
        slug: str | None,
        slugs: dict[str, str],
        language: str,
        translations: dict[int, dict[str, int]],
    ) -> Iterator[Page]:
        """Every page of a published feed in ``language`` (all sources, or ``slug``'s),
        under each of ``prefixes``: read once, each copy with its own self link."""
        size = self.settings.publish.max_entries
        title = self.settings.server.title
        name = f"published.{fmt}"
        if slug is not None:
            feed_title = self.store.feed_title_by_slug(slug) or ""
            title = f"{title} — {source_label(slugs[slug], feed_title)}"
            name = f"sources/{slug}.{fmt}"
        count = self.store.published_count(feed_slug=slug, language=language)
        last_page = max(1, math.ceil(count / size))
        media_type, render = FORMATS[fmt]
        for page in range(1, last_page + 1):
            drafts = self.store.published(
                size, feed_slug=slug, offset=(page - 1) * size, language=language
            )
            for prefix in prefixes:
                path = f"{prefix}/feeds/{name}"
                channel = Channel(
                    self.settings.server.base_url,
                    path,
                    title,
                    language=language,
                    subtitle=subtitle(language),
                    hub_url=self.settings.publish.hub_url or None,
                    page=page,
                    last_page=last_page,
                    main_language=self.main,
                    translations=translations,
                )
                yield Page(
                    page_key(path, page),
                    render(channel, drafts),
                    f"{media_type}; charset=utf-8",
                    self.max_age,
                )

    def _home(
        self, slugs: dict[str, str], language: str, prefixes: list[str], languages: list[str]
    ) -> Iterator[Page]:
        """The public home page of one language, under each of ``prefixes``: what is
        published, newest first, paged."""
        size = self.settings.publish.home_page_size
        last_page = max(1, math.ceil(self.store.published_count(language=language) / size))
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
        for slug, name in sorted(slugs.items(), key=lambda item: item[1]):
            if self.store.published_count(feed_slug=slug, language=language):
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
        others = [
            (other, f"{language_prefix(other, self.main)}/")
            for other in languages
            if other != language
        ]
        template = self.templates(language).get_template("home.html")
        for page in range(1, last_page + 1):
            drafts = self.store.published(size, offset=(page - 1) * size, language=language)
            articles = [(draft, summary_text(draft)) for draft in drafts]
            for prefix in prefixes:
                base = f"{prefix}/"
                html = template.render(
                    site_title=title,
                    articles=articles,
                    page=page,
                    last_page=last_page,
                    feeds=[{**feed, "href": f"{prefix}{feed['href']}"} for feed in feeds],
                    page_url=lambda number, base=base: (
                        base if number == 1 else f"{base}?page={number}"
                    ),
                    public_date=lambda moment: public_date(moment, language),
                    language=language,
                    prefix=language_prefix(language, self.main),
                    other_languages=others,
                    tagline=subtitle(language),
                )
                yield Page(
                    page_key(base, page),
                    html.encode("utf-8"),
                    HTML,
                    self.max_age,
                    extra=PAGE_HEADERS,
                )

    def _article(self, draft: DraftView, translations: dict[int, dict[str, int]]) -> Page:
        return self._article_page(
            draft,
            "article.html",
            self.max_age,
            body=sanitize(draft.body_html),
            credit=credit_html(draft),
            alternates=alternate_paths(draft, translations, self.main),
        )

    def _withdrawn(self, draft: DraftView) -> Page:
        """410 Gone: the article was published here, then withdrawn by an editor."""
        return self._article_page(draft, "withdrawn.html", NOT_FOUND_MAX_AGE, status=410)

    def _article_page(
        self, draft: DraftView, template: str, max_age: int, status: int = 200, **more: Any
    ) -> Page:
        """The page at a draft's address (under its language's prefix), in its language."""
        language = draft.target_language
        html = (
            self.templates(language)
            .get_template(template)
            .render(
                draft=draft,
                site_title=self.settings.server.title,
                language=language,
                prefix=language_prefix(language, self.main),
                **more,
            )
        )
        return Page(
            article_path(draft.id, language, self.main),
            html.encode("utf-8"),
            HTML,
            max_age,
            status=status,
            extra=PAGE_HEADERS,
        )


class PublicViews:
    """GET-only views of what is published; all of them answer from the cache."""

    def __init__(self, settings: Settings, store: Store, cache: PublicationCache, auth: Auth):
        self.settings = settings
        self.store = store
        self.cache = cache
        self.auth = auth

    # ------------------------------------------------------------ views

    async def healthz(self, request: Request) -> Response:
        if await anyio.to_thread.run_sync(self.store.ping):
            return PlainTextResponse("ok\n")
        return PlainTextResponse("database unreachable\n", status_code=503)

    async def published(self, request: Request) -> Response:
        fmt, prefix = request.path_params["format"], _prefix(request)
        if fmt not in FORMATS:
            return _not_found("no such feed: the published feed is .atom, .rss or .json")
        return await self._paged(request, f"{prefix}/feeds/published.{fmt}", "such feed")

    async def source(self, request: Request) -> Response:
        slug, _, fmt = request.path_params["name"].rpartition(".")
        if fmt not in FORMATS or not slug:
            return _not_found("no such feed: a source's feed is /feeds/sources/SLUG.atom")
        return await self._paged(
            request,
            f"{_prefix(request)}/feeds/sources/{slug}.{fmt}",
            f"source feed called {slug!r}",
        )

    async def home(self, request: Request) -> Response:
        """The public home page (of a language): what is published, newest first, paged."""
        return await self._paged(request, f"{_prefix(request)}/", "such page")

    async def _paged(self, request: Request, path: str, what: str = "") -> Response:
        """One page of a paged resource: a feed (all sources, or one) or the home page."""
        page = _page_number(request)
        if page is None:
            return _unprocessable("'page' must be a whole number from 1")
        rep = await self.cache.get(page_key(path, page))
        if rep is not None:
            return send(request, rep)
        if what and path not in self.cache.items:
            return _not_found(f"no {what}")
        last = self.cache.last_page(path)
        return _not_found(f"page {page} does not exist: the last is {last}")

    async def article(self, request: Request) -> Response:
        rep = await self.cache.get(request.url.path)
        if rep is None:
            return _not_found("no published article with this id")
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


def _prefix(request: Request) -> str:
    """``/es`` for a request under a language's paths (``/es/``, ``/es/feeds/…``), "" for
    the root ones."""
    path = request.url.path
    return path.partition("/feeds/")[0] if "/feeds/" in path else path.rstrip("/")


def page_key(path: str, page: int) -> str:
    """The one key a page of a paged resource is published under, whatever else the query
    holds; ``AggregatorApp`` finds it before routing when a request asks in exactly this form."""
    return path if page == 1 else f"{path}?page={page}"


def _page_number(request: Request) -> int | None:
    raw = request.query_params.get("page", "1")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
        return None
    return int(raw)


def _not_found(message: str) -> Response:
    return PlainTextResponse(
        f"404 Not Found: {message}\n",
        status_code=404,
        headers={"Cache-Control": f"public, max-age={NOT_FOUND_MAX_AGE}"},
    )


def _unprocessable(message: str) -> Response:
    return PlainTextResponse(f"422 Unprocessable Content: {message}\n", status_code=422)
