"""The real nginx with the configuration docs/operations.md gives, serving the publication
directory that a real ``aggregator serve`` writes: the same bytes, the same validators, 304s,
the precompressed gzip, and what it has no file for passed to ``aggregator serve``.

Skips without nginx; fails instead when AGGREGATOR_TEST_STRICT=1 (``.ci/run`` installs it).
"""

from __future__ import annotations

import gzip
import http.client
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import aggregator_process
from newsroom import COURTS_TITLE, MUSK_TITLE, Newsroom, free_port
from nginx import documented_nginx_server, nginx_conf

STRICT = os.environ.get("AGGREGATOR_TEST_STRICT") == "1"


def require_nginx() -> str:
    program = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if program is None:
        reason = "nginx is missing (apt-get install nginx)"
        if STRICT:
            pytest.fail(f"{reason}; AGGREGATOR_TEST_STRICT=1 requires it")
        pytest.skip(reason)
    return program


@contextmanager
def nginx_serving(folder: Path, server: str) -> Iterator[int]:
    """nginx with ``server`` (its ``listen`` port is returned once it answers)."""
    program = require_nginx()
    port = int(re.search(r"listen 127\.0\.0\.1:(\d+);", server).group(1))  # type: ignore[union-attr]
    config = folder / "nginx.conf"
    config.write_text(nginx_conf(folder, server), encoding="utf-8")
    errors = folder / "nginx-error.log"
    process = subprocess.Popen(
        [program, "-e", str(errors), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, errors.read_text(errors="replace")
            try:
                fetch(port, "/healthz")
                break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not answer within 10 s"
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes  # as sent: gzip stays gzip


def fetch(port: int, path: str, headers: dict[str, str] | None = None) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return Reply(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        connection.close()


@pytest.fixture
def published(newsroom: Newsroom) -> Newsroom:
    newsroom.approve(MUSK_TITLE)
    return newsroom


# The headers both servers must agree on, beyond the body.
SAME_HEADERS = ("etag", "last-modified", "cache-control", "content-type", "vary")


def same_answer(ours: int, theirs: int, path: str) -> Reply:
    """GET ``path`` from aggregator serve (port ``ours``) and nginx (``theirs``): both 200,
    the same bytes and validators. aggregator serve's reply."""
    direct, through_nginx = fetch(ours, path), fetch(theirs, path)
    assert through_nginx.status == direct.status == 200, path
    assert through_nginx.body == direct.body, path
    for name in SAME_HEADERS:
        assert through_nginx.headers.get(name) == direct.headers.get(name), (path, name)
    return direct


def test_nginx_serves_the_publication_as_aggregator_serve_does(
    published: Newsroom, tmp_path: Path
) -> None:
    require_nginx()
    settings = published.settings
    publication = Path(settings.publish.directory)
    musk = published.draft(MUSK_TITLE)
    slug = next(iter(published.store.feed_slugs()))
    paths = [
        "/",
        "/feeds/published.atom",
        "/feeds/published.rss",
        "/feeds/published.json",
        f"/feeds/sources/{slug}.atom",
        f"/articles/{musk.id}",
    ]
    ours = settings.server.port
    with aggregator_process(published.config, published.base_url):
        server = documented_nginx_server(publication, free_port(), ours)
        with nginx_serving(tmp_path, server) as theirs:
            for path in paths:
                direct = same_answer(ours, theirs, path)
                for port in (ours, theirs):
                    for conditional in (
                        {"If-None-Match": direct.headers["etag"]},
                        {"If-Modified-Since": direct.headers["last-modified"]},
                    ):
                        again = fetch(port, path, conditional)
                        assert (again.status, again.body) == (304, b""), (port, path, conditional)
                    zipped = fetch(port, path, {"Accept-Encoding": "gzip"})
                    assert zipped.headers["content-encoding"] == "gzip", (port, path)
                    assert gzip.decompress(zipped.body) == direct.body
                    file = publication / "current" / (path.lstrip("/") or "index.html")
                    assert zipped.body == Path(f"{file}.gz").read_bytes()  # precompressed
                    stale = fetch(port, path, {"If-None-Match": '"stale"'})
                    assert stale.status == 200

            # What the publication has no file for, nginx passes to aggregator serve.
            for path in ("/feeds/published.atom?page=2", "/articles/999999", "/healthz"):
                direct, through_nginx = fetch(ours, path), fetch(theirs, path)
                assert (through_nginx.status, through_nginx.body) == (direct.status, direct.body)
            desk = fetch(theirs, "/review/")  # the login form, through the proxy
            assert desk.status == fetch(ours, "/review/").status and b'type="password"' in desk.body


def test_a_change_made_elsewhere_reaches_nginx_and_a_withdrawn_article_answers_410(
    published: Newsroom, tmp_path: Path
) -> None:
    """A worker on another machine approves and withdraws: no public request reaches
    aggregator serve, yet the directory nginx serves follows within cache_ttl."""
    require_nginx()
    musk = published.draft(MUSK_TITLE)
    publication = Path(published.settings.publish.directory)
    ours = published.settings.server.port
    with (
        aggregator_process(published.config, published.base_url),
        nginx_serving(tmp_path, documented_nginx_server(publication, free_port(), ours)) as theirs,
    ):
        before = fetch(theirs, "/feeds/published.atom")
        assert before.body.count(b"<entry") == 1 and musk.title.encode() in before.body
        published.approve(COURTS_TITLE, actor="Dominique")
        published.store.withdraw(musk.id, actor="Dominique", now=datetime.now(UTC))
        # The two changes may reach the directory in one publication or in two.
        deadline = time.monotonic() + 15
        while musk.title.encode() in fetch(theirs, "/feeds/published.atom").body:
            assert time.monotonic() < deadline, "the publication was not written again"
            time.sleep(0.1)
        after = fetch(theirs, "/feeds/published.atom", {"If-None-Match": before.headers["etag"]})
        assert after.status == 200
        assert after.body.count(b"<entry") == 1 and musk.title.encode() not in after.body
        gone = fetch(theirs, f"/articles/{musk.id}")
        assert gone.status == 410
        assert gone.body == fetch(ours, f"/articles/{musk.id}").body
