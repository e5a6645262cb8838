"""Work on untrusted documents in child processes, each job with a deadline.

Parsing a feed and extracting an article hold the GIL for as long as a document makes them
(a 4 MB page keeps trafilatura busy for most of a minute), and a library can crash on one:
in a thread, the web server (``/healthz``), the scheduler and every other entry would wait
or die with it. Here a job runs in a small pool of child processes (``python -m MODULE``:
a fresh interpreter that imports only what that module needs), started on first use and
reused. A child past the deadline is killed and the job fails with the caller's error; the
next job starts a new child. A child whose memory grew past the pool's limit (CPython seldom
gives freed memory back) is retired after its answer.

The exchange is one length-prefixed pickle per message plus the document's bytes as one raw
frame, over the child's stdin and stdout. Both ends are this program; the child's answers
are built from plain values by the module's own handler (``serve``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from aggregator.errors import AggregatorError, UnexpectedError

# Starting a child (a new interpreter importing its module) is not part of the deadline.
START_TIMEOUT = 60.0
_HEADER = struct.Struct("!Q")


class WorkerTimeout(Exception):
    """The job did not answer before its deadline; its child was killed."""


class WorkerDied(Exception):
    """The child exited or was killed while it worked; ``status`` is its exit status."""

    def __init__(self, status: int | None) -> None:
        super().__init__(f"exit status {status}")
        self.status = status


class WorkerUnavailable(Exception):
    """No child could be started."""


@dataclass(frozen=True)
class NoAnswer:
    """How a caller words a job that got no answer: each text is a ``str.format`` template,
    given the caller's context, and ``timeout`` (seconds), ``status`` (the child's exit
    status) or ``reason`` (why no child could start)."""

    timed_out: str
    died: str
    unavailable: str


class _Closed(Exception):
    """The child closed its end of the pipe."""


class _Child:
    """One child process and its pipes; used by one thread at a time."""

    def __init__(self, module: str) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, our module
            [sys.executable, "-m", module, str(os.getpid())],
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
                raise _Closed("the child did not say it was ready")
        except BaseException:
            self.stop()
            raise

    def run(self, job: tuple[Any, ...], body: bytes, deadline: float) -> Any:
        try:
            _write_frame(self._input, pickle.dumps(job, pickle.HIGHEST_PROTOCOL))
            _write_frame(self._input, body)
        except OSError as exc:
            raise _Closed(str(exc)) from exc
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
                raise _Closed("the child exited")
            pieces.append(piece)
            missing -= len(piece)
        return b"".join(pieces)

    def stop(self) -> None:
        """Kill at once: the child may be in the middle of a job that never ends."""
        with contextlib.suppress(OSError):
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class WorkerPool:
    """Up to ``size`` children running ``python -m module``; a job waits for a free one (the
    wait is not part of the deadline, so a job never fails because others were slow)."""

    def __init__(self, module: str, size: int, max_child_rss: int) -> None:
        self.module, self.max_child_rss = module, max_child_rss
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[_Child] = []
        self._lock = threading.Lock()

    def run(self, job: tuple[Any, ...], body: bytes, timeout: float) -> Any:
        """What the child's handler answered for ``job`` and ``body``; the job's own error
        (an AggregatorError) is raised here. WorkerTimeout, WorkerDied or WorkerUnavailable
        when there is no answer."""
        with self._slots:
            child = self._take()
            keep = False
            try:
                try:
                    outcome, child_rss = child.run(job, body, time.monotonic() + timeout)
                except TimeoutError:
                    raise WorkerTimeout from None
                except (_Closed, EOFError, pickle.UnpicklingError):
                    child.stop()  # to know how it ended: killed, out of memory, crashed
                    raise WorkerDied(child.process.returncode) from None
                keep = child_rss < self.max_child_rss
            finally:
                if keep:
                    with self._lock:
                        self._idle.append(child)
                else:
                    child.stop()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def answer(
        self,
        job: tuple[Any, ...],
        body: bytes,
        timeout: float,
        error: type[AggregatorError],
        no_answer: NoAnswer,
        **context: Any,
    ) -> Any:
        """``run``, where no answer is the caller's ``error``, worded by ``no_answer``."""
        try:
            return self.run(job, body, timeout)
        except WorkerTimeout:
            message = no_answer.timed_out.format(timeout=timeout, **context)
        except WorkerDied as died:
            message = no_answer.died.format(status=died.status, **context)
        except WorkerUnavailable as exc:
            message = no_answer.unavailable.format(reason=exc, **context)
        raise error(message)

    def _take(self) -> _Child:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        try:
            return _Child(self.module)
        except (OSError, _Closed, TimeoutError, EOFError) as exc:
            raise WorkerUnavailable(str(exc)) from None

    def close(self) -> None:
        """Stop the idle children (a later job starts one again)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for child in idle:
            child.stop()


_shared: dict[str, WorkerPool] = {}
_shared_lock = threading.Lock()


def shared_pool(module: str, size: int, max_child_rss: int) -> WorkerPool:
    """This process's one pool of ``module``'s children, made on first use and closed at
    exit."""
    with _shared_lock:
        pool = _shared.get(module)
        if pool is None:
            pool = _shared[module] = WorkerPool(module, size, max_child_rss)
            atexit.register(pool.close)
        return pool


def release_idle(module: str) -> None:
    """Stop the idle children of ``module``'s shared pool, if it has one (a later job starts
    one again)."""
    with _shared_lock:
        pool = _shared.get(module)
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
    """Exit as soon as the parent is gone, even in the middle of a job: a daemon that
    leaves with os._exit (work abandoned at shutdown) runs no atexit handler."""
    while os.getppid() == parent:
        time.sleep(1)  # how soon an orphan notices, not a deadline
    os._exit(0)


def serve(handle: Callable[[tuple[Any, ...], bytes], Any]) -> None:
    """The child's loop: answer ``handle(job, body)`` for each job until stdin closes (the
    parent exited or retired us). An AggregatorError ``handle`` raises is the job's answer,
    raised again in the parent; any other exception (a bug, a library's surprise) is that
    job's UnexpectedError, never the end of the child."""
    parent = int(sys.argv[1]) if len(sys.argv) > 1 else os.getppid()
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
        outcome: Any
        try:
            outcome = handle(pickle.loads(job), body)  # noqa: S301 - from our parent
        except AggregatorError as exc:
            outcome = exc
        except Exception as exc:
            outcome = UnexpectedError(f"unexpected error ({type(exc).__name__}: {exc})")
        del body
        _write_frame(answers, pickle.dumps((outcome, _rss()), pickle.HIGHEST_PROTOCOL))
