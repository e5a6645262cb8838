"""Translating one article: units, placeholders, batches, language per block, glossary,
markup that engines lose, and the integrity of what comes back.

Engines are the LibreTranslate API on 127.0.0.1 through deep-translator (``libretranslate``),
or, where a fault must hit only some requests, an engine object at the adapter boundary
that uses the same dictionary in process.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import quote_plus

import lxml.html
import pytest
from conftest import DATA_DIR
from servers import LibreTranslateServer, dictionary_translate
from translation_desk import real_article_pages

from aggregator.config import Duration, EngineSettings, TranslationSettings
from aggregator.errors import TranslateError
from aggregator.extraction.extract import extract_article, sanitize
from aggregator.extraction.language import detect
from aggregator.translation.engines import Engine, build_engine
from aggregator.translation.glossary import Glossary
from aggregator.translation.segment import parse_fragment, structure_counts, units, verbatim_parts
from aggregator.translation.translate import corrections, pack, translate_article

PAGES = real_article_pages()
_MARK = re.compile(r"\[\[\s*/?\s*\d+\s*\]\]")


def libre(server: LibreTranslateServer, *, max_chars: int = 0) -> Engine:
    settings = TranslationSettings(
        engine="libre",
        timeout=Duration(10),
        libre=EngineSettings(url=server.url("/"), api_key="test", max_chars=max_chars),
    )
    return build_engine(settings)


@dataclass
class DictionaryEngine:
    """The test server's dictionary in process, with the faults real engines show."""

    name: str = "dictionary"
    max_chars: int = 4999
    max_url_bytes: int = 0
    lose_markup_in_batches: bool = False  # engines move markup between neighbouring lines
    calls: list[str] = field(default_factory=list)

    def translate(self, text: str) -> str:
        self.calls.append(text)
        translated = dictionary_translate(text)
        if self.lose_markup_in_batches and "\n" in text:
            translated = _MARK.sub("", translated)
        return translated


def outline(html: str) -> dict[str, list[str]]:
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    return {
        "links": [a.get("href", "") for a in root.iter("a")],
        "images": [i.get("src", "") for i in root.iter("img")],
        "headings": [h.tag for h in root.iter("h1", "h2", "h3", "h4", "h5", "h6")],
        "list items": [li.tag for li in root.iter("li")],
        "quotes": [q.tag for q in root.iter("blockquote")],
    }


def real_page(name: str) -> tuple[str, str]:
    article = extract_article((DATA_DIR / name).read_bytes(), PAGES[name])
    return article.title or "", article.html


def ghost_bodies() -> list[str]:
    feed = (DATA_DIR / "torment-nexus-like.rss").read_text(encoding="utf-8")
    return re.findall(r"<content:encoded><!\[CDATA\[(.*?)\]\]></content:encoded>", feed, re.S)


# -------------------------------------------------------------------------------------------
# The real pages: complete, French, structure and code intact


@pytest.mark.parametrize("name", sorted(PAGES))
def test_real_page_draft_is_french_complete_and_keeps_code(
    name: str, libretranslate: LibreTranslateServer
) -> None:
    title, html = real_page(name)

    translation = translate_article(title, html, libre(libretranslate), target_language="fr")

    for unit in units(parse_fragment(translation.body_html)):
        assert detect(unit.plain) != "en", f"English left in the draft: {unit.plain!r}"
    assert detect(translation.title) != "en"
    assert outline(translation.body_html) == outline(html)
    assert structure_counts(parse_fragment(translation.body_html)) == structure_counts(
        parse_fragment(html)
    )
    assert verbatim_parts(parse_fragment(translation.body_html)) == verbatim_parts(
        parse_fragment(html)
    )
    assert translation.warnings == ()
    assert translation.requests == libretranslate.requests
    assert translation.characters == libretranslate.characters


