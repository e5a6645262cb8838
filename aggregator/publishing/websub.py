"""WebSub: tell the configured hub when the published feeds change, so subscribers get the
new entries at once instead of at their next poll.

One background thread per process. Pings are coalesced (ten approvals in a row make one
round of pings), failures are logged and never reach the editor's request. The same thread
also looks at the database now and then, so a change made by another process (the CLI,
another server) is announced too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import httpx

from aggregator import __version__

log = logging.getLogger("aggregator.publishing.websub")
PING_TIMEOUT_SECONDS = 10.0


class HubNotifier:
    """Pings the hub for every topic whenever ``stamp()`` changes.

    ``stamp`` is a cheap fingerprint of what is published; it is looked at every
    ``interval`` seconds, and at once after ``poke()`` (a review action in this process).
    """

    def __init__(
        self,
        hub_url: str,
        topics: Callable[[], list[str]],
        stamp: Callable[[], object],
        *,
        interval: float = 10.0,
    ) -> None:
        self.hub_url = hub_url
        self.topics = topics
        self.stamp = stamp
        self.interval = interval
        self.pings_sent = 0
        self._poked = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: object = None

    def start(self) -> None:
        if self._thread is None:
            self._last = self._safe_stamp()
            self._thread = threading.Thread(target=self._run, name="websub", daemon=True)
            self._thread.start()

    def poke(self) -> None:
        """Something was just published or withdrawn here: look now, not at the next tick."""
        self._poked.set()

    def close(self) -> None:
        self._stopping.set()
        self._poked.set()
        if self._thread is not None:
            self._thread.join(timeout=PING_TIMEOUT_SECONDS + 1)

    def _safe_stamp(self) -> object:
        try:
            return self.stamp()
        except Exception:  # the database may be briefly away; look again next time
            log.exception("cannot read the publication stamp")
            return self._last

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._poked.wait(timeout=self.interval)
            self._poked.clear()
            if self._stopping.is_set():
                return
            current = self._safe_stamp()
            if current != self._last:
                self._last = current
                self.ping()

    def ping(self) -> int:
        """POST hub.mode=publish for every topic; returns how many the hub accepted."""
        accepted = 0
        headers = {"User-Agent": f"aggregator/{__version__} (WebSub publisher)"}
        with httpx.Client(timeout=PING_TIMEOUT_SECONDS, headers=headers, trust_env=False) as c:
            for topic in self.topics():
                try:
                    response = c.post(self.hub_url, data={"hub.mode": "publish", "hub.url": topic})
                except httpx.HTTPError as exc:
                    log.warning("WebSub hub %s unreachable for %s: %s", self.hub_url, topic, exc)
                    continue
                if response.is_success:
                    accepted += 1
                else:
                    log.warning(
                        "WebSub hub %s answered %d for %s: %s",
                        self.hub_url, response.status_code, topic, response.text[:200],
                    )  # fmt: skip
        self.pings_sent += accepted
        return accepted
