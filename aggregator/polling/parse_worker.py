"""parse_feed in a child process, with a deadline: one feed can cost its own poll, no more.

Parsing holds the GIL (feedparser and ``re`` are pure Python or do not release it), so a
document that is slow to parse would, in a thread, also stop the web server (``/healthz``)
and the scheduler of the same process. Here the parse runs in a small pool of child
processes (``aggregator.workers``; ``python -m aggregator.polling.parse_worker``: a fresh
interpreter that imports the parser only). A child past the deadline is killed and the feed
gets a ParseError; a child whose memory grew past ``MAX_CHILD_RSS`` is retired after its
answer, so one large feed does not keep its memory for the life of the daemon.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

from aggregator import workers
from aggregator.errors import ParseError
from aggregator.parsed import ParsedFeed
from aggregator.workers import WorkerPool

# Parsing is CPU-bound: one core is left to this process (fetching, storing, serving), and
# each child weighs about 30 MB. Feeds beyond that wait for a child, as they waited for the
# GIL when they were parsed in threads.
POOL_SIZE = max(1, min(4, (os.cpu_count() or 1) - 1))
# Above this, a child is replaced after its answer (an idle one weighs about 30 MB).
MAX_CHILD_RSS = 96 * 1024 * 1024
MODULE = "aggregator.polling.parse_worker"


class ParsePool:
    """Up to ``size`` parser children; a parse waits for a free one (the wait is not part
    of the deadline, so a feed never fails because others were slow)."""

    NO_ANSWER = workers.NoAnswer(
        timed_out="parsing took longer than {timeout:g} s: the document is too large or too"
        " intricate to parse; abandoned (see [fetch] parse_timeout)",
        died="the parser process died while parsing this feed (exit status {status})",
        unavailable="the parser process could not be started: {reason}",
    )

    def __init__(
        self,
        size: int = POOL_SIZE,
        max_child_rss: int = MAX_CHILD_RSS,
        *,
        children: WorkerPool | None = None,
    ) -> None:
        self._pool = children or WorkerPool(MODULE, size, max_child_rss)

    def parse(
        self,
        body: bytes,
        url: str,
        content_type: str | None,
        *,
        known_items: Collection[str],
        timeout: float,
    ) -> ParsedFeed:
        job = (url, content_type, frozenset(known_items))
        outcome = self._pool.answer(job, body, timeout, ParseError, self.NO_ANSWER)
        assert isinstance(outcome, ParsedFeed)
        return outcome

    def close(self) -> None:
        self._pool.close()


def parse_feed(
    body: bytes,
    url: str,
    content_type: str | None = None,
    *,
    known_items: Collection[str] = (),
    timeout: float = 30.0,
) -> ParsedFeed:
    """aggregator.polling.parse.parse_feed, run in this process's pool of parser children; a
    ParseError when it takes longer than ``timeout`` seconds (``[fetch] parse_timeout``)."""
    pool = ParsePool(children=workers.shared_pool(MODULE, POOL_SIZE, MAX_CHILD_RSS))
    return pool.parse(body, url, content_type, known_items=known_items, timeout=timeout)


def release_idle() -> None:
    """Stop the idle parser children (a later parse starts one again): for a process that
    is done with feeds for a while, such as ``aggregator poll`` once every feed is read."""
    workers.release_idle(MODULE)


def _parse(job: tuple[Any, ...], body: bytes) -> ParsedFeed:
    """The child's answer to one feed."""
    # Here only: the parent process never loads feedparser.
    from aggregator.polling.parse import parse_feed as parse_in_process

    url, content_type, known_items = job
    return parse_in_process(body, url, content_type, known_items=known_items)


if __name__ == "__main__":
    workers.serve(_parse)
