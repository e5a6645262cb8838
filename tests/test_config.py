"""config.toml -> settings: every mistake is a ConfigError naming the key and the file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator import config
from aggregator.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    """``aggregator --config PATH check-config``, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "aggregator", "--config", str(path), "check-config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# The checkout's config.toml is the user's to edit (the README says so): no test reads it.
# What is shipped is checked through copies that a user's edits do not touch.


def test_the_readme_config_is_valid_and_follows_the_torment_nexus(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The configuration", 1)[1]
    block = re.search(r"```toml\n(.*?)```", section, re.DOTALL)
    assert block, "README.md has no ```toml block under 'The configuration'"
    settings = config.load(write(tmp_path, block.group(1)))
    assert settings.translation.engine == "google"
    assert settings.translation.target_language == "fr"
    assert settings.database.url.startswith("sqlite:///")
    assert [f.url for f in settings.feeds] == ["https://torment-nexus.mathewingram.com/rss/"]
    assert settings.feeds[0].interval == 30 * 60


def test_the_readme_llm_config_passes_check_config(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Translating with an LLM", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```toml\n(.*?)```", section, re.DOTALL)
    assert block, "README.md has no ```toml block under 'Translating with an LLM'"
    path = write(tmp_path, block.group(1))
    result = check_config(path)
    assert result.returncode == 0, result.stderr
    assert "engine llm" in result.stdout
    llm = config.load(path).translation.llm
    assert (llm.base_url, llm.model, llm.headline) == (
        "http://127.0.0.1:11434/v1",
        "mistral-small",
        "adapt",
    )
    assert [feed.engine for feed in config.load(path).feeds] == ["", "google"]
    # Every endpoint the section names is one the check accepts.
    for base_url in re.findall(r'base_url = "([^"]+)"', section):
        config.load(write(tmp_path, block.group(1).replace(llm.base_url, base_url)))
    # The named instance's block, added to the first, gives its feed its own engine.
    named = re.findall(r"```toml\n(.*?)```", section, re.DOTALL)[1]
    settings = config.load(write(tmp_path, block.group(1) + "\n" + named))
    assert settings.translation.llms["premium"].model == "gpt-4o"
    assert settings.feed_engine("https://licensed.example.com/rss/") == "premium"


def test_the_shipped_config_as_committed_passes_check_config(tmp_path: Path) -> None:
    # `git show HEAD:config.toml`: the file as shipped, whatever the working copy now says.
    shown = subprocess.run(
        ["git", "-C", str(REPO), "show", "HEAD:config.toml"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if shown.returncode != 0:
        pytest.skip(f"not a git checkout with a committed config.toml: {shown.stderr.strip()}")
    path = write(tmp_path, shown.stdout)
    result = check_config(path)
    assert result.returncode == 0, result.stderr
    assert f"{path}: ok" in result.stdout


def test_defaults_apply_to_an_empty_file(tmp_path: Path) -> None:
    settings = config.load(write(tmp_path, ""))
    assert settings.server.port == 8080
    assert settings.fetch.allow_private_networks is False
    assert settings.fetch.timeout == 20
    assert settings.translation.timeout == 30
    assert settings.feeds == ()


def test_relative_sqlite_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    settings = config.load(write(tmp_path, '[database]\nurl = "sqlite:///data/a.db"\n'))
    assert settings.database.url == f"sqlite:///{tmp_path.resolve()}/data/a.db"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[server]\nprot = 8080\n", "unknown key 'server.prot' (did you mean 'server.port'?)"),
        ("[databse]\n", "unknown key 'databse' (did you mean 'database'?)"),
        ('[server]\nport = "8080"\n', "'server.port' must be an integer, got str '8080'"),
        ("[fetch]\nallow_private_networks = 1\n", "'fetch.allow_private_networks' must be true"),
        ("[[feeds]]\nname = 'x'\n", "missing required key 'feeds[0].url'"),
        ("[[feeds]]\nurl = 'ftp://x/feed'\n", "'feeds[0].url' must be an http(s) URL"),
        ('[[feeds]]\nurl = "https://a/"\ninterval = "soon"\n', "'feeds[0].interval'"),
        ('[translation]\nengine = "babel"\n', "'translation.engine' must be one of"),
        ('[translation]\nengine = "libre"\n', "missing required key 'translation.libre.url'"),
        (
            '[[feeds]]\nurl = "https://a/"\nengine = "libre"\n',
            "missing required key 'translation.libre.url' for 'feeds[0].engine'",
        ),
        ('[translation]\nsource_languages = "en"\n', "'translation.source_languages' must be a"),
        (
            '[translation.llms.premium]\nbase_url = "http://127.0.0.1:9/v1"\n',
            "missing required key 'translation.llms.premium.model'",
        ),
        (
            '[translation.llms.google]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\n',
            "[translation.llms.google]: an engine's name is lowercase letters",
        ),
        (
            '[translation.llms.premium]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\n'
            '[[feeds]]\nurl = "https://a/"\nengine = "premuim"\n',
            "'feeds[0].engine' must be one of google, libre, deepl, microsoft, mymemory, llm,"
            " premium, got 'premuim'",
        ),
        ("[server\n", "not valid TOML"),
    ],
)
def test_mistakes_name_the_key_and_the_file(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_a_feed_listed_twice_is_refused(tmp_path: Path) -> None:
    text = '[[feeds]]\nurl = "https://a.example/rss"\n[[feeds]]\nurl = "https://a.example/rss"\n'
    with pytest.raises(ConfigError, match="listed twice"):
        config.load(write(tmp_path, text))


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        config.load(tmp_path / "nowhere.toml")


def test_api_keys_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGGREGATOR_DEEPL_API_KEY", "secret-from-env")
    settings = config.load(write(tmp_path, '[translation]\nengine = "deepl"\n'))
    assert settings.translation.deepl.api_key == "secret-from-env"


def test_deepl_without_a_key_says_where_to_put_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGGREGATOR_DEEPL_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="AGGREGATOR_DEEPL_API_KEY"):
        config.load(write(tmp_path, '[translation]\nengine = "deepl"\n'))


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), (45, 45)]
)
def test_durations(text: str | int, seconds: float) -> None:
    assert config.parse_duration(text) == seconds


def test_config_option_env_and_default_are_taken_in_that_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGGREGATOR_CONFIG", str(tmp_path / "from-env.toml"))
    assert config.config_path("explicit.toml") == Path("explicit.toml")
    assert config.config_path() == tmp_path / "from-env.toml"
    monkeypatch.delenv("AGGREGATOR_CONFIG")
    assert config.config_path() == Path("config.toml")


def test_check_config_command_reports_the_error_and_exits_1(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nhots = 'x'\n")
    result = subprocess.run(
        [sys.executable, "-m", "aggregator", "--config", str(path), "check-config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "unknown key 'server.hots' (did you mean 'server.host'?)" in result.stderr
    assert "Traceback" not in result.stderr