def test_ghost_newsletter_blocks_are_all_translated(libretranslate: LibreTranslateServer) -> None:
    body = sanitize(ghost_bodies()[0])

    translation = translate_article(
        "Does Elon Musk want to buy OpenAI?", body, libre(libretranslate), target_language="fr"
    )

    assert outline(translation.body_html) == outline(body)
    for unit in units(parse_fragment(translation.body_html)):
        assert detect(unit.plain) != "en", unit.plain


# -------------------------------------------------------------------------------------------
# Batching: the title with the body, requests as full as the engine allows


def test_title_travels_with_the_body_in_one_request(libretranslate: LibreTranslateServer) -> None:
    body = sanitize(ghost_bodies()[1])

    translation = translate_article(
        "The courts and the executive order", body, libre(libretranslate), target_language="fr"
    )

    assert libretranslate.requests == 1
    first_line = libretranslate.texts[0].split("\n")[0]
    assert first_line == "The courts and the executive order"
    assert translation.title == dictionary_translate("The courts and the executive order")


def test_long_article_fills_every_request_up_to_the_limit(
    libretranslate: LibreTranslateServer,
) -> None:
    title, html = real_page("trafilatura_gregoryszorc.com.python3.html")
    engine = libre(libretranslate)

    translation = translate_article(title, html, engine, target_language="fr")

    sent = libretranslate.texts
    assert all(len(text) <= engine.max_chars for text in sent)
    assert all(len(quote_plus(text)) <= engine.max_url_bytes for text in sent)
    bound = math.ceil(translation.characters / engine.max_chars)
    assert translation.requests <= bound + 1, (translation.requests, bound)
    # Everything sent is text to translate: title, prose and placeholders, nothing twice.
    source_chars = sum(len(u.plain) for u in units(parse_fragment(html))) + len(title)
    assert translation.characters <= 1.1 * source_chars


def test_paragraph_longer_than_a_request_is_cut_at_sentences(
    libretranslate: LibreTranslateServer,
) -> None:
    sentences = [f"Sentence number {n} is about the board and the company." for n in range(12)]
    paragraph = " ".join(sentences)
    html = f'<p>{paragraph} See <a href="https://example.com/x">the link</a>.</p>'

    translation = translate_article(
        "A title", html, libre(libretranslate, max_chars=200), target_language="fr"
    )

    assert all(len(text) <= 200 for text in libretranslate.texts)
    assert libretranslate.requests >= math.ceil(len(paragraph) / 200)
    root = parse_fragment(translation.body_html)
    assert [a.get("href") for a in root.iter("a")] == ["https://example.com/x"]
    assert "le conseil et le entreprise" in translation.body_html
    assert translation.body_html.count("<p>") == 1


def test_pack_cuts_only_at_sentence_ends_and_keeps_every_character() -> None:
    engine = DictionaryEngine(max_chars=120)
    lines = ["Short title", ("One sentence here. " * 20).strip(), "Last line."]

    plan = pack(lines, engine)

    assert all(len("\n".join(t for _, t in request)) <= 120 for request in plan)
    pieces: dict[int, list[str]] = {}
    for request in plan:
        for index, text in request:
            pieces.setdefault(index, []).append(text)
            assert text.endswith(".") or text == lines[index]
    assert [" ".join(pieces[i]) for i in range(3)] == lines


# -------------------------------------------------------------------------------------------
# What is never sent, what is kept


def test_code_and_preformatted_text_are_never_sent_and_come_back_unchanged(
    libretranslate: LibreTranslateServer,
) -> None:
    html = (
        "<p>Call <code>json.loads(raw_bytes)</code> and read the result.</p>"
        "<pre>def main():\n    return parse_everything(42)</pre>"
        "<p>Then <kbd>Ctrl-C</kbd> stops it.</p>"
    )

    translation = translate_article("Parsing", html, libre(libretranslate), target_language="fr")

    sent = "\n".join(libretranslate.texts)
    for code in ("json.loads(raw_bytes)", "parse_everything", "def main", "Ctrl-C"):
        assert code not in sent
    root = parse_fragment(translation.body_html)
    assert verbatim_parts(root) == verbatim_parts(parse_fragment(html))
    assert "<pre>def main():\n    return parse_everything(42)</pre>" in translation.body_html


