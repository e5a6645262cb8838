"""Sessions can be revoked, and login throttling stops guessing without locking anyone out.

The findings of the "hostile input" review, replayed against the real server (``aggregator
serve`` on 127.0.0.1, driven over HTTP with httpx): a cookie replayed after logout or
after the review password changed, five failures blocking the right password for
everyone, X-Forwarded-For rotated from loopback, counters lost on restart. Delays and idle
timeouts are checked in-process with an injected clock: no test sleeps.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from conftest import aggregator_process, run_cli
from newsroom import MUSK_TITLE, PASSWORD, Newsroom, csrf_of, form_values, log_in

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from aggregator import config as config_module
from aggregator.models import DraftStatus

NEW_PASSWORD = "a brand new passphrase for the desk"


class WallClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def add_review_keys(newsroom: Newsroom, *lines: str) -> None:
    """Keys added to the newsroom's [review] table (or, written as 'server.KEY', [server])."""
    text = newsroom.config.read_text(encoding="utf-8")
    for line in lines:
        if line.startswith("server."):
            text = text.replace("[server]\n", f"[server]\n{line.removeprefix('server.')}\n", 1)
        else:
            text = text.replace("[review]\n", f"[review]\n{line}\n", 1)
    newsroom.config.write_text(text, encoding="utf-8")
    newsroom.settings = config_module.load(newsroom.config)


@contextmanager
def http(newsroom: Newsroom, source: str = "127.0.0.1") -> Iterator[httpx.Client]:
    """A client of the real server whose connections come from ``source`` (any 127/8)."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(
        base_url=newsroom.base_url, transport=transport, timeout=30, trust_env=False
    ) as client:
        yield client


def log_in_over_http(
    client: httpx.Client,
    name: str = "Camille",
    password: str = PASSWORD,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    page = client.get("/review/login")
    assert page.status_code == 200, page.text
    fields = form_values(page.text, "/review/login")
    return client.post(
        "/review/login",
        data={**fields, "name": name, "password": password},
        headers=headers or {},
    )


def test_a_cookie_replayed_after_logout_is_refused(newsroom: Newsroom) -> None:
    draft = newsroom.draft(MUSK_TITLE)
    with aggregator_process(newsroom.config, newsroom.base_url), http(newsroom) as client:
        assert log_in_over_http(client).status_code == 303
        cookie = client.cookies["aggregator_session"]
        csrf = csrf_of(client.get("/review/").text)

        assert client.post("/review/logout", data={"csrf": csrf}).status_code == 303

        with http(newsroom) as thief:
            thief.cookies.set("aggregator_session", cookie)
            assert thief.get("/review/").status_code == 401
            replayed = thief.post(
                f"/review/drafts/{draft.id}/approve",
                data={"csrf": csrf, "version": str(draft.version)},
            )
            assert replayed.status_code == 401
    assert newsroom.store.get_draft(draft.id).status == DraftStatus.PENDING


def test_changing_the_shared_password_ends_the_sessions_opened_with_it(
    newsroom: Newsroom,
) -> None:
    with aggregator_process(newsroom.config, newsroom.base_url), http(newsroom) as client:
        assert log_in_over_http(client).status_code == 303
        cookie = client.cookies["aggregator_session"]
        assert client.get("/review/").status_code == 200
    (newsroom.config.parent / "review-password").write_text(NEW_PASSWORD + "\n", "utf-8")

    with aggregator_process(newsroom.config, newsroom.base_url), http(newsroom) as client:
        client.cookies.set("aggregator_session", cookie)
        assert client.get("/review/").status_code == 401
        client.cookies.clear()
        assert log_in_over_http(client).status_code == 401  # the old password
        assert log_in_over_http(client, password=NEW_PASSWORD).status_code == 303
        assert client.get("/review/").status_code == 200


def test_a_session_left_unused_for_the_idle_timeout_is_over(newsroom: Newsroom) -> None:
    add_review_keys(newsroom, 'session_lifetime = "7d"')  # only the idle timeout applies
    clock = WallClock()
    client = newsroom.client(newsroom.app(wall_clock=clock))
    log_in(client)
    idle = newsroom.settings.review.session_idle_timeout
    assert idle == 8 * 3600  # the default
    for _ in range(3):  # used within the timeout, the session lives on past it
        clock.now += idle - 120
        assert client.get("/review/").status_code == 200
    clock.now += idle + 1
    assert client.get("/review/").status_code == 401
    clock.now -= idle  # coming back in time does not revive a session that ended
    assert client.get("/review/").status_code == 401


def test_failures_from_one_client_never_refuse_the_right_password_from_another(
    newsroom: Newsroom,
) -> None:
    # Long delays, so that the test's own pace can never let an attempt through.
    add_review_keys(newsroom, 'login_delay = "10m"', 'login_window = "1h"')
    attempts = newsroom.settings.review.login_attempts
    with aggregator_process(newsroom.config, newsroom.base_url):
        with http(newsroom, "127.0.0.1") as attacker:
            for _ in range(attempts):
                assert log_in_over_http(attacker, password="wrong guess!").status_code == 401
            blocked = log_in_over_http(attacker)  # even the right password waits
            assert blocked.status_code == 429
            assert 590 <= int(blocked.headers["retry-after"]) <= 600
            # uvicorn would believe X-Forwarded-For from loopback: here no proxy is trusted.
            for n in range(5):
                rotated = log_in_over_http(attacker, headers={"X-Forwarded-For": f"198.51.100.{n}"})
                assert rotated.status_code == 429
        with http(newsroom, "127.0.0.2") as editor:
            assert log_in_over_http(editor).status_code == 303

    # A restart does not forget: the counters are in the database.
    with aggregator_process(newsroom.config, newsroom.base_url), http(newsroom) as attacker:
        assert log_in_over_http(attacker).status_code == 429


def test_a_trusted_proxy_forwards_the_client_address(newsroom: Newsroom) -> None:
    add_review_keys(newsroom, 'login_delay = "10m"', 'server.trusted_proxies = ["127.0.0.1"]')
    attempts = newsroom.settings.review.login_attempts
    behind = {"X-Forwarded-For": "203.0.113.7"}
    with aggregator_process(newsroom.config, newsroom.base_url), http(newsroom) as proxy:
        for _ in range(attempts):
            wrong = log_in_over_http(proxy, password="wrong guess!", headers=behind)
            assert wrong.status_code == 401
        assert log_in_over_http(proxy, headers=behind).status_code == 429
        other = {"X-Forwarded-For": "203.0.113.8"}
        assert log_in_over_http(proxy, headers=other).status_code == 303
        proxy.cookies.clear()
        assert log_in_over_http(proxy).status_code == 303  # the proxy itself is a client


def login_client(newsroom: Newsroom, app: object, address: str) -> TestClient:
    return TestClient(
        app,  # type: ignore[arg-type]
        base_url=newsroom.base_url,
        follow_redirects=False,
        client=(address, 50000),
    )


def attempt(client: TestClient, password: str, name: str = "Camille") -> httpx.Response:
    form = form_values(client.get("/review/login").text, "/review/login")
    return client.post("/review/login", data={**form, "name": name, "password": password})


def test_each_failure_past_the_free_ones_doubles_the_wait_up_to_the_cap(
    newsroom: Newsroom,
) -> None:
    clock = WallClock()
    app = newsroom.app(wall_clock=clock)
    client = login_client(newsroom, app, "192.0.2.1")
    review = newsroom.settings.review
    for _ in range(review.login_attempts - 1):
        assert attempt(client, "wrong guess!").status_code == 401

    waits = []
    for _ in range(14):
        assert attempt(client, "wrong guess!").status_code == 401
        refused = attempt(client, PASSWORD)
        assert refused.status_code == 429
        waits.append(int(refused.headers["retry-after"]))
        clock.now += waits[-1]

    assert waits[:6] == [1, 2, 4, 8, 16, 32]
    assert max(waits) == waits[-1] == review.login_window == 15 * 60
    assert attempt(client, PASSWORD).status_code == 303  # the wait is over: success
    client.cookies.clear()
    assert attempt(client, "wrong guess!").status_code == 401  # and the count starts again
    assert attempt(client, "wrong guess!").status_code == 401


def test_a_throttled_attempt_does_not_check_the_password(newsroom: Newsroom) -> None:
    clock = WallClock()
    client = login_client(newsroom, newsroom.app(wall_clock=clock), "192.0.2.2")
    for _ in range(newsroom.settings.review.login_attempts):
        attempt(client, "wrong guess!")
    assert attempt(client, PASSWORD).status_code == 429
    assert attempt(client, "wrong guess!").status_code == 429  # same answer: nothing learnt
    assert "aggregator_session" not in client.cookies


def test_a_review_password_shorter_than_12_characters_is_refused(
    newsroom: Newsroom, monkeypatch: pytest.MonkeyPatch
) -> None:
    (newsroom.config.parent / "review-password").write_text("hunter2\n", "utf-8")
    refused = run_cli(newsroom.config, "check-config", check=False)
    assert refused.returncode == 1
    assert "review password" in refused.stderr and "too short (7 characters" in refused.stderr
    assert "review-password" in refused.stderr

    monkeypatch.setenv("AGGREGATOR_REVIEW_PASSWORD", "exactly12chr")
    accepted = run_cli(newsroom.config, "check-config")
    assert "shared password set" in accepted.stdout
