"""Per-user accounts and scoped API tokens, through the real CLI and the real server.

``aggregator users add|passwd|disable|list`` as an administrator runs them; the desk logs
the user in and the audit trail and the published credit name that user; a password
change or a disabled account ends the user's sessions at once; a read token can read but
never change anything, and the drafts feed takes only a read token, never echoing it.
"""

from __future__ import annotations

import subprocess
import sys

import feedparser
from conftest import CLI_TIMEOUT_SECONDS, aggregator_process, run_cli, run_cli_json
from newsroom import MUSK_TITLE, PASSWORD, READ_TOKEN, TOKENS, Newsroom, csrf_of, form_values
from test_sessions import http, log_in_over_http

from aggregator.models import DraftStatus
from aggregator.web.auth import hash_password, parse_tokens, verify_password

CAMILLE_PASSWORD = "camille's own long passphrase"
DOMINIQUE_PASSWORD = "dominique keeps another one"


def users(
    newsroom: Newsroom, *args: str, password: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``aggregator users ARGS…``, the password (if any) on standard input."""
    extra = ["--password-stdin"] if password is not None else []
    return subprocess.run(
        [sys.executable, "-m", "aggregator", "--config", str(newsroom.config), "users",
         *args, *extra],
        input=(password + "\n") if password is not None else "",
        capture_output=True, text=True, timeout=CLI_TIMEOUT_SECONDS, check=False,
        cwd=newsroom.config.parent,
    )  # fmt: skip


def add_accounts(newsroom: Newsroom) -> None:
    added = users(newsroom, "add", "Camille Martin", "--role", "admin", password=CAMILLE_PASSWORD)
    assert added.returncode == 0, added.stderr
    assert "shared review password no longer opens it" in added.stdout
    added = users(newsroom, "add", "Dominique", password=DOMINIQUE_PASSWORD)
    assert added.returncode == 0, added.stderr


def test_users_add_list_passwd_disable_through_the_cli(newsroom: Newsroom) -> None:
    short = users(newsroom, "add", "Camille Martin", password="hunter2")
    assert short.returncode == 1
    assert "at least 12 characters (got 7)" in short.stderr
    assert run_cli_json(newsroom.config, "users", "list", "--json") == []

    add_accounts(newsroom)
    again = users(newsroom, "add", "camille martin", password=CAMILLE_PASSWORD)
    assert again.returncode == 1 and "already exists" in again.stderr
    wrong_role = users(newsroom, "add", "Eve", "--role", "root", password=CAMILLE_PASSWORD)
    assert wrong_role.returncode == 2  # click refuses the choice

    listed = run_cli_json(newsroom.config, "users", "list", "--json")
    assert isinstance(listed, list)
    assert [(u["name"], u["role"], u["disabled"]) for u in listed] == [
        ("Camille Martin", "admin", False),
        ("Dominique", "editor", False),
    ]
    stored = newsroom.store.find_user("camille martin")
    assert stored is not None and stored.password_hash.startswith("scrypt$")
    assert CAMILLE_PASSWORD not in stored.password_hash
    assert verify_password(CAMILLE_PASSWORD, stored.password_hash)

    assert users(newsroom, "passwd", "Dominique", password="short").returncode == 1
    changed = users(newsroom, "passwd", "Dominique", password="a fresh passphrase here")
    assert changed.returncode == 0 and "session(s) ended" in changed.stdout
    assert users(newsroom, "disable", "Nobody").returncode == 1
    disabled = run_cli(newsroom.config, "users", "disable", "Dominique")
    assert "disabled Dominique" in disabled.stdout
    listed = run_cli_json(newsroom.config, "users", "list", "--json")
    assert isinstance(listed, list)
    assert [u["disabled"] for u in listed] == [False, True]


def test_the_desk_logs_in_a_user_and_the_audit_trail_and_credit_name_them(
    newsroom: Newsroom,
) -> None:
    add_accounts(newsroom)
    draft = newsroom.draft(MUSK_TITLE)
    with aggregator_process(newsroom.config, newsroom.base_url), http(newsroom) as client:
        # The shared password and a typed-in name no longer open the desk.
        assert log_in_over_http(client, "Camille Martin", PASSWORD).status_code == 401
        assert log_in_over_http(client, "Nobody", CAMILLE_PASSWORD).status_code == 401
        assert log_in_over_http(client, "camille martin", CAMILLE_PASSWORD).status_code == 303
        queue = client.get("/review/")
        assert "Camille Martin" in queue.text
        page = client.get(f"/review/drafts/{draft.id}")
        form = form_values(page.text, f"/review/drafts/{draft.id}/approve")
        approved = client.post(f"/review/drafts/{draft.id}/approve", data=form)
        assert approved.status_code == 303, approved.text
        article = client.get(f"/articles/{draft.id}")
        assert "relue par Camille Martin" in article.text

    events = newsroom.store.get_draft_detail(draft.id).events
    assert events[-1].action == "approved" and events[-1].actor == "Camille Martin"
    assert newsroom.store.get_draft(draft.id).reviewed_by == "Camille Martin"


def test_a_password_change_or_a_disabled_account_ends_the_users_sessions(
    newsroom: Newsroom,
) -> None:
    add_accounts(newsroom)
    with (
        aggregator_process(newsroom.config, newsroom.base_url),
        http(newsroom) as camille,
        http(newsroom, "127.0.0.2") as dominique,
    ):
        assert log_in_over_http(camille, "Camille Martin", CAMILLE_PASSWORD).status_code == 303
        assert log_in_over_http(dominique, "Dominique", DOMINIQUE_PASSWORD).status_code == 303
        assert camille.get("/review/").status_code == 200
        assert dominique.get("/review/").status_code == 200

        new = "camille changed her passphrase"
        assert users(newsroom, "passwd", "Camille Martin", password=new).returncode == 0
        assert camille.get("/review/").status_code == 401
        camille.cookies.clear()
        assert log_in_over_http(camille, "Camille Martin", CAMILLE_PASSWORD).status_code == 401
        assert log_in_over_http(camille, "Camille Martin", new).status_code == 303

        assert dominique.get("/review/").status_code == 200  # someone else's change
        assert users(newsroom, "disable", "Dominique").returncode == 0
        assert dominique.get("/review/").status_code == 401
        dominique.cookies.clear()
        refused = log_in_over_http(dominique, "Dominique", DOMINIQUE_PASSWORD)
        assert refused.status_code == 401
        assert "aggregator_session" not in dominique.cookies


def test_a_shared_password_session_ends_when_the_first_account_is_added(
    newsroom: Newsroom,
) -> None:
    with aggregator_process(newsroom.config, newsroom.base_url), http(newsroom) as client:
        assert log_in_over_http(client).status_code == 303
        assert client.get("/review/").status_code == 200
        add_accounts(newsroom)
        assert client.get("/review/").status_code == 401


def test_a_read_token_reads_and_never_writes_and_stays_out_of_the_feed(
    newsroom: Newsroom,
) -> None:
    draft = newsroom.draft(MUSK_TITLE)
    read = {"Authorization": f"Bearer {READ_TOKEN}"}
    write = {"Authorization": f"Bearer {TOKENS['Camille']}"}
    with aggregator_process(newsroom.config, newsroom.base_url), http(newsroom) as client:
        assert client.get("/api/drafts", headers=read).status_code == 200
        for method, path, body in (
            ("POST", f"/api/drafts/{draft.id}/approve", {"version": draft.version}),
            ("PATCH", f"/api/drafts/{draft.id}", {"version": draft.version, "title": "Piraté"}),
        ):
            refused = client.request(method, path, json=body, headers=read)
            assert refused.status_code == 403
            assert "scope 'read'" in refused.json()["error"]

        # The feed takes the read token; a write token does not belong in a URL.
        assert client.get(f"/feeds/drafts.atom?token={TOKENS['Camille']}").status_code == 403
        feed = client.get(f"/feeds/drafts.atom?token={READ_TOKEN}")
        assert feed.status_code == 200
        assert READ_TOKEN not in feed.text
        parsed = feedparser.parse(feed.content)
        selves = [link.href for link in parsed.feed.links if link.rel == "self"]
        assert selves == [f"{newsroom.base_url}/feeds/drafts.atom"]

        # A write token still writes, as tokens without a scope always did.
        approved = client.post(
            f"/api/drafts/{draft.id}/approve", json={"version": draft.version}, headers=write
        )
        assert approved.status_code == 200, approved.text
    assert newsroom.store.get_draft(draft.id).status == DraftStatus.APPROVED


def test_token_lines_with_and_without_a_scope() -> None:
    tokens = parse_tokens(
        "camille:camille-0123456789abcdef\n"
        "lecteur:reader-0123456789abcdef:read\n"
        "robot:robot-0123456789abcdef:write, plain-0123456789abcdef"
    )
    assert [(t.name, t.scope) for t in tokens] == [
        ("camille", "write"),
        ("lecteur", "read"),
        ("robot", "write"),
        ("api", "write"),
    ]
    assert tokens[1].token == "reader-0123456789abcdef"


def test_password_hashes_are_salted_scrypt() -> None:
    first, second = hash_password(CAMILLE_PASSWORD), hash_password(CAMILLE_PASSWORD)
    assert first != second and first.startswith("scrypt$16384$8$1$")
    assert verify_password(CAMILLE_PASSWORD, first)
    assert not verify_password(CAMILLE_PASSWORD + "!", first)
    assert not verify_password(CAMILLE_PASSWORD, "md5$whatever")


def test_an_old_csrf_token_is_worthless_after_a_new_login(newsroom: Newsroom) -> None:
    """Each session has its own CSRF token: one seen before logout does not come back."""
    add_accounts(newsroom)
    draft = newsroom.draft(MUSK_TITLE)
    with aggregator_process(newsroom.config, newsroom.base_url), http(newsroom) as client:
        assert log_in_over_http(client, "Dominique", DOMINIQUE_PASSWORD).status_code == 303
        old = csrf_of(client.get("/review/").text)
        assert client.post("/review/logout", data={"csrf": old}).status_code == 303
        assert log_in_over_http(client, "Dominique", DOMINIQUE_PASSWORD).status_code == 303
        replay = client.post(
            f"/review/drafts/{draft.id}/approve",
            data={"csrf": old, "version": str(draft.version)},
        )
        assert replay.status_code == 403
    assert newsroom.store.get_draft(draft.id).status == DraftStatus.PENDING


def test_logging_in_is_throttled_per_account(newsroom: Newsroom) -> None:
    """Guesses at one account from a client leave that client's other accounts alone."""
    add_accounts(newsroom)
    text = newsroom.config.read_text(encoding="utf-8")
    newsroom.config.write_text(text.replace("[review]\n", '[review]\nlogin_delay = "10m"\n', 1))
    with aggregator_process(newsroom.config, newsroom.base_url), http(newsroom) as client:
        for _ in range(5):
            assert log_in_over_http(client, "Dominique", "wrong guess!").status_code == 401
        assert log_in_over_http(client, "dominique", DOMINIQUE_PASSWORD).status_code == 429
        assert log_in_over_http(client, "Camille Martin", CAMILLE_PASSWORD).status_code == 303
