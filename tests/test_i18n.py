"""The editor's language: the desk and the CLI speak French through the Babel catalogue, with
its plurals; every message has its translation; the shipped .mo is the .po compiled; source
names are the configured ones."""

from __future__ import annotations

import io
import json
from pathlib import Path

import lxml.html
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from conftest import WriteConfig, run_cli
from newsroom import COURTS_TITLE, HOSTILE_TITLE_START, MUSK_TITLE, Newsroom, log_in

import aggregator
from aggregator import config as config_module
from aggregator.i18n import messages

PACKAGE = Path(aggregator.__file__).parent
LOCALE = PACKAGE / "locale"
FRENCH_PO = LOCALE / "fr" / "LC_MESSAGES" / "aggregator.po"


def queue_counts(newsroom: Newsroom) -> str:
    client = newsroom.client()
    log_in(client)
    page = lxml.html.fromstring(client.get("/review/").text)
    return " ".join(page.findtext(".//h1/small").split())


def test_the_queue_counts_in_french_with_singular_and_plural(newsroom: Newsroom) -> None:
    newsroom.approve(MUSK_TITLE)
    one = queue_counts(newsroom)
    assert one == "4 à relire · 1 publié · 0 rejeté"

    newsroom.approve(COURTS_TITLE)
    assert queue_counts(newsroom) == "3 à relire · 2 publiés · 0 rejeté"


def test_the_draft_page_and_the_audit_trail_are_french(newsroom: Newsroom) -> None:
    musk = newsroom.approve(MUSK_TITLE)
    client = newsroom.client()
    log_in(client)

    page = client.get(f"/review/drafts/{musk.id}").text
    assert '<html lang="fr">' in page
    assert f"Brouillon n° {musk.id}" in page and "caractères, il y a" in page
    assert "Retirer de la publication" in page and "Voir l'article publié" in page
    audit = lxml.html.fromstring(client.get("/review/audit").text)
    cells = [td.text_content() for td in audit.iter("td")]
    assert "approuvé" in cells and "traduit" in cells
    assert any(cell.startswith(f"n° {musk.id} — ") for cell in cells)


def test_another_language_is_a_setting_away(newsroom: Newsroom) -> None:
    """``[review] language = "en"``: the same desk and CLI in the msgids' language."""
    text = newsroom.config.read_text(encoding="utf-8")
    newsroom.config.write_text(text.replace("[review]\n", '[review]\nlanguage = "en"\n'), "utf-8")
    settings = config_module.load(newsroom.config)
    english = Newsroom(newsroom.config, settings, newsroom.store, newsroom.upstream)
    english.approve(MUSK_TITLE)

    assert queue_counts(english) == "4 to review · 1 published · 0 rejected"
    status = run_cli(english.config, "status").stdout
    assert "drafts:  4 pending, 1 approved, 0 rejected" in status
    assert "feeds:   3 feeds (0 failing)" in status


def test_an_unknown_language_is_refused_with_the_key_named(write_config: WriteConfig) -> None:
    config = write_config([], extra='[review]\nlanguage = "tlh"\n')
    refused = run_cli(config, "check-config", check=False)
    assert refused.returncode == 1
    assert "'review.language' must be one of en, fr" in refused.stderr


def test_cli_status_counts_in_french(newsroom: Newsroom) -> None:
    newsroom.approve(MUSK_TITLE)
    status = run_cli(newsroom.config, "status").stdout
    assert "brouillons : 4 à relire, 1 publié, 0 rejeté" in status
    assert "flux :      3 flux (0 en échec)" in status

    newsroom.approve(COURTS_TITLE)
    status = run_cli(newsroom.config, "status").stdout
    assert "brouillons : 3 à relire, 2 publiés, 0 rejeté" in status


def test_one_feed_is_one_flux(write_config: WriteConfig) -> None:
    config = write_config([{"url": "http://127.0.0.1:9/rss/", "name": "The Torment Nexus"}])
    status = run_cli(config, "status").stdout
    assert "flux :      1 flux (0 en échec)" in status
    assert "The Torment Nexus : pas encore vérifié ; vérifié jamais" in status


