"""Shared fixtures: the local upstream and translation servers, a config writer, a CLI runner.

Everything runs on 127.0.0.1; the aggregator is driven as a user drives it, through
``python -m aggregator`` and HTTP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from browser import browser  # noqa: F401 - fixture: Debian's Chromium, one per module
from newsroom import newsroom, newsroom_template  # noqa: F401 - fixtures
from pg import postgres_database, postgres_server, postgres_url  # noqa: F401 - fixtures
from servers import LibreTranslateServer, UpstreamServer, config_toml, free_port

DATA_DIR = Path(__file__).parent / "data"
CLI_TIMEOUT_SECONDS = 120
SERVER_START_DEADLINE_SECONDS = 30

WriteConfig = Callable[..., Path]


def run_cli(
    config_path: Path | str, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m aggregator --config CONFIG ARGS…`` as a user would, in the config's dir.

    With ``check``, a non-zero exit fails the test and shows the command's output.
    """
    config = Path(config_path)
    command = [sys.executable, "-m", "aggregator", "--config", str(config), *args]
    result = subprocess.run(
        command,
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"`aggregator {' '.join(args)}` exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
    return result


def children_running(module: str) -> set[int]:
    """Pids of this process's children started as ``python -m module`` (Linux /proc)."""
    found = set()
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        with open(f"/proc/{os.getpid()}/task/{task}/children", "rb") as children:
            for pid in children.read().split():
                with open(f"/proc/{int(pid)}/cmdline", "rb") as command:
                    if module.encode() in command.read():
                        found.add(int(pid))
    return found


def run_cli_json(config_path: Path | str, *args: str) -> object:
    """Run a ``--json`` command and decode its stdout."""
    result = run_cli(config_path, *args)
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(
            f"`aggregator {' '.join(args)}` did not print JSON ({error}):\n{result.stdout}"
        ) from None


@contextmanager
def aggregator_process(
    config_path: Path | str, base_url: str, command: str = "serve"
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``aggregator serve`` (or ``run``), wait until GET /healthz answers 200, stop it after.

    Its output goes to ``<command>.log`` beside the config, quoted if it fails to start.
    """
    config = Path(config_path)
    log_path = config.parent / f"{command}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "--config", str(config), command],
            cwd=config.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_healthy(process, base_url, log_path)
            yield process
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as systemd stops the service; SIGKILL if it is not gone in 15 s."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


def _wait_until_healthy(process: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_DEADLINE_SECONDS
    last_problem = "no answer yet"
    with httpx.Client(base_url=base_url, timeout=2, trust_env=False) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(
                    f"the aggregator exited with {process.returncode} before answering "
                    f"/healthz:\n{log_path.read_text(errors='replace')}"
                )
            try:
                response = client.get("/healthz")
                if response.status_code == 200:
                    return
                last_problem = f"/healthz answered {response.status_code}"
            except httpx.TransportError as error:
                last_problem = repr(error)
            time.sleep(0.1)  # polling interval while the server starts, not an assertion
    raise AssertionError(
        f"{base_url}/healthz not 200 within {SERVER_START_DEADLINE_SECONDS} s ({last_problem}):\n"
        f"{log_path.read_text(errors='replace')}"
    )


@pytest.fixture
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer() as server:
        yield server


@pytest.fixture
def libretranslate() -> Iterator[LibreTranslateServer]:
    with LibreTranslateServer() as server:
        yield server


@pytest.fixture
def write_config(tmp_path: Path, libretranslate: LibreTranslateServer) -> WriteConfig:
    """Factory: ``write_config(feeds, *, extra="") -> Path`` of a config.toml in tmp_path.

    ``feeds`` is a sequence of mappings with ``url`` and ``name`` (and optionally ``interval``).
    The database is SQLite beside the config, the web server gets a free port, private
    networks are allowed (everything is on 127.0.0.1) and translation goes to the
    ``libretranslate`` fixture. ``extra`` is TOML appended as is.
    """

    def write(feeds: Sequence[Mapping[str, str]] = (), *, extra: str = "") -> Path:
        text = config_toml(libretranslate.url("/"), feeds, port=free_port(), extra=extra)
        config_path = tmp_path / "config.toml"
        config_path.write_text(text, encoding="utf-8")
        return config_path

    return write


@pytest.fixture(autouse=True)
def _no_inherited_aggregator_config(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own $AGGREGATOR_CONFIG or engine keys must not leak into the tests.
    for name in list(os.environ):
        if name.startswith("AGGREGATOR_") and name != "AGGREGATOR_TEST_STRICT":
            monkeypatch.delenv(name)
