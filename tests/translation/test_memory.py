"""Translation memory and engine usage in the database, on SQLite and PostgreSQL: blocks
paid once across articles and updates, editors' corrections preferred, budgets never
overspent by concurrent workers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from servers import LibreTranslateServer, UpstreamServer, dictionary_translate
from translation_desk import ghost_feed, open_desk

from aggregator.config import Duration, EngineSettings, TranslationSettings
from aggregator.languages import LanguagePair
from aggregator.store import Store
from aggregator.translation import kept
from aggregator.translation.engines import Engine, build_engine
from aggregator.translation.translate import translate_article

NOW = datetime(2025, 2, 12, 16, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/memory.db"
    else:
        url = request.getfixturevalue("postgres_url")
    opened = Store(url)
    opened.upgrade()
    try:
        yield opened
    finally:
        opened.close()


def libre(server: LibreTranslateServer) -> Engine:
    settings = TranslationSettings(
        engine="libre",
        timeout=Duration(10),
        libre=EngineSettings(url=server.url("/"), api_key="test"),
    )
    return build_engine(settings)


def test_remembered_blocks_come_back_the_editors_first(store: Store) -> None:
    languages = {"source_language": "en", "target_language": "fr"}
    pair = LanguagePair("en", "fr")
    store.remember(
        [("libre", "The [[1]]board[[/1]] met.", "Le [[1]]conseil[[/1]] a siégé."),
         ("google", "The board met.", "Le conseil s'est réuni.")],
        now=NOW, pair=pair,
    )  # fmt: skip
    store.remember_correction(
        source_text="The board met.", translated_text="Le conseil s'est réuni hier.",
        now=NOW, **languages,
    )  # fmt: skip

    found = store.recall(
        ["The [[1]]board[[/1]] met.", "The board met.", "Unknown."],
        engines=["libre"], now=NOW, pair=pair,
    )  # fmt: skip

    assert {k: (v.translation, v.engine) for k, v in found.items()} == {
        "The [[1]]board[[/1]] met.": ("Le [[1]]conseil[[/1]] a siégé.", "libre"),
        "The board met.": ("Le conseil s'est réuni hier.", "editor"),
    }
    # Another engine's translation is not used unless that engine is in the chain.
    block = "The [[1]]board[[/1]] met."
    assert store.recall([block], engines=["google"], now=NOW, pair=pair) == {}
    # A newer translation of the same block replaces the older one.
    store.remember([("libre", block, "Le [[1]]conseil[[/1]] est là.")], now=NOW, pair=pair)
    again = store.recall(["The [[1]]board[[/1]] met."], engines=["libre"], now=NOW, pair=pair)
    assert again["The [[1]]board[[/1]] met."].translation == "Le [[1]]conseil[[/1]] est là."
    assert store.memory_size() == 3


def test_concurrent_workers_never_spend_past_the_budget(store: Store) -> None:
    granted: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(5):
            ok = store.spend("libre", "2025-02-12", 100, budget=1000)
            with lock:
                granted.append(ok)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert granted.count(True) == 10
    usage = store.usage("2025-02-12")["libre"]
    assert (usage.characters, usage.requests) == (1000, 10)
    assert store.spend("libre", "2025-02-13", 100, budget=1000)  # a new day, a new budget
    assert store.spend("google", "2025-02-12", 10**9, budget=0)  # no budget: always counted


def test_a_block_seen_in_another_article_is_not_paid_again(
    tmp_path: Path, libretranslate: LibreTranslateServer
) -> None:
    store = Store(f"sqlite:///{tmp_path}/memory.db")
    store.upgrade()
    shared = "<p>This letter is for the people who read the news about technology.</p>"
    first = "<p>The company was fast.</p>" + shared
    second = "<h2>More</h2><p>The board was slow.</p>" + shared
    engine = libre(libretranslate)

    translate_article("One", first, engine, target_language="fr", memory=store, now=lambda: NOW)
    before = libretranslate.characters
    second_draft = translate_article(
        "Two", second, engine, target_language="fr", memory=store, now=lambda: NOW
    )

    sent = "\n".join(libretranslate.texts[1:])
    assert "people who read the news" not in sent
    assert libretranslate.characters - before == len("Two\nMore\nThe board was slow.")
    assert second_draft.from_memory == 1
    shared_text = "This letter is for the people who read the news about technology."
    assert f"<p>{dictionary_translate(shared_text)}</p>" in second_draft.body_html


def test_an_editors_correction_becomes_the_translation_of_that_block_later(
    tmp_path: Path, upstream: UpstreamServer, libretranslate: LibreTranslateServer
) -> None:
    desk = open_desk(tmp_path, upstream, libretranslate)
    desk.poll()
    courts = desk.drafts()["The courts and the executive order"]
    machine = courts.body_html
    start = machine.index("<p>Ce est pas un")
    end = machine.index("</p>", start) + len("</p>")
    corrected = (
        "<p>Ce n'est pas une lettre politique : je laisse les questions constitutionnelles "
        "à d'autres. Mais le côté technique mérite qu'on s'y arrête : un code qui bloque des "
        "milliards de dollars de paiements est une forme de pouvoir, utilisée sans grand "
        "contrôle.</p>"
    )
    desk.store.edit(
        courts.id,
        actor="camille",
        now=desk.moment[0],
        body_html=machine[:start] + corrected + machine[end:],
        edit_rules=kept,
    )
    # The same paragraph comes back in a new post of the newsletter.
    feed = ghost_feed(upstream.base_url)
    opening = feed.index("<p>This is not a political")
    paragraph = feed[opening : feed.index("</p>", opening) + len("</p>")]
    new_item = (
        "<item><title>A follow-up on the courts</title>"
        f'<link>{upstream.base_url}/follow-up/</link><guid isPermaLink="false">follow-up-1</guid>'
        "<content:encoded><![CDATA[<p>The company said the board will meet next week, and "
        "the people who work there are still waiting for the decision of the courts.</p>"
        f"{paragraph}]]></content:encoded></item>"
    )
    upstream.add("/rss/", feed.replace("<item>", new_item + "<item>", 1), etag="v2")
    upstream.add(
        "/follow-up/",
        "<html><body><article><h1>A follow-up on the courts</h1>"
        "<p>The company said the board will meet next week, and the people who work there "
        f"are still waiting for the decision of the courts.</p>{paragraph}</article></body></html>",
        content_type="text/html; charset=utf-8",
    )
    sent_before = len(libretranslate.texts)
    desk.moment[0] += timedelta(hours=1)

    desk.poll()

    follow_up = desk.drafts()["A follow-up on the courts"]
    assert corrected in follow_up.body_html
    sent = "\n".join(libretranslate.texts[sent_before:])
    assert "This is not a political newsletter" not in sent
    assert follow_up.characters < 300
