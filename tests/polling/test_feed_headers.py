"""A feed's own request headers (``headers = { Cookie = "file:…", Authorization = "env:…" }``):
sent with every request to the host of the feed's URL as written in config.toml (the feed
and its article pages), to no other host, not even through a redirect; read where they are
kept at each fetch and shown nowhere (logs, errors, listings, the database).

The members-only Ghost post goes through with the members' cookie: the local site answers
its page in full only to a request that carries it, as Ghost does for a signed-in member.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import DATA_DIR, WriteConfig, run_cli, run_cli_json
from servers import UpstreamServer
from translation_desk import ghost_feed

from aggregator import config as config_module
from aggregator.errors import ConfigError
from aggregator.full_text import feed_credentials
from aggregator.polling.fetch import Credentials

COOKIE = "ghost-members-ssr=members-session-5f0c2a"
TOKEN = "Bearer nexus-token-81d9e7"
SECRETS = (COOKIE, TOKEN, "members-session-5f0c2a", "nexus-token-81d9e7")
HEADERS = '[defaults.headers]\nCookie = "file:members-cookie"\nAuthorization = "env:NEXUS_TOKEN"'

MEMBERS_PATH = "/a-year-of-paid-newsletters/"
MEMBERS_TITLE = "Members only: what I learned from a year of paid newsletters"
# What only members read: the page without the upgrade call-to-action, its article whole.
MEMBERS_TEXT = (
    "<p>The first surprise was how few readers left when the paid tier arrived. Most of the"
    " people who had read the newsletter for free kept reading it, and about one in twenty"
    " of them chose to pay for it within the first three months.</p>"
    "<p>The second surprise was the work. A paid newsletter is a promise made every week,"
    " and keeping that promise takes more hours than writing the free letter ever did.</p>"
    "<p>If I started again, I would ask readers what they wanted before I asked them to"
    " pay, and I would keep the archive open for longer than I did.</p>"
)
MEMBERS_SENTENCE = "The first surprise was how few readers left when the paid tier arrived."


@pytest.fixture
def site() -> Iterator[UpstreamServer]:
    """The newsletter's site: the members-only page answers in full to a request carrying
    the members' cookie, and as the public preview to any other."""
    with UpstreamServer() as server:
        preview = (DATA_DIR / "a-year-of-paid-newsletters.html").read_text(encoding="utf-8")
        start, end = preview.index('<aside class="gh-post-upgrade-cta">'), preview.index("</aside>")
        full = preview[:start] + MEMBERS_TEXT + preview[end + len("</aside>") :]
        server.add(MEMBERS_PATH, preview, content_type="text/html")
        server.add_for_header(MEMBERS_PATH, "Cookie", COOKIE, full, content_type="text/html")
        server.add("/rss/", ghost_feed(server.base_url))
        yield server


def serve_elsewhere(site: UpstreamServer, elsewhere: UpstreamServer) -> str:
    """A feed on the site that has moved to another host: the site redirects its URL to
    ``elsewhere`` (named "localhost", where the site is "127.0.0.1"), which serves the
    excerpt-only feed and its two article pages. The feed's URL as written in config.toml."""
    base = f"http://localhost:{elsewhere.port}"
    feed = (DATA_DIR / "excerpt-only.rss").read_text(encoding="utf-8").replace("{base}", base)
    elsewhere.add("/rss/", feed)
    for path, page in (
        ("/articles/json-parsing-simdjson-vs-json-for-modern-c/", "trafilatura_lemire.me.json"),
        (
            "/articles/want-to-see-a-more-diverse-wordpress-contributor-community/",
            "trafilatura_blog.wordpress.com.diverse",
        ),
    ):
        elsewhere.add(path, (DATA_DIR / f"{page}.html").read_bytes(), content_type="text/html")
    return site.add("/moved.rss", "", status=302, headers={"Location": f"{base}/rss/"})


def entries_by_title(config: Path) -> dict[str, dict[str, Any]]:
    listed = run_cli_json(config, "entries", "list", "--json")
    assert isinstance(listed, list)
    return {entry["title"]: entry for entry in listed}


