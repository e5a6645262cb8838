"""The review commands as an editor uses them: list, show, edit, approve, reject."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import WriteConfig, run_cli, run_cli_json

from aggregator import config as config_module
from aggregator.cli.base import COMMAND_MODULES, Invocation
from aggregator.cli.base import main as cli_main
from aggregator.models import DraftStatus
from aggregator.polling.parse import ParsedEntry
from aggregator.store import MIGRATIONS, DraftContent, Store
from aggregator.store.base import newest_migration

NOW = datetime(2025, 2, 12, 15, 0, tzinfo=UTC)


def seed_draft(config_path: Path, title: str = "Elon Musk veut-il acheter OpenAI ?") -> int:
    """One feed, one entry and its pending draft, written through the store as the pipeline does."""
    settings = config_module.load(config_path)
    store = Store.from_settings(settings)
    try:
        store.upgrade()
        store.sync_feeds(settings.feeds, settings, NOW)
        feed = store.claim_due_feeds(NOW, lease=NOW - NOW, force=True)[0]
        entry = ParsedEntry(
            key=f"guid-{title}",
            url="https://torment-nexus.example/musk-openai/",
            title="Does Elon Musk want to buy OpenAI?",
            author="Mathew Ingram",
            published_at=NOW,
            updated_at=None,
            summary_html=None,
            content_html="<p>English body.</p>",
            content_hash=f"hash-{title}",
        )
        store.record_feed_success(
            feed.id, now=NOW, next_check_at=NOW, entries=[entry], title="The Torment Nexus",
            site_url="https://torment-nexus.example/", etag=None, last_modified=None,
            body_hash=None, ttl_seconds=None,
        )  # fmt: skip
        work = store.claim_entries(NOW, lease=NOW - NOW, limit=10)
        target = next(w for w in work if w.title == entry.title and w.id not in _drafted(store))
        store.save_extracted(target.id, full_html="<p>English body.</p>", source="feed",
                             language="en", now=NOW)  # fmt: skip
        return store.save_draft(
            target.id,
            DraftContent(
                title=title, body_html="<p>Corps en français.</p>", source_language="en",
                target_language="fr", engine="libre", characters=40, requests=1,
            ),
            now=NOW,
        )  # fmt: skip
    finally:
        store.close()


def _drafted(store: Store) -> set[int]:
    return {d.id for d in store.list_drafts()}


@pytest.fixture
def config(write_config: WriteConfig) -> Path:
    return write_config([{"url": "http://127.0.0.1:9/rss/", "name": "The Torment Nexus"}])


def test_list_and_show_give_the_public_json_shape(config: Path) -> None:
    draft_id = seed_draft(config)
    listed = run_cli_json(config, "drafts", "list", "--json")
    assert isinstance(listed, list) and len(listed) == 1
    assert {"id", "status", "title", "original_url", "feed", "created_at"} <= set(listed[0])
    assert listed[0]["status"] == "pending"
    shown = run_cli_json(config, "drafts", "show", str(draft_id), "--json")
    assert isinstance(shown, dict)
    assert shown["body_html"] == "<p>Corps en français.</p>"
    assert shown["original_title"] == "Does Elon Musk want to buy OpenAI?"
    assert shown["author"] == "Mathew Ingram"
    assert shown["feed"] == "The Torment Nexus"
    assert shown["engine"] == "libre"
    assert shown["published_at"] == "2025-02-12T15:00:00Z"
    assert shown["warnings"] == []
    assert "article original de Mathew Ingram" in shown["credit_html"]
    assert "pas encore relue" in shown["credit_html"]


def test_approve_names_the_reviewer_and_is_idempotent(config: Path) -> None:
    draft_id = seed_draft(config)
    run_cli(config, "drafts", "approve", str(draft_id), "--as", "Camille")
    run_cli(config, "drafts", "approve", str(draft_id), "--as", "Camille")
    shown = run_cli_json(config, "drafts", "show", str(draft_id), "--json")
    assert isinstance(shown, dict)
    assert shown["status"] == "approved"
    assert shown["reviewed_by"] == "Camille"
    assert "relue par Camille" in shown["credit_html"]
    assert run_cli_json(config, "drafts", "list", "--json") == []
    approved = run_cli_json(config, "drafts", "list", "--status", "approved", "--json")
    assert isinstance(approved, list) and [d["id"] for d in approved] == [draft_id]


def test_every_command_dates_what_it_does_by_the_clock_it_is_given(config: Path) -> None:
    """One clock for a run: a caller (here a test) passes its own and the review action,
    the audit trail and the feeds' health all read it."""
    draft_id = seed_draft(config)
    moment = datetime(2030, 6, 1, 9, 30, tzinfo=UTC)
    runner = CliRunner()
    args = ["--config", str(config), "drafts", "approve", str(draft_id), "--as", "Camille"]
    approved = runner.invoke(cli_main, args, obj=Invocation(clock=lambda: moment))
    assert approved.exit_code == 0, approved.output
    shown = run_cli_json(config, "drafts", "show", str(draft_id), "--json")
    assert isinstance(shown, dict)
    assert shown["approved_at"] == "2030-06-01T09:30:00Z"


