"""parse_feed in a child process, with a deadline: one feed can cost its own poll, no more.

Parsing holds the GIL (feedparser and ``re`` are pure Python or do not release it), so a
document that is slow to parse would, in a thread, also stop the web server (``/healthz``)
and the scheduler of the same process. Here the parse runs in a small pool of child
processes (``python -m aggregator.polling.parse_worker``: a fresh interpreter that imports the
parser only), started on first use and reused across feeds. A child past the deadline is
killed and the feed gets a ParseError; the next parse starts a new child. A child whose
memory grew past ``MAX_CHILD_RSS`` (CPython seldom gives freed memory back) is retired
after its answer, so one large feed does not keep its memory for the life of the daemon.

The exchange is bytes in, ParsedFeed out, over the child's stdin and stdout: one
length-prefixed pickle per message, plus the feed's bytes as one raw frame. Both ends are
this program; the child's answers are built by parse_feed from plain values.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Collection
from typing import IO, Any

from aggregator.errors import AggregatorError, ParseError, UnexpectedError
from aggregator.polling.parse import ParsedFeed
from aggregator.polling.parse import parse_feed as parse_in_process

log = logging.getLogger("aggregator.polling.parse_worker")

# Parsing is CPU-bound: one core is left to this process (fetching, storing, serving), and
# each child weighs about 30 MB. Feeds beyond that wait for a child, as they waited for the
# GIL when they were parsed in threads.
POOL_SIZE = max(1, min(4, (os.cpu_count() or 1) - 1))
# Above this, a child is replaced after its answer (an idle one weighs about 30 MB).
MAX_CHILD_RSS = 96 * 1024 * 1024
# Starting a child (a new interpreter importing feedparser) is not part of the deadline.
START_TIMEOUT = 60.0
_HEADER = struct.Struct("!Q")


class _Died(Exception):
    """The child closed its end of the pipe: it exited or was killed."""


class _Child:
    """One child process and its pipes; used by one thread at a time."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, our module
            [sys.executable, "-m", "aggregator.polling.parse_worker", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            close_fds=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._input: IO[bytes] = self.process.stdin
        self._output = self.process.stdout.fileno()
        try:
            if self._receive(time.monotonic() + START_TIMEOUT) != "ready":
                raise _Died("the parser process did not say it was ready")
        except BaseException:
            self.stop()
            raise

    def parse(self, job: tuple[Any, ...], body: bytes, deadline: float) -> Any:
        try:
            _write_frame(self._input, pickle.dumps(job, pickle.HIGHEST_PROTOCOL))
            _write_frame(self._input, body)
        except OSError as exc:
            raise _Died(str(exc)) from exc
        return self._receive(deadline)

    def _receive(self, deadline: float) -> Any:
        size = _HEADER.unpack(self._read(_HEADER.size, deadline))[0]
        return pickle.loads(self._read(size, deadline))  # noqa: S301 - from our child

    def _read(self, size: int, deadline: float) -> bytes:
        pieces, missing = [], size
        while missing:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._output], [], [], remaining)[0]:
                raise TimeoutError
            piece = os.read(self._output, min(missing, 1024 * 1024))
            if not piece:
                raise _Died("the parser process exited")
            pieces.append(piece)
            missing -= len(piece)
        return b"".join(pieces)

    def stop(self) -> None:
        """Kill at once: the child may be in the middle of a parse that never ends."""
        with contextlib.suppress(OSError):
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class ParsePool:
    """Up to ``size`` children; a parse waits for a free one (the wait is not part of the
    deadline, so a feed never fails because others were slow)."""

    def __init__(self, size: int = POOL_SIZE, max_child_rss: int = MAX_CHILD_RSS) -> None:
        self.max_child_rss = max_child_rss
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[_Child] = []
        self._lock = threading.Lock()

    def parse(
        self,
        body: bytes,
        url: str,
        content_type: str | None,
        *,
        known_items: Collection[str],
        timeout: float,
    ) -> ParsedFeed:
        with self._slots:
            child = self._take()
            keep = False
            try:
                job = (url, content_type, frozenset(known_items))
                started = time.monotonic()
                try:
                    outcome, child_rss = child.parse(job, body, started + timeout)
                except TimeoutError:
                    raise ParseError(
                        f"parsing took longer than {timeout:g} s: the document is too large or"
                        " too intricate to parse; abandoned (see [fetch] parse_timeout)"
                    ) from None
                except (_Died, EOFError, pickle.UnpicklingError):
                    child.stop()  # to know how it ended: killed, out of memory, crashed
                    raise ParseError(
                        "the parser process died while parsing this feed"
                        f" (exit status {child.process.returncode})"
                    ) from None
                keep = child_rss < self.max_child_rss
            finally:
                if keep:
                    with self._lock:
                        self._idle.append(child)
                else:
                    child.stop()
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, ParsedFeed)
        return outcome

    def _take(self) -> _Child:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        try:
            return _Child()
        except (OSError, _Died, TimeoutError, EOFError) as exc:
            raise ParseError(f"the parser process could not be started: {exc}") from None

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for child in idle:
            child.stop()


