"""The feed stage: claim due feeds, fetch, parse, store entries, schedule the next check.

refresh_feed is the whole flow for one feed, readable top to bottom; the scheduling rules it
applies are the pure functions of ``decide``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from aggregator.errors import (
    AggregatorError,
    FetchError,
    NotAFeedError,
    ParseError,
    UnexpectedError,
)
from aggregator.full_text import feed_credentials, reread_changed_pages
from aggregator.models import FeedStatus
from aggregator.parsed import ParsedFeed
from aggregator.pipeline import Report, Services
from aggregator.polling import decide
from aggregator.polling.discover import feed_links
from aggregator.polling.fetch import Credentials, FetchResult, origin_of
from aggregator.polling.parse_worker import parse_feed  # in a child process, with a deadline
from aggregator.store import FeedWork, Store, UnchangedPoll

log = logging.getLogger("aggregator.polling.refresh")

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.5"
)
MAX_DISCOVERED_CANDIDATES = 3
# How a fetched document becomes entries: ``parse_worker.parse_feed``'s signature. Tests pass
# their own to see what each poll parsed, or to make the parser fail.
FeedParser = Callable[..., ParsedFeed]


def poll_feeds(
    services: Services,
    *,
    force: bool = False,
    only: Iterable[str] = (),
    report: Report | None = None,
    on_progress: Callable[[], None] | None = None,
    parse: FeedParser = parse_feed,
) -> Report:
    """Refresh every due feed (every feed with force), a few at a time."""
    report = report or Report()
    feeds = services.store.claim_due_feeds(
        services.clock(),
        timedelta(seconds=services.settings.schedule.lease),
        only=list(only),
        force=force,
    )

    unchanged = UnchangedWriter(services.store)

    def one(feed: FeedWork) -> None:
        try:
            refresh_feed(services, feed, report, unchanged=unchanged, parse=parse)
        finally:
            if on_progress:
                on_progress()

    try:
        with ThreadPoolExecutor(max_workers=max(1, services.settings.fetch.concurrency)) as pool:
            list(pool.map(one, interleave_hosts(feeds)))
    finally:
        unchanged.flush()
    return report


class UnchangedWriter:
    """Polls that found nothing new, written many to a transaction: they are most polls,
    and one commit each is what would cost most. A poll not yet written when the process
    dies is only done again once its claim expires."""

    def __init__(self, store: Store, batch: int = 64) -> None:
        self.store, self.batch = store, batch
        self._pending: list[UnchangedPoll] = []
        self._lock = threading.Lock()

    def add(self, poll: UnchangedPoll) -> None:
        with self._lock:
            self._pending.append(poll)
            if len(self._pending) < self.batch:
                return
            ready, self._pending = self._pending, []
        self.store.record_feeds_unchanged(ready)

    def flush(self) -> None:
        with self._lock:
            ready, self._pending = self._pending, []
        self.store.record_feeds_unchanged(ready)


def interleave_hosts(feeds: Sequence[FeedWork]) -> list[FeedWork]:
    """Round-robin over hosts, so that workers waiting for one busy host's turn do not leave
    the other hosts idle."""
    by_host: dict[str, list[FeedWork]] = defaultdict(list)
    for feed in feeds:
        by_host[(urlsplit(feed.url).hostname or "").lower()].append(feed)
    queues = list(by_host.values())
    ordered: list[FeedWork] = []
    for depth in range(max((len(q) for q in queues), default=0)):
        ordered.extend(q[depth] for q in queues if depth < len(q))
    return ordered


def refresh_feed(
    services: Services,
    feed: FeedWork,
    report: Report,
    *,
    unchanged: UnchangedWriter | None = None,
    parse: FeedParser = parse_feed,
) -> None:
    """Fetch one feed, parse it and store its entries; a failure is stored, never raised."""
    store, now, settings = services.store, services.clock(), services.settings
    interval = timedelta(seconds=feed.interval_seconds)
    # Trusted: exactly the origin written in config.toml; the rest of the feed's URLs are
    # guarded unless the feed (or [fetch]) allows private networks.
    config_url = feed.config_url or feed.url
    trusted_origin = origin_of(config_url)
    allow_private = settings.private_networks_allowed(config_url)
    try:
        # The feed's own headers go to the host written in config.toml, and nowhere else.
        credentials = feed_credentials(settings, config_url)
        result = services.fetcher.get(
            feed.url,
            trusted=True,
            trusted_origin=trusted_origin,
            allow_private=allow_private,
            etag=feed.etag,
            last_modified=feed.last_modified,
            accept=FEED_ACCEPT,
            credentials=credentials,
        )
        body_hash = None if result.not_modified else hashlib.sha256(result.body).hexdigest()
        if result.not_modified or body_hash == feed.body_hash:
            poll = UnchangedPoll(
                feed.id,
                now,
                _next_check(feed, result, now, interval, feed.ttl_seconds),
                result.etag,
                result.last_modified,
            )
            if unchanged is None:
                store.record_feeds_unchanged([poll])
            else:
                unchanged.add(poll)
            report.feed("unchanged")
            return
        new_url = result.permanent_url
        try:
            parsed = parse(
                result.body,
                result.url,
                result.headers.get("content-type"),
                known_items=frozenset(feed.item_fingerprints),
                timeout=settings.fetch.parse_timeout,
            )
        except NotAFeedError:
            result, parsed = discover_feed(
                services,
                result,
                trusted_origin,
                allow_private,
                parse=parse,
                credentials=credentials,
            )
            body_hash = hashlib.sha256(result.body).hexdigest()
            new_url = result.permanent_url or result.url
            log.info("feed %s: the page links to its feed %s, now followed", feed.name, new_url)
        outcome = store.record_feed_success(
            feed.id,
            now=now,
            next_check_at=_next_check(feed, result, now, interval, parsed.ttl_seconds),
            # What spares the next poll work (a 304, an unchanged body, items already
            # known), and where the feed has moved.
            etag=result.etag,
            last_modified=result.last_modified,
            body_hash=body_hash,
            item_fingerprints=parsed.item_fingerprints,
            new_url=new_url,
            # What the document says.
            entries=parsed.entries,
            title=parsed.title,
            site_url=parsed.site_url,
            ttl_seconds=parsed.ttl_seconds,
            warning=parsed.warning,
            max_updates_per_day=settings.schedule.max_updates_per_entry_per_day,
        )
        if outcome.updated_entries:
            reread_changed_pages(
                services, feed.id, now, feed_url=config_url, allow_private=allow_private
            )
        if parsed.warning:
            log.warning("feed %s: %s", feed.name, parsed.warning)
        report.feed("updated")
        report.entry("new", outcome.new_entries)
        report.entry("updated", outcome.updated_entries)
        log.info(
            "feed %s: %d new, %d updated entries",
            feed.name, outcome.new_entries, outcome.updated_entries,
        )  # fmt: skip
    except AggregatorError as exc:
        record_failure(services, feed, exc, now, report)
    except Exception as exc:
        # A bug or a library's surprise is this feed's error, not the end of the poll.
        log.error("feed %s failed unexpectedly", feed.name, exc_info=True)
        unexpected = UnexpectedError(f"unexpected error ({type(exc).__name__}: {exc})")
        record_failure(services, feed, unexpected, now, report)


def _next_check(
    feed: FeedWork,
    result: FetchResult,
    now: datetime,
    interval: timedelta,
    ttl_seconds: float | None,
) -> datetime:
    return decide.next_check_after_success(
        now,
        feed_key=feed.config_url or feed.url,
        interval=interval,
        ttl=timedelta(seconds=ttl_seconds) if ttl_seconds else None,
        cache_control=result.headers.get("cache-control"),
        expires=result.headers.get("expires"),
        # A new feed has no phase yet: its first check only says "as soon as possible".
        scheduled_at=None if feed.status == FeedStatus.NEW else feed.next_check_at,
    )


def discover_feed(
    services: Services,
    page: FetchResult,
    trusted_origin: str | None,
    allow_private: bool | None = None,
    *,
    parse: FeedParser = parse_feed,
    credentials: Credentials | None = None,
) -> tuple[FetchResult, ParsedFeed]:
    """The feed an HTML page announces with <link rel="alternate">, fetched and parsed.

    A link found in a page is content, not configuration: it is trusted only on the origin
    written in config.toml, like a redirect, and the feed's ``credentials`` go only to
    their own host.
    """
    candidates = feed_links(page.body, page.url)[:MAX_DISCOVERED_CANDIDATES]
    if not candidates:
        raise ParseError("not a feed: the server sent an HTML page, and it links to no feed")
    problems = []
    for url in candidates:
        try:
            result = services.fetcher.get(
                url,
                trusted_origin=trusted_origin,
                allow_private=allow_private,
                accept=FEED_ACCEPT,
                credentials=credentials,
            )
            parsed = parse(
                result.body,
                result.url,
                result.headers.get("content-type"),
                timeout=services.settings.fetch.parse_timeout,
            )
        except AggregatorError as exc:
            problems.append(f"{url}: {exc}")
            continue
        return result, parsed
    raise ParseError(
        "not a feed: the server sent an HTML page whose feed links gave no feed ("
        + "; ".join(problems)
        + ")"
    )


def record_failure(
    services: Services, feed: FeedWork, exc: AggregatorError, now: datetime, report: Report
) -> None:
    """Store a failed poll with its reason and the next check, backed off; 410 pauses the
    feed: it is looked at only once a day, in case its publisher brings it back."""
    gone = isinstance(exc, FetchError) and exc.gone
    message = str(exc)
    next_check: datetime | None
    if gone:
        message += (
            "; polling is paused, with one check a day (change the URL in config.toml, or"
            f" `aggregator poll --feed {feed.name!r}` to try it again now)"
        )
        next_check = now + decide.MAX_DELAY
    else:
        retry_after = exc.retry_after if isinstance(exc, FetchError) else None
        next_check = decide.next_check_after_error(
            now,
            interval=timedelta(seconds=feed.interval_seconds),
            error_count=feed.error_count + 1,
            retry_after=timedelta(seconds=retry_after) if retry_after is not None else None,
        )
    services.store.record_feed_error(feed.id, message, now=now, gone=gone, next_check_at=next_check)
    report.feed("failed", f"{feed.name}: {message}")
    log.warning("feed %s failed: %s", feed.name, message)