def test_a_rejected_draft_cannot_be_approved_and_the_error_says_why(config: Path) -> None:
    draft_id = seed_draft(config)
    run_cli(config, "drafts", "reject", str(draft_id))
    result = run_cli(config, "drafts", "approve", str(draft_id), check=False)
    assert result.returncode == 1
    assert f"draft {draft_id} is rejected" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_draft_is_a_clear_error(config: Path) -> None:
    seed_draft(config)
    result = run_cli(config, "drafts", "show", "999", check=False)
    assert result.returncode == 1
    assert "no draft with id 999" in result.stderr


def test_edit_title_and_body_from_a_file(config: Path, tmp_path: Path) -> None:
    draft_id = seed_draft(config)
    body = tmp_path / "body.html"
    body.write_text("<p>Corps relu et corrigé.</p>", encoding="utf-8")
    run_cli(config, "drafts", "edit", str(draft_id), "--title", "Titre corrigé",
            "--body-file", str(body))  # fmt: skip
    shown = run_cli_json(config, "drafts", "show", str(draft_id), "--json")
    assert isinstance(shown, dict)
    assert shown["title"] == "Titre corrigé"
    assert shown["body_html"] == "<p>Corps relu et corrigé.</p>"
    assert shown["status"] == "pending"


def test_edit_refuses_what_the_desk_refuses_and_strips_what_it_strips(
    config: Path, tmp_path: Path
) -> None:
    draft_id = seed_draft(config)
    before = run_cli_json(config, "drafts", "show", str(draft_id), "--json")

    blank = run_cli(config, "drafts", "edit", str(draft_id), "--title", "   ", check=False)
    assert blank.returncode == 1
    assert blank.stderr.strip() == "error: the title is empty"
    assert run_cli_json(config, "drafts", "show", str(draft_id), "--json") == before

    hostile = tmp_path / "hostile.html"
    hostile.write_text(
        '<p onclick="steal()">Corps <script>alert(1)</script>relu.</p>', encoding="utf-8"
    )
    run_cli(config, "drafts", "edit", str(draft_id), "--title", "Titre\u202e spoof\x07",
            "--body-file", str(hostile))  # fmt: skip
    shown = run_cli_json(config, "drafts", "show", str(draft_id), "--json")
    assert isinstance(shown, dict)
    assert shown["title"] == "Titre spoof"
    assert shown["body_html"] == "<p>Corps relu.</p>"


def test_edit_without_options_opens_the_editor(config: Path, tmp_path: Path) -> None:
    draft_id = seed_draft(config)
    editor = tmp_path / "editor.py"
    editor.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "path = sys.argv[1]\n"
        "text = open(path, encoding='utf-8').read()\n"
        "text = text.replace('Elon Musk veut-il acheter OpenAI ?', 'Musk et OpenAI')\n"
        "text = text.replace('Corps en français.', 'Corps revu dans l’éditeur.')\n"
        "open(path, 'w', encoding='utf-8').write(text)\n",
        encoding="utf-8",
    )
    editor.chmod(editor.stat().st_mode | stat.S_IXUSR)
    os.environ["EDITOR"] = str(editor)
    try:
        run_cli(config, "drafts", "edit", str(draft_id))
    finally:
        del os.environ["EDITOR"]
    shown = run_cli_json(config, "drafts", "show", str(draft_id), "--json")
    assert isinstance(shown, dict)
    assert shown["title"] == "Musk et OpenAI"
    assert shown["body_html"] == "<p>Corps revu dans l’éditeur.</p>"


def test_feeds_export_then_import_round_trips(config: Path, tmp_path: Path) -> None:
    opml = tmp_path / "feeds.opml"
    opml.write_text(run_cli(config, "feeds", "export").stdout, encoding="utf-8")
    new_install = tmp_path / "elsewhere"
    new_install.mkdir()
    printed = run_cli(new_install / "config.toml", "feeds", "import", str(opml)).stdout
    assert '[[feeds]]\nurl = "http://127.0.0.1:9/rss/"\nname = "The Torment Nexus"' in printed
    # Into the config it came from, every feed is there already.
    again = run_cli(config, "feeds", "import", str(opml))
    assert again.stdout == ""
    assert "laissé de côté, déjà configuré : http://127.0.0.1:9/rss/" in again.stderr


