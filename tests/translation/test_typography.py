"""French typography on machine output: the rules a French editor applies, and where not."""

from __future__ import annotations

import json
import re
from pathlib import Path

import lxml.html
import pytest
from conftest import WriteConfig, run_cli
from servers import UpstreamServer

from aggregator.extraction.extract import extract_article
from aggregator.translation.typography import NARROW_NBSP as NN
from aggregator.translation.typography import NBSP, french_html, french_text, typeset

DATA = Path(__file__).parents[1] / "data"


@pytest.mark.parametrize(
    ("english_habits", "french"),
    [
        ("Pourquoi? Vraiment!", f"Pourquoi{NN}? Vraiment{NN}!"),
        ("Trois choses : la paix; la guerre", f"Trois choses{NN}: la paix{NN}; la guerre"),
        ("Quoi ?!", f"Quoi{NN}?!"),
        ("à 12:30, score 3:2", "à 12:30, score 3:2"),
        ('Il a dit "oui" puis "non".', f"Il a dit «{NN}oui{NN}» puis «{NN}non{NN}»."),
        ("Il a dit “oui”.", f"Il a dit «{NN}oui{NN}»."),
        ("«bien»", f"«{NN}bien{NN}»"),
        ("l'homme d'affaires", "l’homme d’affaires"),
        ("1 000 000 habitants", f"1{NN}000{NN}000 habitants"),
        ("50% des 97 milliards $", f"50{NN}% des 97{NBSP}milliards{NBSP}$"),
        ("un trajet de 10 km en 2 h", f"un trajet de 10{NBSP}km en 2{NBSP}h"),
        (
            "Voir https://example.org/a?b=1;c=2:3 ici!",
            f"Voir https://example.org/a?b=1;c=2:3 ici{NN}!",
        ),
        ("Écrire à jane@example.org: merci", f"Écrire à jane@example.org{NN}: merci"),
        ('"http://x.org/?a"', f"«{NN}http://x.org/?a{NN}»"),
        (f"déjà{NN}? bien", f"déjà{NN}? bien"),  # already right: unchanged
    ],
)
def test_titles_and_text_follow_french_rules(english_habits: str, french: str) -> None:
    assert french_text(english_habits) == french
    assert french_text(french) == french  # idempotent


def test_markup_code_attributes_and_urls_are_left_alone() -> None:
    hostile = (
        '<p title="a: b? &quot;c&quot;" data-x="1 000">Il dit : "<em>bonjour</em>"!</p>'
        '<pre>if (a) { b: "c"; }</pre>'
        '<p><a href="https://x.org/?q=\'a\'&amp;b=1">lien</a>? et <code>x = "y";</code>'
        " l&#39;ami &amp; co; &lt;script&gt;alert(1)&lt;/script&gt;</p>"
        "<!-- un commentaire: ? --><p>5<sup>e</sup>?</p>"
    )

    out = french_html(hostile)

    assert out == (
        '<p title="a: b? &quot;c&quot;" data-x="1 000">'
        f"Il dit{NN}: «{NN}<em>bonjour</em>{NN}»{NN}!</p>"
        '<pre>if (a) { b: "c"; }</pre>'
        f'<p><a href="https://x.org/?q=\'a\'&amp;b=1">lien</a>{NN}? et <code>x = "y";</code>'
        f" l’ami &amp; co{NN}; &lt;script&gt;alert(1)&lt;/script&gt;</p>"
        f"<!-- un commentaire: ? --><p>5<sup>e</sup>{NN}?</p>"
    )


def test_an_unclosed_quote_does_not_spill_into_the_next_paragraph() -> None:
    out = french_html('<p>Il a dit "oui</p><p>"Non", dit-elle.</p>')
    assert out == f"<p>Il a dit «{NN}oui</p><p>«{NN}Non{NN}», dit-elle.</p>"


@pytest.mark.parametrize(
    "page",
    [
        "trafilatura_gregoryszorc.com.python3.html",
        "trafilatura_lemire.me.json.html",
        "trafilatura_blog.wordpress.com.diverse.html",
    ],
)
def test_real_articles_keep_their_code_links_and_structure(page: str) -> None:
    article = extract_article((DATA / page).read_bytes(), "https://example.org/post")
    assert article is not None
    body = article.html

    out = french_html(body)

    before, after = (
        lxml.html.fragment_fromstring(body, True),
        lxml.html.fragment_fromstring(out, True),
    )
    assert [e.tag for e in before.iter()] == [e.tag for e in after.iter()]
    assert [dict(e.attrib) for e in before.iter()] == [dict(e.attrib) for e in after.iter()]
    for old, new in zip(before.iter("pre", "code"), after.iter("pre", "code"), strict=True):
        assert old.text_content() == new.text_content()
    prose = _url_free(_prose(after))
    assert re.search(r"[^\s\u202f?!][!?;]", prose) is None  # no mark glued to a word
    assert re.search(r"\s[!?;]", prose.replace(NN, "")) is None  # no breakable space before one
    assert "'" not in re.sub(r"\W'|'\W|^'|'$", "", prose)  # apostrophes inside words are ’


def _prose(root: lxml.html.HtmlElement) -> str:
    """The text, with each piece of code, pre and the like standing as one word: code."""
    verbatim = ("pre", "code", "kbd", "samp")
    texts = []
    for element in root.iter():
        in_verbatim = any(a.tag in verbatim for a in element.iterancestors())
        if element.tag in verbatim and not in_verbatim:
            texts.append("code")
        elif not in_verbatim and isinstance(element.tag, str):
            texts.append(element.text or "")
        if not in_verbatim:
            texts.append(element.tail or "")
    return "".join(texts)


def _url_free(text: str) -> str:
    return re.sub(r"(?:https?://|www\.)\S+|\S+@\S+", "", text)


def test_only_french_gets_french_typography() -> None:
    assert typeset("Why? Because!", "es") == "Why? Because!"
    assert typeset("Pourquoi?", "fr-CA") == f"Pourquoi{NN}?"


def test_drafts_are_set_in_french_typography(
    write_config: WriteConfig, upstream: UpstreamServer
) -> None:
    feed = (DATA / "torment-nexus-like.rss").read_bytes()
    config = write_config([{"url": upstream.add("/rss/", feed), "name": "The Torment Nexus"}])
    run_cli(config, "poll")
    drafts = json.loads(run_cli(config, "drafts", "list", "--json").stdout)
    musk = next(d for d in drafts if "OpenAI" in d["title"])

    draft = json.loads(run_cli(config, "drafts", "show", str(musk["id"]), "--json").stdout)

    assert f"OpenAI{NN}?" in draft["title"]
    assert re.search(r"\w[?!;]", lxml.html.fromstring(draft["body_html"]).text_content()) is None