def test_blocks_already_in_french_are_kept_and_not_sent(
    libretranslate: LibreTranslateServer,
) -> None:
    french = (
        "Cette lettre est publiée chaque semaine par une équipe de journalistes qui "
        "travaillent sur les médias et la technologie."
    )
    html = f"<p>The company was fast and the people were good.</p><p>{french}</p>"

    translation = translate_article(
        "A weekly letter", html, libre(libretranslate), target_language="fr"
    )

    assert french not in "\n".join(libretranslate.texts)
    assert f"<p>{french}</p>" in translation.body_html
    assert translation.kept == 1


def test_loose_text_between_blocks_is_translated(libretranslate: LibreTranslateServer) -> None:
    html = (
        "<ul><li>The people who work on the project<ul><li>and the users</li></ul></li></ul>"
        "<blockquote>What the company says<p>about the money</p></blockquote>"
        "<img src='https://example.com/a.png' alt=''> and that is all"
    )

    translation = translate_article("Lists", html, libre(libretranslate), target_language="fr")

    text = lxml.html.fragment_fromstring(translation.body_html, create_parent="div")
    visible = text.text_content()
    for english in ("The people who work", "and the users", "What the company", "that is all"):
        assert english not in visible
    assert outline(translation.body_html) == outline(html)


def test_the_same_block_twice_is_paid_once(libretranslate: LibreTranslateServer) -> None:
    paragraph = "<p>Thanks to the people who read this.</p>"
    html = f"{paragraph}<h2>More</h2>{paragraph}"

    translate_article("Twice", html, libre(libretranslate), target_language="fr")

    assert libretranslate.texts[0].count("Thanks to the people") == 1


# -------------------------------------------------------------------------------------------
# Markup through engines


def test_inline_markup_comes_back_around_the_same_words(
    libretranslate: LibreTranslateServer,
) -> None:
    html = (
        '<p>The <a href="https://example.com/board">board</a> said <em>no</em> to the '
        '<strong><a href="https://example.com/bid">bid</a></strong> and <code>x=1</code>.</p>'
    )

    translation = translate_article("Markup", html, libre(libretranslate), target_language="fr")

    assert translation.body_html == sanitize(
        '<p>Le <a href="https://example.com/board">conseil</a> a dit <em>non</em> à le '
        '<strong><a href="https://example.com/bid">offre</a></strong> et <code>x=1</code>.</p>'
    )


def test_markup_lost_in_a_batch_is_retried_alone_and_then_complete() -> None:
    engine = DictionaryEngine(lose_markup_in_batches=True)
    html = (
        '<p>The <a href="https://example.com/a">board</a> met.</p>'
        "<p>The company was fast.</p>"
        "<p>The <em>people</em> left.</p>"
    )

    translation = translate_article("Meeting", html, engine, target_language="fr")

    assert translation.warnings == ()
    root = parse_fragment(translation.body_html)
    assert [(a.get("href"), a.text) for a in root.iter("a")] == [
        ("https://example.com/a", "conseil")
    ]
    assert [em.text for em in root.iter("em")] == ["personnes"]
    # One batch, then each paragraph with markup alone.
    assert len(engine.calls) == 3
    assert engine.calls[1] == "The [[1]]board[[/1]] met."


def test_markup_lost_every_time_is_put_back_and_flagged_never_flattened(
    libretranslate: LibreTranslateServer,
) -> None:
    libretranslate.mode = "drop_placeholders"
    html = (
        '<p>The <a href="https://example.com/a">board</a> met with <em>the people</em>.</p>'
        "<p>The company was fast.</p>"
    )

    translation = translate_article("Meeting", html, libre(libretranslate), target_language="fr")

    root = parse_fragment(translation.body_html)
    assert [a.get("href") for a in root.iter("a")] == ["https://example.com/a"]
    assert [a.text for a in root.iter("a")] == ["conseil"]
    assert [e.text for e in root.iter("em")] == ["le personnes"]
    assert len(translation.warnings) == 1
    assert "«The board met with the people.»" in translation.warnings[0]
    assert "check the wording" in translation.warnings[0]