_pool: ParsePool | None = None
_pool_lock = threading.Lock()


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
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ParsePool()
            atexit.register(_pool.close)
        pool = _pool
    return pool.parse(body, url, content_type, known_items=known_items, timeout=timeout)


def release_idle() -> None:
    """Stop the idle parser children (a later parse starts one again): for a process that
    is done with feeds for a while, such as ``aggregator poll`` once every feed is read."""
    with _pool_lock:
        pool = _pool
    if pool is not None:
        pool.close()


# ---------------------------------------------------------------------------- the child


def _write_frame(stream: IO[bytes], data: bytes) -> None:
    # The stream is unbuffered: one write() may take only part of a large frame.
    for part in (_HEADER.pack(len(data)), data):
        view = memoryview(part)
        while view:
            written = stream.write(view)
            view = view[written or 0 :]


def _read_exact(fd: int, size: int) -> bytes | None:
    pieces, missing = [], size
    while missing:
        piece = os.read(fd, min(missing, 1024 * 1024))
        if not piece:
            return None
        pieces.append(piece)
        missing -= len(piece)
    return b"".join(pieces)


def _read_frame(fd: int) -> bytes | None:
    header = _read_exact(fd, _HEADER.size)
    return None if header is None else _read_exact(fd, _HEADER.unpack(header)[0])


def _rss() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0  # not Linux: children are replaced on deadline and on death only


def _leave_with(parent: int) -> None:
    """Exit as soon as the parent is gone, even in the middle of a parse: a daemon that
    leaves with os._exit (work abandoned at shutdown) runs no atexit handler."""
    while os.getppid() == parent:
        time.sleep(1)  # how soon an orphan notices, not a deadline
    os._exit(0)


def _serve(parent: int) -> None:
    """Answer parse requests from stdin until it closes (the parent exited or retired us)."""
    # Ctrl-C in a terminal reaches the whole process group: the parent decides, not us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_leave_with, args=(parent,), daemon=True).start()
    requests = sys.stdin.buffer.fileno()
    answers = os.fdopen(os.dup(sys.stdout.buffer.fileno()), "wb", buffering=0)
    sys.stdout = sys.stderr  # a stray print must not corrupt the answers
    _write_frame(answers, pickle.dumps("ready"))
    while (job := _read_frame(requests)) is not None:
        body = _read_frame(requests)
        if body is None:
            return
        url, content_type, known_items = pickle.loads(job)  # noqa: S301 - from our parent
        outcome: Any
        try:
            outcome = parse_in_process(body, url, content_type, known_items=known_items)
        except AggregatorError as exc:
            outcome = exc
        except Exception as exc:  # a bug or a library's surprise: this feed's error only
            outcome = UnexpectedError(f"unexpected error ({type(exc).__name__}: {exc})")
        del body
        _write_frame(answers, pickle.dumps((outcome, _rss()), pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    _serve(int(sys.argv[1]) if len(sys.argv) > 1 else os.getppid())
