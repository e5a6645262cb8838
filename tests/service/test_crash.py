"""kill -9 at random moments never loses nor duplicates a draft.

A worker drafts 100 entries through a translation service with latency; five times it is
killed with SIGKILL while it works (no handler runs, claims stay in the database), and
restarted. The work of each killed process is taken up again once its short lease ends.

The kill moments come from a seed, printed first: ``AGGREGATOR_TEST_SEED=<seed>`` replays a
failed run's moments.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

from conftest import WriteConfig
from daemons import (
    DaemonProcess,
    Database,
    NotifySocket,
    article_title,
    newsletter_feed,
    operations_config,
    sqlite_url,
    wait_for,
)
from servers import LibreTranslateServer, UpstreamServer

ENTRIES = 100
KILLS = 5
LEASE_SECONDS = 2


def test_kill_9_five_times_drafts_every_entry_exactly_once(
    write_config: WriteConfig,
    upstream: UpstreamServer,
    libretranslate: LibreTranslateServer,
    tmp_path: Path,
) -> None:
    seed = int(os.environ.get("AGGREGATOR_TEST_SEED") or random.randrange(1 << 30))
    print(f"kill moments from seed {seed} (AGGREGATOR_TEST_SEED={seed} replays them)")
    moments = random.Random(seed)
    # Latency bounds how much one worker drafts between two kills (at most ~40 a second).
    libretranslate.latency = 0.1
    feed_url = upstream.add("/weekly/rss", newsletter_feed(ENTRIES))
    config = write_config(
        [{"url": feed_url, "name": "Weekly"}],
        extra=operations_config(lease=f"{LEASE_SECONDS}s", backlog_interval="0.5s"),
    )
    database = Database(sqlite_url(config))
    claims_left_by_kills = []
    with database, NotifySocket() as notify:
        for cycle in range(KILLS):
            before = database.drafts() if cycle else 0
            with DaemonProcess(config, env=notify.env, name=f"worker-{cycle}") as worker:
                notify.wait_for("READY=1")
                # A random moment while it works: after it has drafted something this time,
                # plus up to 0.3 s more (mid-translation, mid-write, anywhere).
                wait_for(
                    lambda b=before: database.drafts() > b,
                    f"worker {cycle} to draft something (seed {seed})",
                )
                time.sleep(moments.uniform(0.0, 0.3))  # the moment of the kill
                worker.kill()
                assert worker.process.returncode == -9
            claims_left_by_kills.append(_held_claims(database))
        assert database.drafts() < ENTRIES, "the kills came too late to interrupt anything"

        with DaemonProcess(config, env=notify.env, name="worker-last") as last:
            wait_for(
                lambda: database.drafts() == ENTRIES and database.claimed() == 0,
                f"every entry to be drafted after the kills (seed {seed})",
            )
            assert last.terminate() == 0

        # Exactly once: one draft per entry, created once and never replaced.
        assert database.entries() == ENTRIES
        assert database.entries("drafted") == ENTRIES
        assert database.scalar("SELECT count(DISTINCT entry_id) FROM drafts") == ENTRIES
        created = database.draft_events("drafted")
        assert len(created) == ENTRIES and set(created.values()) == {1}
        assert database.draft_events("redrafted") == {}
        assert database.scalar("SELECT max(version) FROM drafts") == 1
        # At least once: the translation service saw every entry's title.
        texts = libretranslate.texts
        for number in range(1, ENTRIES + 1):
            title = article_title(number)
            assert any(title in text for text in texts), f"{title} was never translated"
        # No claim is left behind, and the kills did leave some for the next process.
        assert database.claimed() == 0
        assert any(claims_left_by_kills), (
            f"no kill happened while entries were claimed ({claims_left_by_kills}, seed {seed})"
        )
    translated_twice = sum(
        1
        for number in range(1, ENTRIES + 1)
        if sum(article_title(number) in text for text in texts) > 1
    )
    print(
        f"seed {seed}: claims left by each kill {claims_left_by_kills}; "
        f"{translated_twice} entries translated twice, drafted once"
    )


def _held_claims(database: Database) -> int:
    return int(database.scalar("SELECT count(*) FROM entries WHERE claimed_by IS NOT NULL") or 0)
