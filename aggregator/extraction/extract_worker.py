"""extract_article in a child process, with a deadline: one page can cost its own entry, no
more.

trafilatura holds the GIL for as long as a page makes it (a 4 MB page of paragraphs takes it
most of a minute), is not safe across threads, and has crashed a process on pages read side
by side. In a child (``aggregator.workers``; ``python -m aggregator.extraction.extract_worker``,
a fresh interpreter that imports the extractor only), a page past ``[fetch] extract_timeout``
is abandoned as that entry's ExtractError, a crash is that entry's error, and the web
server, the scheduler and the other entries never wait for it.
"""

from __future__ import annotations

import os
from typing import Any

from aggregator import workers
from aggregator.errors import ExtractError
from aggregator.extraction import extract
from aggregator.extraction.extract import Article

# One core is left to this process (fetching, translating, serving).
POOL_SIZE = max(1, min(4, (os.cpu_count() or 1) - 1))
# Above this, a child is replaced after its answer (one weighs about 55 MB after a page).
MAX_CHILD_RSS = 256 * 1024 * 1024
MODULE = "aggregator.extraction.extract_worker"
_NO_ANSWER = workers.NoAnswer(
    timed_out="{url}: reading the article took longer than {timeout:g} s: the page is too large"
    " or too intricate; abandoned (see [fetch] extract_timeout)",
    died="{url}: the extraction process died while reading the page (exit status {status})",
    unavailable="the extraction process could not be started: {reason}",
)


def extract_article(page_html: str | bytes, url: str, *, timeout: float = 60.0) -> Article:
    """``extraction.extract.extract_article``, run in this process's pool of extraction
    children; an ExtractError when it takes longer than ``timeout`` seconds or its child
    dies."""
    pool = workers.shared_pool(MODULE, POOL_SIZE, MAX_CHILD_RSS)
    is_text = isinstance(page_html, str)
    body = page_html.encode("utf-8") if isinstance(page_html, str) else page_html
    outcome = pool.answer((url, is_text), body, timeout, ExtractError, _NO_ANSWER, url=url)
    assert isinstance(outcome, Article)
    return outcome


def release_idle() -> None:
    """Stop the idle extraction children (a later page starts one again): for a process
    that is done with pages for a while, such as the daemon between backlog ticks."""
    workers.release_idle(MODULE)


def _extract(job: tuple[Any, ...], body: bytes) -> Article:
    """The child's answer to one page."""
    url, is_text = job
    return extract.extract_article(body.decode("utf-8") if is_text else body, url)


if __name__ == "__main__":
    workers.serve(_extract)
