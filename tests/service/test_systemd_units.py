"""The units in systemd/: the notify protocol, state, secrets, and hardening scored by
`systemd-analyze security --offline=yes` (at most 1.5; Miniflux's packaged unit scores 5.7)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli

from aggregator import config as config_module

SYSTEMD = Path(__file__).parents[2] / "systemd"
UNITS = {
    "aggregator.service": "run",
    "aggregator-worker.service": "worker",
    "aggregator-web.service": "serve",
}
MAX_EXPOSURE = 1.5


def directives(unit: str) -> dict[str, list[str]]:
    """Every KEY=value of the unit (comments skipped), values of repeated keys in order."""
    found: dict[str, list[str]] = {}
    for line in (SYSTEMD / unit).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key, []).append(value)
    return found


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_unit_speaks_the_notify_protocol_and_keeps_state_and_secrets_apart(unit: str) -> None:
    d = directives(unit)
    assert d["Type"] == ["notify"]
    assert d["NotifyAccess"] == ["main"]
    assert int(d["WatchdogSec"][0]) >= 20  # heartbeats every WatchdogSec/2
    assert d["StateDirectory"] == ["aggregator"]
    assert d["DynamicUser"] == ["yes"] and d["User"] == ["aggregator"]
    assert d["EnvironmentFile"] == ["-/etc/aggregator/aggregator.env"]
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["Restart"] == ["on-failure"]
    # The daemon exits within 10 s of SIGTERM: systemd must not kill it before.
    assert int(d["TimeoutStopSec"][0]) > 10
    command = d["ExecStart"][0].split()
    assert command[1:4] == ["--config", "/etc/aggregator/config.toml", UNITS[unit]]


def test_the_commands_the_units_start_exist(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("", encoding="utf-8")
    listed = run_cli(config, "--help").stdout
    for command in UNITS.values():
        assert re.search(rf"^\s+{command}\s", listed, re.M), f"no `aggregator {command}`"


def test_environment_file_example_holds_no_secret_and_names_real_variables() -> None:
    example = (SYSTEMD / "aggregator.env.example").read_text(encoding="utf-8")
    assignments = [line for line in example.splitlines() if re.match(r"#?[A-Z_]+=", line)]
    assert assignments and all(line.startswith("#") and line.endswith("=") for line in assignments)
    names = {line.lstrip("#").split("=")[0] for line in assignments}
    assert {"AGGREGATOR_DEEPL_API_KEY", "AGGREGATOR_REVIEW_PASSWORD", "PGPASSWORD"} <= names


def test_an_api_key_can_come_from_a_systemd_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "deepl_api_key").write_text("secret-from-credential\n", encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text('[translation]\nengine = "deepl"\n', encoding="utf-8")
    with pytest.raises(
        config_module.ConfigError, match=re.escape("needs 'translation.deepl.api_key'")
    ):
        config_module.load(config)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    settings = config_module.load(config)
    assert settings.translation.deepl.api_key == "secret-from-credential"


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found:
        return found
    reason = "systemd-analyze is not installed (Debian package systemd)"
    if os.environ.get("AGGREGATOR_TEST_STRICT") == "1":
        pytest.fail(f"{reason}; AGGREGATOR_TEST_STRICT=1 requires it")
    pytest.skip(reason)


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_unit_hardening_scores_at_most_1_5(unit: str) -> None:
    analyze = _systemd_analyze()
    result = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(SYSTEMD / unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, f"no score in:\n{result.stdout}\n{result.stderr}"
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout
