"""Per-newsletter settings in config.toml: ``[defaults]`` for every feed, a ``[[feeds]]``
table for its own; ``check-config`` names the feed and the key of every mistake, and
``aggregator feeds list --json`` shows each feed's settings and what it cost."""

from __future__ import annotations

import re
import subprocess
import warnings
from pathlib import Path

import lxml.html
import pytest
from conftest import WriteConfig, run_cli, run_cli_json
from newsroom import PASSWORD, log_in
from servers import LibreTranslateServer, UpstreamServer
from town_feeds import town_feed
from upstream_paths import REVIEW

from aggregator import config
from aggregator.store import Store
from aggregator.web.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

FEED = """
[translation]
engine = "google"

[defaults]
review = "auto"
exclude = ["category:sponsored"]

[[feeds]]
url = "https://first.example/feed"
name = "First"

[[feeds]]
url = "https://second.example/feed"
name = "Second"
review = "manual"
translate = "title"
full_text = "page"
selector = "article .post-body"
remove = [".share", "aside.newsletter-signup"]
include = ["title:weekly", "text:\\\\bAI\\\\b"]
headers = { Cookie = "env:SECOND_COOKIE", Authorization = "file:second-token" }
"""


@pytest.fixture(autouse=True)
def _second_cookie(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variables the configs' headers are read from, as the daemon's unit would set."""
    monkeypatch.setenv("SECOND_COOKIE", "session=abc")
    monkeypatch.setenv("LICENSED_COOKIE", "session=licensed")


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(path, "check-config", check=False)


def test_defaults_apply_to_every_feed_and_a_feed_key_wins(tmp_path: Path) -> None:
    (tmp_path / "second-token").write_text("Bearer s3cret\n", encoding="utf-8")
    path = tmp_path / "config.toml"
    path.write_text(FEED, encoding="utf-8")
    settings = config.load(path)
    first, second = settings.feeds
    assert (first.review, first.translate) == ("auto", "full")
    assert first.exclude == ("category:sponsored",)
    assert second.review == "manual"  # its own key wins over [defaults]
    assert second.exclude == ("category:sponsored",)  # the rest of [defaults] still applies
    assert second.remove == (".share", "aside.newsletter-signup")
    assert second.include == ("title:weekly", "text:\\bAI\\b")
    # A feed no longer in config.toml gets [defaults].
    assert settings.feed("https://gone.example/feed").review == "auto"
    # The header values stay where they are: the settings hold only where to read them.
    assert "s3cret" not in repr(settings) and "session=abc" not in repr(settings)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('review = "manual"', 'review = "automatic"'),
         "'feeds[1].review' must be one of 'manual', 'auto', got 'automatic'"),
        (('translate = "title"', 'translate = "headline"'),
         "'feeds[1].translate' must be one of 'full', 'title'"),
        (('full_text = "page"', 'full_text = "html"'),
         "'feeds[1].full_text' must be one of 'auto', 'feed', 'page'"),
        (('selector = "article .post-body"', 'selector = "article[class"'),
         "'feeds[1].selector' is not a CSS selector ('article[class'"),
        (('".share", ', '".share", "div > > p", '),
         "'feeds[1].remove[1]' is not a CSS selector ('div > > p'"),
        (('"title:weekly"', '"title:(weekly"'),
         "'feeds[1].include[0]': '(weekly' is not a regular expression"),
        (('exclude = ["category:sponsored"]', 'exclude = ["author:"]'),
         "'defaults.exclude[0]': 'author:' has no pattern to look for"),
        (('Cookie = "env:SECOND_COOKIE"', 'Cookie = "session=abc"'),
         "'feeds[1].headers.Cookie': a header is read from \"env:VARIABLE\" or \"file:PATH\","
         " never written in config.toml"),
        (('Cookie = "env:SECOND_COOKIE"', 'Cookie = "env:NOT_SET_ANYWHERE"'),
         "'feeds[1].headers.Cookie': the environment variable NOT_SET_ANYWHERE is not set"),
        (('Authorization = "file:second-token"', 'Authorization = "file:missing-token"'),
         "'feeds[1].headers.Authorization': cannot read"),
        (('Cookie = "env', '"Bad Header" = "env'),
         "'feeds[1].headers.Bad Header': 'Bad Header' is not an HTTP header name"),
        (('review = "auto"', 'reveiw = "auto"'),
         "unknown key 'defaults.reveiw' (did you mean 'defaults.review'?)"),
    ],
)  # fmt: skip
def test_check_config_names_the_feed_and_the_key(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    (tmp_path / "second-token").write_text("Bearer s3cret\n", encoding="utf-8")
    old, new = change
    assert old in FEED
    path = tmp_path / "config.toml"
    path.write_text(FEED.replace(old, new, 1), encoding="utf-8")
    result = check_config(path)
    assert result.returncode == 1, result.stdout
    assert expected in result.stderr
    assert str(path) in result.stderr
    # What is wrong is named; a secret never is.
    assert "session=abc" not in result.stderr and "s3cret" not in result.stderr


def test_the_same_file_passes_once_its_mistakes_are_fixed(tmp_path: Path) -> None:
    (tmp_path / "second-token").write_text("Bearer s3cret\n", encoding="utf-8")
    path = tmp_path / "config.toml"
    path.write_text(FEED, encoding="utf-8")
    result = check_config(path)
    assert result.returncode == 0, result.stderr
    assert "2 feeds" in result.stdout


def test_feeds_list_and_the_desk_show_each_feed_settings_and_what_its_drafts_cost(
    tmp_path: Path,
    write_config: WriteConfig,
    upstream: UpstreamServer,
    libretranslate: LibreTranslateServer,
) -> None:
    (tmp_path / "review-password").write_text(PASSWORD + "\n", encoding="utf-8")
    (tmp_path / "api-tokens").write_text("", encoding="utf-8")
    upstream.add("/feed.xml", town_feed(upstream.base_url, 2), content_type="application/rss+xml")
    path = write_config(
        [{"url": upstream.url("/feed.xml"), "name": "Weekly", "full_text": "feed"}],
        extra=f'{REVIEW}\n[defaults]\nexclude = ["title:sponsored"]',
    )
    run_cli(path, "poll")
    [feed] = run_cli_json(path, "feeds", "list", "--json")  # type: ignore[misc]
    assert feed["settings"]["full_text"] == "feed"
    assert feed["settings"]["exclude"] == ["title:sponsored"]
    assert feed["settings"]["review"] == "manual"
    drafts = run_cli_json(path, "drafts", "list", "--json")
    assert isinstance(drafts, list) and len(drafts) == 2
    sent = sum(len(text) for text in libretranslate.texts)
    today, month = feed["spend"]["today"], feed["spend"]["month"]
    assert today["characters"] == sent > 0
    assert today["requests"] >= 2
    assert month == today  # the same drafts: all were translated today
    table = run_cli(path, "feeds", "list").stdout
    assert "Weekly" in table

    settings = config.load(path)
    store = Store.from_settings(settings)
    try:
        client = TestClient(
            create_app(settings, store), base_url=settings.server.base_url, follow_redirects=False
        )
        assert client.get("/review/feeds").status_code == 401
        log_in(client)
        page = client.get("/review/feeds")
        assert page.status_code == 200, page.text
    finally:
        store.close()
    [row] = lxml.html.fromstring(page.text).find_class("feed-row")
    shown = row.text_content()
    assert "Weekly" in shown and "title:sponsored" in shown
    # The desk speaks French here: the feed's text is taken from the feed, as configured.
    assert "le flux" in row.find_class("feed-settings")[0].text_content()
    [today] = row.find_class("spend-today")
    assert f"{sent}caractères" in re.sub(r"\s", "", today.text_content())


def test_the_readme_persona_configs_pass_check_config(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Per newsletter", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```toml\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 3
    for number, block in enumerate(blocks):
        path = tmp_path / f"persona-{number}.toml"
        path.write_text(block, encoding="utf-8")
        result = check_config(path)
        assert result.returncode == 0, result.stderr
        assert "1 feeds" in result.stdout
