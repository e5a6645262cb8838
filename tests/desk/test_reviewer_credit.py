"""Who the published credit line names when a draft is approved from the command line.

The reviewer is ``--as NAME``, else ``$AGGREGATOR_REVIEWER``; with neither, the audit trail
still records who ran the command but the credit names nobody (it once printed the Unix
login: "relue par root"). A configured ``[review] reviewers`` list binds the CLI as it
binds the desk's login: any other name is refused and nothing is approved.

The drafts come from the real pipeline (tests/newsroom.py); the CLI runs as a subprocess;
the feed and the article page are read through the web application.
"""

from __future__ import annotations

import getpass
import re

import feedparser
import pytest
from conftest import run_cli
from newsroom import MUSK_TITLE, Newsroom

from aggregator.models import DraftStatus


def published(newsroom: Newsroom, draft_id: int) -> tuple[str, str]:
    """The Atom feed's content of the draft, and its public article page."""
    client = newsroom.client()
    feed = client.get("/feeds/published.atom")
    assert feed.status_code == 200, feed.text
    parsed = feedparser.parse(feed.content)
    [entry] = [e for e in parsed.entries if e.link.endswith(f"/articles/{draft_id}")]
    page = client.get(f"/articles/{draft_id}")
    assert page.status_code == 200, page.text
    return entry.content[0].value, page.text


def with_reviewers(newsroom: Newsroom, *names: str) -> None:
    text = newsroom.config.read_text(encoding="utf-8")
    listed = ", ".join(f'"{name}"' for name in names)
    newsroom.config.write_text(
        text.replace("[review]\n", f"[review]\nreviewers = [{listed}]\n", 1), encoding="utf-8"
    )


def last_actor(newsroom: Newsroom, draft_id: int) -> str:
    [event, *_] = [e for e in newsroom.store.recent_events() if e.draft_id == draft_id]
    return event.actor


def test_approving_without_a_name_publishes_no_name(newsroom: Newsroom) -> None:
    musk = newsroom.draft(MUSK_TITLE)

    run_cli(newsroom.config, "drafts", "approve", str(musk.id))

    content, page = published(newsroom, musk.id)
    for text in (content, page):
        assert "relue par" not in text
        assert getpass.getuser() not in re.sub(r"<[^>]+>", " ", text).split()
    assert newsroom.store.get_draft(musk.id).reviewed_by is None
    # The audit trail still says who ran the command.
    assert last_actor(newsroom, musk.id) == f"cli (user {getpass.getuser()})"


def test_approving_as_alice_credits_alice(newsroom: Newsroom) -> None:
    musk = newsroom.draft(MUSK_TITLE)

    run_cli(newsroom.config, "drafts", "approve", str(musk.id), "--as", "Alice")

    content, page = published(newsroom, musk.id)
    assert "relue par Alice" in content
    assert "relue par Alice" in page
    assert last_actor(newsroom, musk.id) == "Alice"


def test_the_reviewer_may_come_from_the_environment(
    newsroom: Newsroom, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGGREGATOR_REVIEWER", "  Dominique  ")
    musk = newsroom.draft(MUSK_TITLE)

    run_cli(newsroom.config, "drafts", "approve", str(musk.id))

    content, _ = published(newsroom, musk.id)
    assert "relue par Dominique." in content


def test_a_name_outside_the_configured_reviewers_is_refused(newsroom: Newsroom) -> None:
    with_reviewers(newsroom, "Camille", "Dominique")
    musk = newsroom.draft(MUSK_TITLE)

    refused = run_cli(
        newsroom.config, "drafts", "approve", str(musk.id), "--as", "Alice", check=False
    )

    assert refused.returncode == 1
    assert "reviewer 'Alice' is not in [review] reviewers" in refused.stderr
    assert "Camille, Dominique" in refused.stderr
    assert newsroom.store.get_draft(musk.id).status == DraftStatus.PENDING
    assert last_actor(newsroom, musk.id) == "aggregator"  # drafted; nothing since

    run_cli(newsroom.config, "drafts", "approve", str(musk.id), "--as", "Camille")
    content, _ = published(newsroom, musk.id)
    assert "relue par Camille" in content


def test_the_reviewer_list_binds_the_environment_and_every_review_command(
    newsroom: Newsroom, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_reviewers(newsroom, "Camille")
    monkeypatch.setenv("AGGREGATOR_REVIEWER", "Mallory")
    musk = newsroom.draft(MUSK_TITLE)

    for command in (
        ["approve", str(musk.id)],
        ["reject", str(musk.id)],
        ["retranslate", str(musk.id)],
        ["edit", str(musk.id), "--title", "Autre titre"],
    ):
        refused = run_cli(newsroom.config, "drafts", *command, check=False)
        assert refused.returncode == 1, command
        assert "reviewer 'Mallory' is not in [review] reviewers" in refused.stderr, command

    unchanged = newsroom.store.get_draft(musk.id)
    assert (unchanged.status, unchanged.title, unchanged.version) == (
        DraftStatus.PENDING,
        musk.title,
        musk.version,
    )