def test_the_feeds_headers_reach_its_own_host_only_and_open_its_members_only_post(
    tmp_path: Path,
    site: UpstreamServer,
    upstream: UpstreamServer,
    write_config: WriteConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "members-cookie").write_text(COOKIE + "\n", encoding="utf-8")
    monkeypatch.setenv("NEXUS_TOKEN", TOKEN)  # the environment the command is run in
    moved = serve_elsewhere(site, upstream)
    config = write_config(
        [
            {"url": site.url("/rss/"), "name": "Nexus"},
            {"url": moved, "name": "Moved"},
        ],
        extra=HEADERS,
    )

    polled = run_cli(config, "-v", "poll")

    for request in site.requests:  # the feeds, and the members-only page
        assert (request.headers.get("cookie"), request.headers.get("authorization")) == (
            COOKIE,
            TOKEN,
        ), request.path
    assert {r.path for r in site.requests} == {"/rss/", "/moved.rss", MEMBERS_PATH}
    assert len(upstream.requests) == 3  # the moved feed and its two pages
    for request in upstream.requests:
        assert "cookie" not in request.headers and "authorization" not in request.headers
    members = entries_by_title(config)[MEMBERS_TITLE]
    assert (members["state"], members["full_text_source"]) == ("drafted", "page")
    draft = run_cli_json(config, "drafts", "show", str(members["draft_id"]), "--json")
    assert isinstance(draft, dict)
    assert any(MEMBERS_SENTENCE in block["original_html"] for block in draft["blocks"])
    # The values are shown nowhere: the debug log, the listings, the database.
    listed = run_cli(config, "feeds", "list", "--json")
    shown = [polled.stdout, polled.stderr, listed.stdout, listed.stderr]
    stored = [
        path.read_bytes().decode("utf-8", "replace")
        for path in tmp_path.rglob("*")
        if path.is_file() and path.name != "members-cookie"
    ]
    assert "DEBUG" in polled.stderr
    for secret in SECRETS:
        assert not any(secret in text for text in shown + stored), secret


def test_without_the_cookie_the_members_only_post_is_skipped_as_before(
    site: UpstreamServer, write_config: WriteConfig
) -> None:
    config = write_config([{"url": site.url("/rss/"), "name": "Nexus"}])

    run_cli(config, "poll")

    members = entries_by_title(config)[MEMBERS_TITLE]
    assert members["state"] == "skipped"
    assert "members-only post (Ghost paywall)" in (members["reason"] or "")
    assert site.hits(MEMBERS_PATH) == 1


def test_a_header_that_cannot_be_read_at_a_fetch_is_an_error_naming_it_not_its_value(
    tmp_path: Path, site: UpstreamServer, write_config: WriteConfig
) -> None:
    config = write_config(
        [{"url": site.url("/rss/"), "name": "Nexus"}],
        extra='[defaults.headers]\nCookie = "file:members-cookie"',
    )
    (tmp_path / "members-cookie").write_text(COOKIE, encoding="utf-8")
    settings = config_module.load(config)
    assert feed_credentials(settings, site.url("/rss/")) is not None
    # Read again at every fetch: a cookie renewed, or gone, while the daemon runs.
    (tmp_path / "members-cookie").write_text("ghost-members-ssr=renewed", encoding="utf-8")
    renewed = feed_credentials(settings, site.url("/rss/"))
    assert renewed is not None and renewed.headers == {"Cookie": "ghost-members-ssr=renewed"}
    (tmp_path / "members-cookie").unlink()

    with pytest.raises(ConfigError) as error:
        feed_credentials(settings, site.url("/rss/"))

    assert str(error.value).startswith(
        "the header Cookie of the feed Nexus cannot be read: cannot read "
    )
    assert "members-cookie" in str(error.value) and COOKIE not in str(error.value)


def test_credentials_name_their_headers_and_keep_their_values_to_themselves() -> None:
    credentials = Credentials.for_url("https://Nexus.example/rss/", {"Cookie": COOKIE})

    assert credentials.host == "nexus.example"
    assert credentials.applies_to(httpx.URL("https://nexus.example:8443/post/"))
    assert not credentials.applies_to(httpx.URL("https://cdn.nexus.example/post/"))
    assert not credentials.applies_to(httpx.URL("http://nexus.example/post/"))  # in the clear
    plain = Credentials.for_url("http://127.0.0.1:8080/rss/", {"Cookie": COOKIE})
    assert plain.applies_to(httpx.URL("http://127.0.0.1:9090/p"))
    assert not plain.applies_to(httpx.URL("http://localhost:8080/p"))
    assert COOKIE not in repr(credentials) and "Cookie" in repr(credentials)
    assert COOKIE not in str(credentials)