def test_an_engine_that_keeps_failing_leaves_no_translation(
    libretranslate: LibreTranslateServer,
) -> None:
    libretranslate.mode = "drop_lines"

    with pytest.raises(TranslateError, match="no text"):
        translate_article(
            "Title",
            "<p>The company.</p><p>The board.</p>",
            libre(libretranslate),
            target_language="fr",
        )


# -------------------------------------------------------------------------------------------
# Glossary


def test_glossary_keeps_names_and_forces_translations(libretranslate: LibreTranslateServer) -> None:
    glossary = Glossary(keep=("The Torment Nexus",), force=(("newsletter", "infolettre"),))
    html = "<p>Welcome to The Torment Nexus, a weekly newsletter about the world.</p>"

    translation = translate_article(
        "Newsletter news", html, libre(libretranslate), target_language="fr", glossary=glossary
    )

    assert "The Torment Nexus" in translation.body_html
    assert "infolettre" in translation.body_html
    assert translation.title.startswith("Infolettre")
    sent = "\n".join(libretranslate.texts)
    assert "Torment" not in sent and "newsletter" not in sent.lower()


# -------------------------------------------------------------------------------------------
# An editor's corrections


def test_corrections_pair_each_rewritten_block_with_its_source() -> None:
    source = '<p>The <a href="https://e.com/b">board</a> met.</p><p>The company was fast.</p>'
    machine = '<p>Le <a href="https://e.com/b">conseil</a> a.</p><p>Le entreprise était rapide.</p>'
    edited = '<p>Le <a href="https://e.com/b">conseil</a> a.</p><p>L\'entreprise fut rapide.</p>'
    reordered = (
        '<p><a href="https://e.com/b">Le conseil</a> s\'est réuni.</p>'
        "<p>Le entreprise était rapide.</p>"
    )

    assert corrections(source, machine, edited) == [
        ("The company was fast.", "L'entreprise fut rapide.")
    ]
    assert corrections(source, machine, reordered) == [
        ("The [[1]]board[[/1]] met.", "[[1]]Le conseil[[/1]] s'est réuni.")
    ]
    link_removed = "<p>Le conseil.</p><p>Le entreprise était rapide.</p>"
    assert corrections(source, machine, link_removed) == []


def test_counts_of_what_was_kept_and_sent_add_up(libretranslate: LibreTranslateServer) -> None:
    html = "<p>The company.</p><p>12 345</p><p>The board.</p>"

    translation = translate_article("T", html, libre(libretranslate), target_language="fr")

    assert translation.units == 4
    assert translation.kept == 1  # "12 345" has nothing to translate
    sent_lines = Counter(line for text in libretranslate.texts for line in text.split("\n"))
    assert sent_lines == Counter(["T", "The company.", "The board."])


def test_image_alt_and_title_are_units_of_their_own_put_back_in_their_attributes() -> None:
    from aggregator.translation.segment import parse_fragment as parse
    from aggregator.translation.segment import replace_content as put
    from aggregator.translation.segment import restore as back
    from aggregator.translation.segment import serialize as out
    from aggregator.translation.segment import units as of

    root = parse('See <img src="a.png" alt="A cat on a mat" title="The cat"> here')
    found = of(root)
    assert [u.text for u in found] == ["See [[1]] here", "A cat on a mat", "The cat"]
    for unit in found:
        put(unit.element, back(unit, unit.text.upper()))
    assert out(root) == 'SEE <img src="a.png" alt="A CAT ON A MAT" title="THE CAT"> HERE'