def test_import_of_a_file_that_is_not_opml_fails_clearly(config: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.opml"
    bogus.write_text("<opml><body><outline text='no url'/>", encoding="utf-8")
    result = run_cli(config, "feeds", "import", str(bogus), check=False)
    assert result.returncode == 1
    assert "not a readable OPML file" in result.stderr


def test_status_counts_drafts(config: Path) -> None:
    seed_draft(config)
    printed = run_cli(config, "status").stdout
    assert "brouillons : 1 à relire, 0 publié, 0 rejeté" in printed  # French plurals
    feed = json.loads(run_cli(config, "feeds", "list", "--json").stdout)[0]
    assert (feed["status"], feed["entries"], feed["title"]) == ("ok", 1, "The Torment Nexus")


# ------------------------------------------------------------------ what a command loads

_RECORD_MODULES = """
import json, sys
from aggregator.cli import main
try:
    main(sys.argv[2:])
    code = 0
except SystemExit as exc:
    code = exc.code or 0
with open(sys.argv[1], "w", encoding="utf-8") as record:
    json.dump({"code": code, "modules": sorted(sys.modules)}, record)
"""
# What the editor's quick commands never wait for: the web stack, the article extractor,
# the migration tool (and, for --help, the database layer and the feed parser).
HEAVY = ("starlette", "uvicorn", "trafilatura", "alembic", "jinja2", "httpx", "apscheduler")


def modules_loaded_by(directory: Path, *args: str) -> set[str]:
    """The top-level packages in sys.modules after ``aggregator ARGS…`` ran in a new process."""
    record = directory / "modules.json"
    subprocess.run(
        [sys.executable, "-c", _RECORD_MODULES, str(record), *args],
        cwd=directory, capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    outcome = json.loads(record.read_text(encoding="utf-8"))
    assert outcome["code"] == 0, f"aggregator {' '.join(args)} exited {outcome['code']}"
    return {name.split(".")[0] for name in outcome["modules"]}


def test_help_loads_neither_the_database_layer_nor_the_web_stack(tmp_path: Path) -> None:
    loaded = modules_loaded_by(tmp_path, "--help")
    assert loaded.isdisjoint({*HEAVY, "sqlalchemy", "feedparser", "lxml", "rich"}), loaded
    listed = run_cli(tmp_path / "config.toml", "--help").stdout
    for command in COMMAND_MODULES:
        assert f"\n  {command} " in listed


def test_drafts_list_on_a_current_database_loads_no_migration_tool(
    config: Path, tmp_path: Path
) -> None:
    seed_draft(config)  # the schema is at the newest migration
    loaded = modules_loaded_by(tmp_path, "--config", str(config), "drafts", "list", "--json")
    assert "sqlalchemy" in loaded and loaded.isdisjoint(HEAVY), loaded & set(HEAVY)
    assert "lxml" not in loaded  # the publishing stage: the table's source names only


def test_a_list_of_drafts_says_what_each_draft_says_but_its_body(config: Path) -> None:
    """The lists (``drafts list``, ``GET /api/drafts``) read summaries, not whole drafts."""
    for title in ("Premier", "Deuxième", "Troisième"):
        seed_draft(config, title)
    store = Store.from_settings(config_module.load(config))
    try:
        whole, summaries = store.list_drafts(), store.draft_summaries()
        pending = store.draft_summaries(DraftStatus.PENDING)
        assert store.draft_summaries(DraftStatus.APPROVED) == []
    finally:
        store.close()
    assert [d.title for d in summaries] == [d.title for d in whole] == [d.title for d in pending]
    assert len(whole) == 3 and all(d.body_html for d in whole)
    assert summaries == [dataclasses.replace(d, body_html="") for d in whole]


def test_each_command_is_registered_by_the_module_that_loads_it() -> None:
    for name in sorted(set(COMMAND_MODULES.values())):
        importlib.import_module(f"aggregator.cli.{name}")
    assert set(cli_main.commands) == set(COMMAND_MODULES)
    for command, module in COMMAND_MODULES.items():
        assert cli_main.commands[command].callback.__module__ == f"aggregator.cli.{module}"


def alembic_config(**attributes: object) -> Any:
    from alembic.config import Config

    migrations = Config()
    migrations.set_main_option("script_location", str(MIGRATIONS))
    migrations.attributes.update(attributes)
    return migrations


def test_newest_migration_from_the_file_names_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [newest_migration()]


def test_a_database_one_migration_behind_is_upgraded_by_a_read_command(config: Path) -> None:
    from alembic import command

    seed_draft(config)
    store = Store.from_settings(config_module.load(config))
    try:
        with store.engine.begin() as connection:
            command.downgrade(alembic_config(connection=connection), "-1")
        listed = run_cli_json(config, "drafts", "list", "--json")
        with store.engine.connect() as connection:
            version = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            assert list(version.scalars()) == [newest_migration()]
    finally:
        store.close()
    assert isinstance(listed, list)  # read through the newest schema
