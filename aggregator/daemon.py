"""Process lifecycle: scheduler ticks, web server, signals, sd_notify and its watchdog.

The scheduler only runs two fixed ticks; each tick claims due work from the database, so
nothing about what is due lives in memory and several processes can share one database.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from dataclasses import dataclass, field
from types import FrameType

import uvicorn
from apscheduler.schedulers.background import BackgroundScheduler

from aggregator import config as config_module
from aggregator.config import Settings
from aggregator.errors import AggregatorError
from aggregator.pipeline import Services, process_backlog
from aggregator.polling import poll_feeds
from aggregator.store import Store
from aggregator.web import create_app

log = logging.getLogger("aggregator.daemon")
FEED_TICK_SECONDS = 30


def sd_notify(message: str) -> bool:
    """Send one datagram to systemd's notify socket, if there is one (no dependency)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("sd_notify failed: %s", exc)
        return False
    return True


@dataclass
class Daemon:
    """``aggregator run`` (web + worker), ``worker`` or ``serve``."""

    settings: Settings
    store: Store
    web: bool = True
    worker: bool = True
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.services: Services | None = None
        self.scheduler: BackgroundScheduler | None = None
        self.server: uvicorn.Server | None = None

    def run(self) -> int:
        self.store.upgrade()
        self.store.sync_feeds(self.settings.feeds, self.settings, Services.now())
        if self.worker:
            self.services = Services.build(self.settings, self.store)
            self._start_scheduler()
        self._start_watchdog()
        signal.signal(signal.SIGHUP, self._reload)
        try:
            if self.web:
                self._serve()
            else:
                signal.signal(signal.SIGTERM, self._stop)
                signal.signal(signal.SIGINT, self._stop)
                sd_notify("READY=1")
                log.info("worker started")
                self.stopping.wait()
        finally:
            self._shutdown()
        return 0

    def _serve(self) -> None:
        app = create_app(self.settings, self.store)
        config = uvicorn.Config(
            app,
            host=self.settings.server.host,
            port=self.settings.server.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        original_startup = self.server.startup

        async def startup(sockets: list[socket.socket] | None = None) -> None:
            await original_startup(sockets)
            log.info(
                "serving on http://%s:%d", self.settings.server.host, self.settings.server.port
            )
            sd_notify("READY=1")

        self.server.startup = startup  # type: ignore[method-assign]
        self.server.run()
        if not self.server.started:
            raise AggregatorError(
                f"cannot listen on {self.settings.server.host}:{self.settings.server.port}"
                " (is another process using the port?)"
            )

    def _start_scheduler(self) -> None:
        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(
            self._feed_tick, "interval", seconds=FEED_TICK_SECONDS, id="poll_due_feeds",
            max_instances=1, coalesce=True, next_run_time=Services.now(),
        )  # fmt: skip
        scheduler.add_job(
            self._backlog_tick, "interval", seconds=float(self.settings.schedule.backlog_interval),
            id="process_backlog", max_instances=1, coalesce=True,
        )  # fmt: skip
        scheduler.start()
        self.scheduler = scheduler

    def _feed_tick(self) -> None:
        if self.stopping.is_set() or self.services is None:
            return
        try:
            report = poll_feeds(self.services)
            if report.entries["new"] or report.entries["updated"]:
                self._backlog_tick()
        except AggregatorError as exc:
            log.error("polling failed: %s", exc)

    def _backlog_tick(self) -> None:
        if self.stopping.is_set() or self.services is None:
            return
        try:
            process_backlog(self.services, should_stop=self.stopping.is_set)
        except AggregatorError as exc:
            log.error("processing the backlog failed: %s", exc)

    def _start_watchdog(self) -> None:
        usec = os.environ.get("WATCHDOG_USEC")
        if not usec or not usec.isdigit():
            return
        interval = int(usec) / 2_000_000

        def beat() -> None:
            while not self.stopping.wait(interval):
                if self.store.ping():
                    sd_notify("WATCHDOG=1")
                else:
                    log.error("database unreachable: withholding the watchdog heartbeat")

        threading.Thread(target=beat, name="watchdog", daemon=True).start()

    def _reload(self, _signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=self._reload_config, name="reload", daemon=True).start()

    def _reload_config(self) -> None:
        try:
            settings = config_module.load(self.settings.path)
        except AggregatorError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            return
        self.store.sync_feeds(settings.feeds, settings, Services.now())
        self.settings = settings
        if self.services is not None:
            self.services.settings = settings
        log.info("configuration reloaded: %d feeds", len(settings.feeds))

    def _stop(self, _signum: int, _frame: FrameType | None) -> None:
        self.stopping.set()

    def _shutdown(self) -> None:
        sd_notify("STOPPING=1")
        self.stopping.set()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
        if self.services is not None:
            self.services.close()
        self.store.close()
        log.info("stopped")
