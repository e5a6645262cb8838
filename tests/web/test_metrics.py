"""GET /metrics: Prometheus text about the whole installation, read from the database.

The process that answers the scrape did none of the work: polls, drafts and translations
were done by other processes (``aggregator poll``), as with a web unit and worker units.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import WriteConfig, aggregator_process, free_port, run_cli
from daemons import fetch_entries, newsletter_feed, operations_config, use_database
from prometheus_client.parser import text_string_to_metric_families
from servers import LibreTranslateServer, UpstreamServer

from aggregator import config as config_module
from aggregator.pipeline import Services
from aggregator.polling.refresh import poll_feeds
from aggregator.store import Store
from aggregator.web.metrics import registry_for

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(base_url: str) -> Samples:
    response = httpx.get(f"{base_url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_metrics_served_by_one_process_count_the_work_of_others(
    write_config: WriteConfig,
    upstream: UpstreamServer,
    libretranslate: LibreTranslateServer,
    postgres_url: str,
) -> None:
    feed_url = upstream.add("/rss", newsletter_feed(4))
    dead = f"http://127.0.0.1:{free_port()}/rss"
    config = write_config(
        [{"url": feed_url, "name": "Weekly"}, {"url": dead, "name": "Dead"}],
        extra=operations_config(),
    )
    use_database(config, postgres_url)  # web and workers on different machines share it
    base_url = config.read_text().split('base_url = "', 1)[1].split('"', 1)[0]
    run_cli(config, "poll")

    with aggregator_process(config, base_url, command="serve"):
        samples = scrape(base_url)
        assert value(samples, "aggregator_database_up") == 1
        assert value(samples, "aggregator_polls_total", feed="weekly") == 1
        assert value(samples, "aggregator_poll_errors_total", feed="weekly") == 0
        assert value(samples, "aggregator_polls_total", feed="dead") == 1
        assert value(samples, "aggregator_poll_errors_total", feed="dead") == 1
        assert value(samples, "aggregator_feeds", status="error") == 1
        assert value(samples, "aggregator_entries", state="drafted") == 4
        assert value(samples, "aggregator_drafts", status="pending") == 4
        # What the translation service received, as it counted it.
        assert value(samples, "aggregator_translation_requests_total", engine="libre") == (
            libretranslate.requests
        )
        assert value(samples, "aggregator_translation_characters_total", engine="libre") == (
            libretranslate.characters
        )
        assert value(samples, "aggregator_queue_depth", queue="text") == 0
        assert value(samples, "aggregator_claims", state="held") == 0

        # More work by another process (this one) shows at the next scrape, without a restart.
        upstream.add("/rss", newsletter_feed(7))
        settings = config_module.load(config)
        store = Store.from_settings(settings)
        services = Services.build(settings, store)
        try:
            before = datetime.now(UTC)
            poll_feeds(services, force=True, only=["Weekly"])
            after = datetime.now(UTC)
            # An hour later, the three new entries have waited an hour (and the poll's length).
            later = parse(_render(store, after + timedelta(hours=1)))
        finally:
            services.close()
            store.close()
        waited = value(later, "aggregator_oldest_pending_seconds", queue="text")
        assert 3600 <= waited <= 3600 + (after - before).total_seconds()
        assert value(later, "aggregator_oldest_pending_seconds", queue="translation") == 0
        samples = scrape(base_url)
        assert value(samples, "aggregator_poll_errors_total", feed="dead") == 1
        assert value(samples, "aggregator_polls_total", feed="weekly") == 2
        assert value(samples, "aggregator_queue_depth", queue="text") == 3
        assert value(samples, "aggregator_entries", state="new") == 3
        scraped_at = datetime.now(UTC)
        waiting = value(samples, "aggregator_oldest_pending_seconds", queue="text")
        assert 0 < waiting <= (scraped_at - before).total_seconds()


def test_queue_ages_are_measured_from_the_database_at_scrape_time(
    write_config: WriteConfig, upstream: UpstreamServer
) -> None:
    feed_url = upstream.add("/rss", newsletter_feed(2))
    config = write_config([{"url": feed_url, "name": "Weekly"}])
    fetch_entries(config)
    store = Store(f"sqlite:///{config.parent / 'aggregator.db'}")
    try:
        overview = store.overview(datetime.now(UTC))
        stored_at = datetime.now(UTC) - timedelta(seconds=overview.oldest_waiting_seconds["text"])
        later = stored_at + timedelta(hours=2)
        samples = parse(_render(store, later))
        assert value(samples, "aggregator_queue_depth", queue="text") == 2
        assert value(samples, "aggregator_oldest_pending_seconds", queue="text") == (
            pytest.approx(7200, abs=1)
        )
        assert value(samples, "aggregator_queue_overdue_seconds", queue="text") == (
            pytest.approx(7200, abs=1)
        )
        assert value(samples, "aggregator_oldest_pending_seconds", queue="translation") == 0
        # An expired claim (its holder died) is reported as such once its lease is over.
        claimed = store.claim_entries(later, timedelta(minutes=5), 1)
        assert len(claimed) == 1
        samples = parse(_render(store, later))
        assert value(samples, "aggregator_claims", state="held") == 1
        assert value(samples, "aggregator_queue_depth", queue="text") == 1
        samples = parse(_render(store, later + timedelta(minutes=6)))
        assert value(samples, "aggregator_claims", state="expired") == 1
        assert value(samples, "aggregator_claims", state="held") == 0
    finally:
        store.close()


def _render(store: Store, now: datetime) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry_for(store, clock=lambda: now)).decode()
