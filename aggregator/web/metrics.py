"""GET /metrics: Prometheus text, gathered from the database at scrape time.

Nothing is counted in memory: the web process that answers the scrape reads what every
worker wrote, so one scrape target tells about the whole installation, and a restart loses
no counter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
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


Samples = Callable[[Overview], Iterable[tuple[str, float]]]
_Kind = type[GaugeMetricFamily | CounterMetricFamily]
_G, _C = GaugeMetricFamily, CounterMetricFamily
_SHOWN_FEED_STATUSES = [s.value for s in FeedStatus if s != FeedStatus.REMOVED]

# Each family with one label: (kind, name, help, label, its samples from the overview).
# fmt: off
_LABELLED: tuple[tuple[_Kind, str, str, str, Samples], ...] = (
    (_G, "aggregator_feeds", "Feeds by status", "status",
     lambda o: ((s, sum(1 for f in o.feeds if f.status == s)) for s in _SHOWN_FEED_STATUSES)),
    (_C, "aggregator_polls", "Polls of each feed", "feed",
     lambda o: ((f.slug, f.polls) for f in o.feeds)),
    (_C, "aggregator_poll_errors", "Polls of each feed that failed", "feed",
     lambda o: ((f.slug, f.poll_errors) for f in o.feeds)),
    (_G, "aggregator_feed_consecutive_errors",
     "Failed polls in a row of each feed (0 once a poll succeeds)", "feed",
     lambda o: ((f.slug, f.consecutive_errors) for f in o.feeds)),
    (_G, "aggregator_entries", "Entries by state", "state",
     lambda o: ((s.value, o.entries.get(s.value, 0)) for s in EntryState)),
    (_G, "aggregator_drafts", "Drafts by status", "status",
     lambda o: ((s.value, o.drafts.get(s.value, 0)) for s in DraftStatus)),
    (_C, "aggregator_translation_requests", "Requests sent to each engine", "engine",
     lambda o: ((e, t.requests) for e, t in o.engines.items())),
    (_C, "aggregator_translation_characters", "Characters sent to each engine", "engine",
     lambda o: ((e, t.characters) for e, t in o.engines.items())),
    (_G, "aggregator_translation_characters_today",
     "Characters sent to each engine this UTC day (what a daily budget counts)", "engine",
     lambda o: ((e, t.characters) for e, t in o.engines_today.items())),
    (_G, "aggregator_llm_tokens_today",
     "Tokens (prompt and completion) each LLM engine used this UTC day", "engine",
     lambda o: ((e, s.tokens) for e, s in o.spend_today.items())),
    (_G, "aggregator_llm_cost_today",
     "What each LLM engine cost this UTC day, at translation.llm's prices", "engine",
     lambda o: ((e, s.cost) for e, s in o.spend_today.items())),
    (_G, "aggregator_llm_feed_tokens_today",
     "Tokens (prompt and completion) of each feed's drafts translated this UTC day by an LLM",
     "feed", lambda o: ((f, s.tokens) for f, s in o.feed_spend_today.items())),
    (_G, "aggregator_llm_feed_cost_today",
     "What each feed's drafts translated this UTC day cost, at translation.llm's prices",
     "feed", lambda o: ((f, s.cost) for f, s in o.feed_spend_today.items())),
    (_G, "aggregator_queue_depth",
     "Work due now and not taken by any process: feeds to poll, entries per stage", "queue",
     lambda o: o.due.items()),
    (_G, "aggregator_queue_overdue_seconds",
     "How long the most overdue item of each queue has been due", "queue",
     lambda o: ((q, o.overdue_seconds.get(q, 0.0)) for q in o.due)),
    (_G, "aggregator_oldest_pending_seconds",
     "Age of the oldest entry still waiting for each stage (0 when none waits)", "queue",
     lambda o: o.oldest_waiting_seconds.items()),
    (_G, "aggregator_claims",
     "Entries taken by a process: held (lease running) or expired (holder gone)", "state",
     lambda o: [("held", o.claims_held), ("expired", o.claims_expired)]),
)
# fmt: on


def _families(o: Overview) -> Iterator[Metric]:
    for kind, name, documentation, label, samples in _LABELLED:
        family = kind(name, documentation, labels=[label])
        for key, number in samples(o):
            family.add_metric([key], number)
        yield family
    yield GaugeMetricFamily(
        "aggregator_entries_failing",
        "Entries waiting for a stage whose last attempt failed (retried with backoff)",
        value=o.failing_entries,
    )


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
