"""GET /metrics: Prometheus text, gathered from the database at scrape time.

Nothing is counted in memory: the web process that answers the scrape reads what every
worker wrote, so one scrape target tells about the whole installation, and a restart loses
no counter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from aggregator import __version__
from aggregator.clock import utc_now
from aggregator.errors import AggregatorError
from aggregator.models import DraftStatus, EntryState, FeedStatus
from aggregator.store import Store
from aggregator.store.stats import Overview

log = logging.getLogger("aggregator.web.metrics")


class DatabaseCollector(Collector):
    """Every ``aggregator_*`` family, from one read of the database."""

    def __init__(self, store: Store, clock: Callable[[], datetime] = utc_now) -> None:
        self.store = store
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "aggregator_build_info", "Version of the process answering", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info
        up = GaugeMetricFamily(
            "aggregator_database_up", "1 if the database answered this scrape, else 0"
        )
        try:
            overview = self.store.overview(self.clock())
        except AggregatorError as exc:
            log.error("metrics: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _families(overview)


def _families(o: Overview) -> Iterator[Metric]:
    feeds = GaugeMetricFamily("aggregator_feeds", "Feeds by status", labels=["status"])
    for status in FeedStatus:
        if status != FeedStatus.REMOVED:
            feeds.add_metric([status.value], sum(1 for f in o.feeds if f.status == status.value))
    yield feeds

    polls = CounterMetricFamily("aggregator_polls", "Polls of each feed", labels=["feed"])
    errors = CounterMetricFamily(
        "aggregator_poll_errors", "Polls of each feed that failed", labels=["feed"]
    )
    consecutive = GaugeMetricFamily(
        "aggregator_feed_consecutive_errors",
        "Failed polls in a row of each feed (0 once a poll succeeds)",
        labels=["feed"],
    )
    for feed in o.feeds:
        polls.add_metric([feed.slug], feed.polls)
        errors.add_metric([feed.slug], feed.poll_errors)
        consecutive.add_metric([feed.slug], feed.consecutive_errors)
    yield polls
    yield errors
    yield consecutive

    entries = GaugeMetricFamily("aggregator_entries", "Entries by state", labels=["state"])
    for state in EntryState:
        entries.add_metric([state.value], o.entries.get(state.value, 0))
    yield entries
    yield GaugeMetricFamily(
        "aggregator_entries_failing",
        "Entries waiting for a stage whose last attempt failed (retried with backoff)",
        value=o.failing_entries,
    )

    drafts = GaugeMetricFamily("aggregator_drafts", "Drafts by status", labels=["status"])
    for draft_status in DraftStatus:
        drafts.add_metric([draft_status.value], o.drafts.get(draft_status.value, 0))
    yield drafts

    requests = CounterMetricFamily(
        "aggregator_translation_requests", "Requests sent to each engine", labels=["engine"]
    )
    characters = CounterMetricFamily(
        "aggregator_translation_characters", "Characters sent to each engine", labels=["engine"]
    )
    for engine, totals in o.engines.items():
        requests.add_metric([engine], totals.requests)
        characters.add_metric([engine], totals.characters)
    yield requests
    yield characters
    today = GaugeMetricFamily(
        "aggregator_translation_characters_today",
        "Characters sent to each engine this UTC day (what a daily budget counts)",
        labels=["engine"],
    )
    for engine, totals in o.engines_today.items():
        today.add_metric([engine], totals.characters)
    yield today

    depth = GaugeMetricFamily(
        "aggregator_queue_depth",
        "Work due now and not taken by any process: feeds to poll, entries per stage",
        labels=["queue"],
    )
    overdue = GaugeMetricFamily(
        "aggregator_queue_overdue_seconds",
        "How long the most overdue item of each queue has been due",
        labels=["queue"],
    )
    for queue, count in o.due.items():
        depth.add_metric([queue], count)
        overdue.add_metric([queue], o.overdue_seconds.get(queue, 0.0))
    yield depth
    yield overdue
    oldest = GaugeMetricFamily(
        "aggregator_oldest_pending_seconds",
        "Age of the oldest entry still waiting for each stage (0 when none waits)",
        labels=["queue"],
    )
    for queue, seconds in o.oldest_waiting_seconds.items():
        oldest.add_metric([queue], seconds)
    yield oldest

    claims = GaugeMetricFamily(
        "aggregator_claims",
        "Entries taken by a process: held (lease running) or expired (holder gone)",
        labels=["state"],
    )
    claims.add_metric(["held"], o.claims_held)
    claims.add_metric(["expired"], o.claims_expired)
    yield claims


def registry_for(store: Store, clock: Callable[[], datetime] = utc_now) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(store, clock))
    return registry


def metrics_view(store: Store) -> Callable[[Request], Response]:
    """The /metrics endpoint (synchronous: Starlette runs it in a thread, off the loop)."""
    registry = registry_for(store)

    def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics
