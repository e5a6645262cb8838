"""The entry stage end to end in one process: full text, boilerplate, members-only posts,
language, translation with memory and budget, drafts and what they cost.

The newsletter is the crafted Ghost feed on a local site; translation is deep-translator
against the local LibreTranslate API; the database is SQLite in a temp dir.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import run_cli
from servers import LibreTranslateServer, UpstreamServer, dictionary_translate
from translation_desk import ghost_feed, open_desk, write_config

from aggregator.extraction.extract import text_of
from aggregator.models import EntryState
from aggregator.pipeline import process_backlog
from aggregator.polling.refresh import poll_feeds

MUSK = "Does Elon Musk want to buy OpenAI? Yes and no"
COURTS = "The courts and the executive order"
MEMBERS_ONLY = "Members only: what I learned from a year of paid newsletters"
CHANGED = (
    "The question that matters is not whether the courts will rule against the order. "
    "It is what happens if the administration decides that their rulings do not apply to it. "
    "Neither the states nor Congress have an obvious way to force compliance."
)


def test_newsletter_becomes_drafts_without_its_boilerplate_and_with_its_cost(
    tmp_path: Path, upstream: UpstreamServer, libretranslate: LibreTranslateServer
) -> None:
    desk = open_desk(tmp_path, upstream, libretranslate)

    report = desk.poll()

    assert report.entries["drafted"] == 2
    drafts = desk.drafts()
    assert sorted(drafts) == [MUSK, COURTS]
    for draft in drafts.values():
        text = text_of(draft.body_html)
        for boilerplate in ("subscribe", "Thanks for reading", "forwarded", "share it"):
            assert boilerplate.lower() not in text.lower(), (boilerplate, text)
        assert draft.engine == "libre"
        assert draft.warnings == []
        assert not draft.body_html.rstrip().endswith("<hr>")
    sent = "\n".join(libretranslate.texts)
    assert "Thanks for reading" not in sent and "subscribe here" not in sent
    # What each draft records is what was sent for it, and nothing else was sent.
    assert sum(d.characters for d in drafts.values()) == libretranslate.characters
    assert sum(d.requests for d in drafts.values()) == libretranslate.requests == 2


def test_members_only_post_is_skipped_with_its_reason_before_any_translation(
    tmp_path: Path, upstream: UpstreamServer, libretranslate: LibreTranslateServer
) -> None:
    desk = open_desk(tmp_path, upstream, libretranslate)

    desk.poll()

    entry = desk.entries()[MEMBERS_ONLY]
    assert entry.state == "skipped"
    assert entry.skip_reason is not None
    assert "members-only post (Ghost paywall)" in entry.skip_reason
    sent = "\n".join(libretranslate.texts)
    assert "paid subscriptions" not in sent and "paid newsletters" not in sent
    assert MEMBERS_ONLY not in desk.drafts()


SUBSTACK_FEED = """<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"
 xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>A Substack</title>
<link>{base}/</link><generator>Substack</generator>
<item><title>Paid: the numbers behind the business</title><link>{base}/p/paid-numbers</link>
<guid isPermaLink="false">substack:post:1</guid>
<content:encoded><![CDATA[<p>This year the company grew faster than the people who work
there expected.</p><div class="paywall-jump" data-component-name="PaywallToDOM"></div>
<p>Keep reading with a 7-day free trial</p>]]></content:encoded></item>
<item><title>Une lettre en français</title><link>{base}/p/francais</link>
<guid isPermaLink="false">substack:post:2</guid>
<content:encoded><![CDATA[<p>{french}</p>]]></content:encoded></item>
</channel></rss>"""
FRENCH = " ".join(
    ["Cette lettre hebdomadaire parle des médias, de la technologie et de la politique."] * 20
)


def test_substack_paid_preview_is_skipped_from_the_feed_alone_and_french_is_not_translated(
    tmp_path: Path, upstream: UpstreamServer, libretranslate: LibreTranslateServer
) -> None:
    feed = SUBSTACK_FEED.format(base=upstream.base_url, french=FRENCH)
    desk = open_desk(tmp_path, upstream, libretranslate, feed=feed)

    desk.poll()

    entries = desk.entries()
    paid = entries["Paid: the numbers behind the business"]
    assert paid.state == "skipped"
    assert paid.skip_reason is not None and "Substack paywall" in paid.skip_reason
    assert upstream.hits("/p/paid-numbers") == 0  # known from the feed: no page fetch
    french = entries["Une lettre en français"]
    assert french.state == "skipped"
    assert french.skip_reason == "not translated: language is 'fr', not one of en"
    assert libretranslate.requests == 0


def test_an_updated_article_costs_only_its_changed_paragraph(
    tmp_path: Path, upstream: UpstreamServer, libretranslate: LibreTranslateServer
) -> None:
    desk = open_desk(tmp_path, upstream, libretranslate)
    desk.poll()
    first_cost = libretranslate.characters
    feed = ghost_feed(upstream.base_url)
    old = re.search(r"<p>The question that matters.*?</p>", feed)
    assert old is not None
    new_paragraph = CHANGED.replace("force compliance", "force the administration to comply")
    upstream.add("/rss/", feed.replace(old.group(), f"<p>{new_paragraph}</p>"), etag="v2")
    desk.moment[0] += timedelta(hours=1)

    desk.poll()

    update_cost = libretranslate.characters - first_cost
    assert 0 < update_cost <= 1.2 * len(new_paragraph)
    assert libretranslate.texts[-1] == new_paragraph
    courts = desk.drafts()[COURTS]
    assert dictionary_translate(new_paragraph) in courts.body_html
    assert courts.characters == update_cost and courts.requests == 1


def test_daily_budget_pauses_translation_says_so_and_resumes_the_next_day(
    tmp_path: Path, upstream: UpstreamServer, libretranslate: LibreTranslateServer
) -> None:
    today = datetime.now(UTC)
    desk = open_desk(
        tmp_path,
        upstream,
        libretranslate,
        translation={
            "libre": {"url": libretranslate.url("/"), "api_key": "test", "daily_characters": 2200}
        },
        moment=today,
    )
    desk.workers = 1

    desk.poll()

    drafts, entries = desk.drafts(), desk.entries()
    assert list(drafts) == [MUSK]  # about 1,900 characters: the other one no longer fits
    waiting = entries[COURTS]
    assert waiting.state == "extracted"
    assert waiting.last_error is not None
    assert "daily budget of 2,200 characters is spent" in waiting.last_error
    midnight = datetime.combine(today.date() + timedelta(days=1), datetime.min.time(), UTC)
    assert waiting.next_attempt_at == midnight
    assert libretranslate.requests == 1  # the refused request was never sent

    config = write_config(desk, tmp_path / "config.toml", "daily_characters = 2200")
    status = run_cli(config, "status").stdout
    spent = libretranslate.characters
    # In the editor's language (French by default), numbers written the French way.
    used = f"{spent:,}".replace(",", " ")
    assert f"budget :    libre : {used} caractères sur 2 200 dépensés aujourd'hui (UTC)" in status
    assert "traduction en pause : libre: translation paused, the daily budget" in status
    assert "(1 entrée attend)" in status

    desk.moment[0] = midnight + timedelta(minutes=1)
    desk.process()

    assert sorted(desk.drafts()) == [MUSK, COURTS]


def test_a_stop_starts_nothing_more_and_gives_back_what_was_claimed(
    tmp_path: Path, upstream: UpstreamServer, libretranslate: LibreTranslateServer
) -> None:
    desk = open_desk(tmp_path, upstream, libretranslate)
    desk.store.sync_feeds(desk.settings.feeds, desk.settings, desk.moment[0])
    poll_feeds(desk.services, force=True)  # three entries stored, none processed yet
    finished: list[str] = []

    report = process_backlog(
        desk.services,
        workers=1,
        batch_size=3,
        on_progress=lambda: finished.append("one"),
        should_stop=lambda: bool(finished),  # SIGTERM arrives while the first entry runs
    )

    assert sum(report.entries.values()) == len(finished) == 1
    waiting = [e for e in desk.entries().values() if e.state == EntryState.NEW]
    assert len(waiting) == 2
    assert all(e.claimed_by is None and e.locked_until is None for e in waiting)
    desk.process()  # the next run takes them at once: nothing waits for a lease to end
    assert sorted(desk.drafts()) == sorted([MUSK, COURTS])
