"""The publication directory: written whole or not at all, with .gz siblings and validators
that stay put for bytes that did not change (across publications and restarts)."""

from __future__ import annotations

import gzip
import stat
import threading
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest

from aggregator.publishing.directory import Page, PublicationDirectory

FEED = "/feeds/published.atom"
T0 = datetime(2025, 3, 1, 12, 0, 0, 500_000, tzinfo=UTC)
T1 = datetime(2025, 3, 1, 12, 0, 0, 900_000, tzinfo=UTC)  # the same second
T2 = datetime(2025, 3, 2, 8, 0, tzinfo=UTC)


def pages(feed: bytes, article: bytes = b"<p>article</p>") -> list[Page]:
    return [
        Page(FEED, feed, "application/atom+xml; charset=utf-8", 300),
        Page("/", b"<h1>home</h1>", "text/html; charset=utf-8", 300),
        Page("/?page=2", b"<h1>home 2</h1>", "text/html; charset=utf-8", 300),
        Page("/articles/7", article, "text/html; charset=utf-8", 300),
        Page("/articles/8", b"<p>withdrawn</p>", "text/html; charset=utf-8", 60, status=410),
    ]


def nginx_etag(path: Path) -> str:
    """What nginx answers as the ETag of this file."""
    info = path.stat()
    return f'"{int(info.st_mtime):x}-{info.st_size:x}"'


def test_files_gz_siblings_and_validators_are_those_nginx_gives(tmp_path: Path) -> None:
    directory = PublicationDirectory(tmp_path / "publication")
    served = directory.publish(pages(b"<feed>one</feed>"), T0)

    current = tmp_path / "publication" / "current"
    assert current.is_symlink()
    feed = current / "feeds" / "published.atom"
    assert feed.read_bytes() == b"<feed>one</feed>"
    assert gzip.decompress((current / "feeds" / "published.atom.gz").read_bytes()) == (
        b"<feed>one</feed>"
    )
    assert (current / "index.html").read_bytes() == b"<h1>home</h1>"
    assert int(feed.stat().st_mtime) == int(T0.timestamp())
    rep = served[FEED]
    assert rep.etag == nginx_etag(feed)
    assert rep.gzip_etag == nginx_etag(current / "feeds" / "published.atom.gz")
    headers = dict(rep.plain.headers)
    assert (
        headers[b"last-modified"]
        == format_datetime(datetime.fromtimestamp(int(T0.timestamp()), UTC), usegmt=True).encode()
    )
    # Served from memory only: a query string, and a 410.
    assert served["/?page=2"].status == 200 and served["/articles/8"].status == 410
    assert sorted(p.name for p in current.iterdir()) == [
        "articles", "feeds", "index.html", "index.html.gz",
    ]  # fmt: skip
    assert sorted(p.name for p in (current / "articles").iterdir()) == ["7", "7.gz"]
    # Readable by a web server running as another user, whatever the umask.
    for path in (tmp_path / "publication", current.resolve(), feed):
        assert path.stat().st_mode & stat.S_IROTH, path


def test_unchanged_bytes_keep_their_validators_changed_ones_move_forward(tmp_path: Path) -> None:
    directory = PublicationDirectory(tmp_path)
    first = directory.publish(pages(b"<feed>one</feed>"), T0)
    # An edit of the same length within the same second: a new ETag all the same.
    second = directory.publish(pages(b"<feed>two</feed>"), T1)
    assert second[FEED].etag != first[FEED].etag
    assert second[FEED].modified == first[FEED].modified + 1
    assert second["/articles/7"].etag == first["/articles/7"].etag  # untouched

    # A new process finds the validators in the tree the last one left.
    restarted = PublicationDirectory(tmp_path).publish(
        pages(b"<feed>two</feed>", b"<p>new</p>"), T2
    )
    assert restarted[FEED].etag == second[FEED].etag
    assert restarted["/articles/7"].modified == int(T2.timestamp())
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("generation-")] == [
        (tmp_path / "current").resolve().name
    ]  # older trees are gone


def test_readers_see_the_old_publication_or_the_new_never_a_mix(tmp_path: Path) -> None:
    directory = PublicationDirectory(tmp_path)
    versions = [(f"<feed>{n}</feed>".encode(), f"<p>{n}</p>".encode()) for n in range(40)]
    directory.publish(pages(*versions[0]), T0)
    seen: set[tuple[bytes, bytes]] = set()
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                # Resolve the link once, as a server opening files of one tree would.
                tree = (tmp_path / "current").resolve()
                pair = (
                    (tree / "feeds" / "published.atom").read_bytes(),
                    (tree / "articles" / "7").read_bytes(),
                )
            except FileNotFoundError:
                continue  # a tree removed after it was replaced: the reader retries
            seen.add(pair)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for version in versions[1:]:
            directory.publish(pages(*version), T2)
    finally:
        done.set()
        reader.join()
    assert seen and seen <= set(versions)


def test_a_directory_that_cannot_be_written_is_logged_and_the_feeds_still_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    taken = tmp_path / "publication"
    taken.write_text("a file where the directory should be", encoding="utf-8")
    served = PublicationDirectory(taken).publish(pages(b"<f/>"), T0)
    assert served[FEED].plain.body == b"<f/>"
    assert "cannot write the publication directory" in caplog.text


def test_what_has_no_file_is_served_anew_before_the_files_change(tmp_path: Path) -> None:
    """nginx answers the files and passes a withdrawn article's 410 to aggregator serve:
    when the feed on disk no longer lists the article, its page must already answer 410."""
    directory = PublicationDirectory(tmp_path)
    directory.publish(pages(b"<feed>with 8</feed>"), T0)
    feed = tmp_path / "current" / "feeds" / "published.atom"
    seen_on_disk: list[bytes] = []

    def serve(served: dict[str, object]) -> None:
        seen_on_disk.append(feed.read_bytes())

    directory.publish(pages(b"<feed>without 8</feed>"), T2, serve)
    assert seen_on_disk == [b"<feed>with 8</feed>"]
    assert feed.read_bytes() == b"<feed>without 8</feed>"
