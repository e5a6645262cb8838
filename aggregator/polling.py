"""The feed stage: claim due feeds, fetch, parse, store entries, schedule the next check.

refresh_feed is the whole flow for one feed, readable top to bottom; the scheduling rules it
applies are the pure functions of ``decide``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from aggregator import decide
from aggregator.errors import AggregatorError, FetchError
from aggregator.parse import parse_feed
from aggregator.pipeline import Report, Services
from aggregator.store import FeedWork

log = logging.getLogger("aggregator.polling")

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.5"
)
FEED_LEASE = timedelta(minutes=5)


def poll_feeds(
    services: Services,
    *,
    force: bool = False,
    only: Iterable[str] = (),
    report: Report | None = None,
    on_progress: Callable[[], None] | None = None,
) -> Report:
    """Refresh every due feed (every feed with force), a few at a time."""
    report = report or Report()
    feeds = services.store.claim_due_feeds(
        services.clock(), FEED_LEASE, only=list(only), force=force
    )

    def one(feed: FeedWork) -> None:
        try:
            refresh_feed(services, feed, report)
        finally:
            if on_progress:
                on_progress()

    with ThreadPoolExecutor(max_workers=max(1, services.settings.fetch.concurrency)) as pool:
        list(pool.map(one, feeds))
    return report


def refresh_feed(services: Services, feed: FeedWork, report: Report) -> None:
    """Fetch one feed, parse it and store its entries; a failure is stored, never raised."""
    store, now = services.store, services.clock()
    interval = timedelta(seconds=feed.interval_seconds)
    try:
        result = services.fetcher.get(
            feed.url,
            trusted=True,
            etag=feed.etag,
            last_modified=feed.last_modified,
            accept=FEED_ACCEPT,
        )
        next_check = decide.next_check_after_success(
            now,
            feed_key=feed.url,
            interval=interval,
            cache_control=result.headers.get("cache-control"),
            expires=result.headers.get("expires"),
        )
        body_hash = hashlib.sha256(result.body).hexdigest() if not result.not_modified else None
        if result.not_modified or body_hash == feed.body_hash:
            store.record_feed_unchanged(
                feed.id, now=now, next_check_at=next_check,
                etag=result.etag, last_modified=result.last_modified,
            )  # fmt: skip
            report.feed("unchanged")
            return
        parsed = parse_feed(result.body, result.url, result.headers.get("content-type"))
        if parsed.ttl_seconds:
            next_check = max(
                next_check,
                decide.next_check_after_success(
                    now, feed_key=feed.url, interval=interval,
                    ttl=timedelta(seconds=parsed.ttl_seconds),
                ),
            )  # fmt: skip
        outcome = store.record_feed_success(
            feed.id,
            now=now,
            next_check_at=next_check,
            entries=parsed.entries,
            title=parsed.title,
            site_url=parsed.site_url,
            etag=result.etag,
            last_modified=result.last_modified,
            body_hash=body_hash,
            ttl_seconds=parsed.ttl_seconds,
            new_url=result.permanent_url,
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
        retry_after = getattr(exc, "retry_after", None)
        gone = isinstance(exc, FetchError) and exc.gone
        message = str(exc) + (" — polling is paused until the URL changes" if gone else "")
        store.record_feed_error(
            feed.id,
            message,
            now=now,
            gone=gone,
            next_check_at=decide.next_check_after_error(
                now,
                interval=interval,
                error_count=feed.error_count + 1,
                retry_after=timedelta(seconds=retry_after) if retry_after is not None else None,
            ),
        )
        report.feed("failed", f"{feed.name}: {message}")
        log.warning("feed %s failed: %s", feed.name, message)