def test_cli_outcomes_and_warnings_are_french(newsroom: Newsroom) -> None:
    musk = newsroom.redraft(
        newsroom.draft(MUSK_TITLE),
        warnings=(
            "block 3: edited by hand, and its original changed since: the edit is kept; "
            "compare it with the new original",
            "something the catalogue does not know",
        ),
    )
    shown = run_cli(newsroom.config, "drafts", "show", str(musk.id)).stdout
    assert "avertissement : bloc 3 : modifié à la main, et son original a changé depuis" in shown
    assert "avertissement : something the catalogue does not know" in shown
    approved = run_cli(newsroom.config, "drafts", "approve", str(musk.id), "--as", "Camille")
    assert f"brouillon {musk.id} approuvé : {musk.title}" in approved.stdout
    # The machine-readable output keeps its English values.
    as_json = json.loads(run_cli(newsroom.config, "drafts", "show", str(musk.id), "--json").stdout)
    assert as_json["status"] == "approved"
    assert as_json["warnings"][0].startswith("block 3: edited by hand")


def test_source_names_are_the_configured_ones(newsroom: Newsroom) -> None:
    """The hostile newsletter calls itself "Hostile <script>…</script> Weekly"; config.toml
    names it "Hostile Weekly": that is what the editor, the credit and the feeds show."""
    hostile = newsroom.approve(HOSTILE_TITLE_START)
    assert hostile.feed == "Hostile Weekly" and hostile.feed_title != hostile.feed
    client = newsroom.client()
    log_in(client)

    draft_page = lxml.html.fromstring(client.get(f"/review/drafts/{hostile.id}").text)
    facts = draft_page.find_class("facts")[0]
    assert facts.findall("dd")[0].text_content() == "Hostile Weekly"
    article = client.get(f"/articles/{hostile.id}").text
    assert "dans Hostile Weekly." in article and "feed title" not in article
    atom = client.get("/feeds/published.atom").text
    assert "<title>Hostile Weekly</title>" in atom
    feed = client.get("/feeds/published.json").json()
    assert feed["items"][0]["_source"]["title"] == "Hostile Weekly"
    listed = run_cli(newsroom.config, "drafts", "list", "--status", "approved").stdout
    assert "Hostile Weekly" in listed and "feed title" not in listed


def test_every_message_of_the_code_and_templates_is_in_the_french_catalogue() -> None:
    """Babel's own extraction over the package, as `pybabel extract` runs it: a new string
    wrapped for translation cannot be left untranslated."""
    with (LOCALE / "babel.cfg").open(encoding="utf-8") as config:
        method_map, options_map = parse_mapping_cfg(config)
    found = {
        message
        for _file, _line, message, _comments, _context in extract_from_dir(
            PACKAGE.parent,
            method_map,
            options_map,
            keywords={"_": None, "gettext": None, "ngettext": (1, 2), "N_": None},
        )
    }
    keys = {m if isinstance(m, str) else m[0] for m in found}
    assert len(keys) > 150
    catalogue = read_po(FRENCH_PO.open("rb"))
    untranslated = [k for k in keys if k not in catalogue or not _translated(catalogue[k].string)]
    assert untranslated == []
    unused = [
        m.id for m in catalogue if m.id and (m.id if isinstance(m.id, str) else m.id[0]) not in keys
    ]
    assert unused == []


def _translated(value: object) -> bool:
    return all(value) if isinstance(value, tuple) else bool(value)


def test_the_shipped_mo_is_the_po_compiled() -> None:
    for po in LOCALE.glob("*/LC_MESSAGES/aggregator.po"):
        compiled = io.BytesIO()
        write_mo(compiled, read_po(po.open("rb")))
        assert po.with_suffix(".mo").read_bytes() == compiled.getvalue(), (
            f"{po} changed: run `pybabel compile -d aggregator/locale -D aggregator`"
        )


def test_french_durations_and_plurals_come_from_babel() -> None:
    french = messages("fr")
    assert french.ngettext("%(num)s feed", "%(num)s feeds", 2) == "2 flux"
    assert french.ngettext("%(num)s approved", "%(num)s approved", 0) == "0 publié"
    assert french.duration(-3 * 3600 - 300, relative=True) == "il y a 3 h"
    assert french.duration(300, relative=True) == "dans 5 min"
    assert messages("en").duration(-120, relative=True) == "2 min. ago"
