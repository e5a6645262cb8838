"""The systemd notify protocol, read from a socket the test owns (as systemd would).

READY=1 once the daemon serves; WATCHDOG=1 every WATCHDOG_USEC/2 while the database answers,
withheld (so that systemd restarts the service) while it does not; STOPPING=1 on the way out.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import httpx
import pytest
from conftest import WriteConfig
from daemons import DaemonProcess, NotifySocket, operations_config, use_database
from pg import create_database, drop_database

from aggregator.service.daemon import sd_notify, watchdog_interval

# Heartbeats every 0.1 s: each one is a datagram, WATCHDOG=1 or a STATUS saying why not.
WATCHDOG_USEC = "200000"
UNREACHABLE = "STATUS=database unreachable: watchdog heartbeat withheld"


def _lines(messages: list[str]) -> list[str]:
    return [line for message in messages for line in message.splitlines()]


def _withheld_for_a_while(notify: NotifySocket) -> list[str]:
    """The next few heartbeats after the first one withheld: none may be WATCHDOG=1."""
    notify.wait_for(UNREACHABLE)
    return _lines([notify.next() for _ in range(5)])


def test_sd_notify_sends_one_datagram_to_a_path_or_abstract_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with NotifySocket() as notify:
        monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
        assert sd_notify("READY=1\nSTATUS=up")
        assert notify.next() == "READY=1\nSTATUS=up"
    name = f"aggregator-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as abstract:
        abstract.bind("\0" + name)
        abstract.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sd_notify("WATCHDOG=1")
        assert abstract.recv(100) == b"WATCHDOG=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not sd_notify("READY=1")  # not under systemd: nothing to do, no error


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    assert watchdog_interval() is None


def test_worker_on_sqlite_withholds_the_watchdog_while_its_database_file_is_gone(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    config = write_config(extra=operations_config())
    database = tmp_path / "aggregator.db"
    with (
        NotifySocket() as notify,
        DaemonProcess(
            config, "worker", env={**notify.env, "WATCHDOG_USEC": WATCHDOG_USEC}
        ) as worker,
    ):
        first = notify.next()
        assert first.splitlines()[0] == "READY=1", first
        assert notify.next() == "WATCHDOG=1"

        # The file is moved away (a cleanup job, an unmounted disk): writing on would write
        # into a file nobody will ever read again.
        database.rename(tmp_path / "moved.db")
        assert "WATCHDOG=1" not in _withheld_for_a_while(notify)
        assert worker.alive()

        (tmp_path / "moved.db").rename(database)
        notify.wait_for("WATCHDOG=1")
        assert worker.terminate() == 0
        notify.wait_for("STOPPING=1")
    assert "does not answer: withholding the watchdog heartbeat" in worker.log
    assert "answers again" in worker.log


def test_run_on_postgresql_is_ready_once_serving_and_stops_the_watchdog_without_database(
    write_config: WriteConfig, postgres_database: tuple[str, str]
) -> None:
    name, url = postgres_database
    config = use_database(write_config(extra=operations_config()), url)
    base_url = config.read_text().split('base_url = "', 1)[1].split('"', 1)[0]
    with (
        NotifySocket() as notify,
        DaemonProcess(config, "run", env={**notify.env, "WATCHDOG_USEC": WATCHDOG_USEC}) as daemon,
    ):
        # Heartbeats may come while starting (a slow start is not a hung one).
        *starting, ready = notify.wait_for("READY=1")
        assert set(starting) <= {"WATCHDOG=1"} and ready.splitlines()[0] == "READY=1", ready
        # READY means serving: the very first request after it is answered.
        assert httpx.get(f"{base_url}/healthz", timeout=5).status_code == 200
        assert notify.next() == "WATCHDOG=1"

        drop_database(name)  # closes the daemon's connections; reconnecting fails
        assert "WATCHDOG=1" not in _withheld_for_a_while(notify)
        assert httpx.get(f"{base_url}/healthz", timeout=5).status_code == 503
        assert daemon.alive()

        create_database(name)  # the server is back (empty, but it answers)
        notify.wait_for("WATCHDOG=1")
        assert daemon.terminate() == 0
