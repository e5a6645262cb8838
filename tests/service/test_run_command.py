"""`aggregator run`, as `make run` starts it: serves at once, survives unreachable feeds."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
from conftest import WriteConfig, aggregator_process, free_port, run_cli_json


def test_run_serves_healthz_and_logs_one_line_per_unreachable_feed(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/rss/"  # nothing listens there: like no internet
    config = write_config([{"url": dead, "name": "Unreachable"}])
    base_url = config.read_text().split('base_url = "', 1)[1].split('"', 1)[0]
    with aggregator_process(config, base_url, command="run") as process:
        assert httpx.get(f"{base_url}/healthz", timeout=5).status_code == 200
        deadline = time.monotonic() + 20
        log = tmp_path / "run.log"
        while "Unreachable" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)  # waiting for the first scheduler tick, not measuring it
        assert httpx.get(f"{base_url}/feeds/published.atom", timeout=5).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    lines = [line for line in log.read_text().splitlines() if "Unreachable" in line]
    assert len(lines) == 1, lines
    assert "connection refused" in lines[0]
    assert "Traceback" not in log.read_text()
    feeds = run_cli_json(config, "feeds", "list", "--json")
    assert isinstance(feeds, list)
    assert feeds[0]["status"] == "error"
    assert feeds[0]["error_count"] == 1
    assert feeds[0]["next_check_at"] > feeds[0]["last_checked_at"]
