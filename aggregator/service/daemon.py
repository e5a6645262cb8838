"""Process lifecycle: scheduler ticks, web server, signals, sd_notify, watchdog, leases, logs.

The scheduler only runs two fixed ticks; each tick claims due work from the database, so
nothing about what is due lives in memory and several processes can share one database.

Under systemd (Type=notify): READY=1 once the web server listens (or the worker's scheduler
runs), WATCHDOG=1 every WATCHDOG_USEC/2 only while the database answers, STOPPING=1 on the
way out. SIGTERM or SIGINT: stop claiming, let in-flight entries finish for a short grace,
release the rest for another process, exit 0 within 10 s. SIGHUP: reload config.toml.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import FrameType

import uvicorn
from apscheduler.schedulers.background import BackgroundScheduler

from aggregator import config as config_module
from aggregator.clock import utc_now
from aggregator.config import LogSettings, Settings
from aggregator.errors import AggregatorError
from aggregator.extraction.extract_worker import release_idle as release_extraction_children
from aggregator.extraction.language import detect
from aggregator.pipeline import Services, process_backlog
from aggregator.polling.refresh import poll_feeds
from aggregator.store import Store
from aggregator.web.app import create_app
from aggregator.web.public import PublicationCache

log = logging.getLogger("aggregator.service.daemon")
FEED_TICK_SECONDS = 30
# Seconds uvicorn gives open HTTP connections to finish once asked to stop.
WEB_GRACE_SECONDS = 2
NOTIFY_TIMEOUT_SECONDS = 1.0
# However short [publish] cache_ttl is, the background check leaves the database this long.
MIN_PUBLICATION_CHECK_SECONDS = 0.5
# Tables the web application reads once, when it is built.
WEB_TABLES = ("publish", "review")


# ---------------------------------------------------------------- systemd protocol


# Failures since the last datagram that got through: only the first one is logged.
_notify_failures: list[str] = []


def sd_notify(message: str) -> bool:
    """Send one datagram to systemd's notify socket, if there is one (no dependency)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # A listener that stopped reading must not block a shutdown.
            sock.settimeout(NOTIFY_TIMEOUT_SECONDS)
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        if not _notify_failures:
            log.warning("sd_notify to %s failed: %s", address.lstrip("\0"), exc)
        _notify_failures.append(str(exc))
        return False
    _notify_failures.clear()
    return True


def watchdog_interval() -> float | None:
    """Seconds between heartbeats (half of WATCHDOG_USEC), or None if no watchdog is set."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000


# ---------------------------------------------------------------- logs

_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


class JournalFormatter(logging.Formatter):
    """One line per record: ``<priority>level=… logger=… msg="…"`` (sd-daemon(3) prefix).

    journald files the priority; the rest is logfmt, so ``journalctl -u aggregator`` reads
    well and log shippers parse it. Newlines (tracebacks) are escaped, never split.
    """

    def format(self, record: logging.LogRecord) -> str:
        priority = next((p for level, p in _PRIORITIES if record.levelno >= level), 7)
        fields = [
            ("level", record.levelname.lower()),
            ("logger", record.name),
            ("msg", record.getMessage()),
        ]
        if record.exc_info:
            fields.append(("exc", self.formatException(record.exc_info)))
        return f"<{priority}>" + " ".join(f"{key}={_logfmt(value)}" for key, value in fields)


def _logfmt(value: str) -> str:
    if value and value.isprintable() and not any(c in value for c in ' "=\\'):
        return value
    return json.dumps(value, ensure_ascii=False)


def _stderr_is_journal() -> bool:
    """systemd sets JOURNAL_STREAM to "device:inode" of the stream it connected."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        stat = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return (
        device.isdigit()
        and inode.isdigit()
        and (stat.st_dev, stat.st_ino)
        == (
            int(device),
            int(inode),
        )
    )


def configure_logging(settings: LogSettings) -> None:
    """Apply [log]: the format of every line, and the level (``-v`` still means debug)."""
    journal = settings.format == "journal" or (settings.format == "auto" and _stderr_is_journal())
    formatter = (
        JournalFormatter()
        if journal
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    for handler in root.handlers:
        handler.setFormatter(formatter)
    if root.level != logging.DEBUG:
        root.setLevel(settings.level.upper())


# ---------------------------------------------------------------- the daemon


@dataclass
class Daemon:
    """``aggregator run`` (web + worker), ``worker`` or ``serve``."""

    settings: Settings
    store: Store
    web: bool = True
    worker: bool = True
    stopping: threading.Event = field(default_factory=threading.Event)
    # What the store is told "now" is; the scheduler's timers run on the wall clock.
    clock: Callable[[], datetime] = utc_now

    def __post_init__(self) -> None:
        self.services: Services | None = None
        self.scheduler: BackgroundScheduler | None = None
        self.server: uvicorn.Server | None = None
        self._retired: list[Services] = []
        self._backlog_lock = threading.Lock()
        self._backlog_again = threading.Event()
        self._ticks = 0
        self._ticks_done = threading.Condition()
        self._database_answers = True

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.schedule.lease)

    def run(self) -> int:
        configure_logging(self.settings.log)
        self._install_signal_handlers()
        self.store.upgrade()
        self.store.sync_feeds(self.settings.feeds, self.settings, self.clock())
        if self.worker:
            # Load the language model now, once, rather than in every thread that first needs
            # it while the first entries wait.
            detect("A sentence in English, long enough for the model to be consulted.")
            self.services = Services.build(self.settings, self.store, self.clock)
            self._start_scheduler()
            self._start_thread("leases", self._keep_leases)
        self._start_watchdog()
        try:
            if self.stopping.is_set():
                pass  # asked to stop while starting
            elif self.web:
                self._serve()
            else:
                self._ready(f"worker running, {self.settings.schedule.entry_concurrency} at once")
                self.stopping.wait()
        finally:
            finished = self._shutdown()
        if not finished:
            _exit_now()
        return 0

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        # Installed before uvicorn runs: it restores these and re-raises the signal it caught,
        # which then lands here instead of killing the process with the default action.
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGHUP, self._reload)

    def _ready(self, status: str) -> None:
        log.info("ready: %s", status)
        sd_notify(f"READY=1\nSTATUS={status}")

    def _serve(self) -> None:
        app = create_app(self.settings, self.store)
        config = uvicorn.Config(
            app,
            host=self.settings.server.host,
            port=self.settings.server.port,
            log_level="warning",
            log_config=None,  # uvicorn's records go through our handlers and format
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=WEB_GRACE_SECONDS,
            # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise, which
            # let any local client pose as anyone (and rotate past the login throttle):
            # only the proxies named in [server] trusted_proxies are believed.
            proxy_headers=bool(self.settings.server.trusted_proxies),
            forwarded_allow_ips=list(self.settings.server.trusted_proxies),
        )
        self.server = uvicorn.Server(config)
        original_startup = self.server.startup
        where = f"http://{self.settings.server.host}:{self.settings.server.port}"

        async def startup(sockets: list[socket.socket] | None = None) -> None:
            await original_startup(sockets)
            if self.server is not None and self.server.started:
                self._ready(f"serving on {where}" + (", worker running" if self.worker else ""))
                # The publication directory is written now, and again whenever another
                # process changes what is published, even if no public request comes here
                # (a web server in front may serve the directory itself). A public request
                # meanwhile waits for the first publication.
                self._start_thread("publication", lambda: self._keep_publication(app.state.cache))

        self.server.startup = startup  # type: ignore[method-assign]
        self.server.run()
        self.stopping.set()
        if not self.server.started:
            raise AggregatorError(
                f"cannot listen on {self.settings.server.host}:{self.settings.server.port}"
                " (is another process using the port?)"
            )

    def _keep_publication(self, cache: PublicationCache) -> None:
        self._publish(cache)
        while not self.stopping.wait(max(cache.ttl, MIN_PUBLICATION_CHECK_SECONDS)):
            self._publish(cache)

    def _publish(self, cache: PublicationCache) -> None:
        try:
            if cache.check():
                log.info("publication written to %s", cache.directory.current)
        except AggregatorError as exc:
            log.warning("cannot check the publication: %s", exc)
        except Exception:
            log.exception("rendering the publication failed; the next check tries again")

    def _start_thread(self, name: str, target: Callable[[], None]) -> None:
        threading.Thread(target=target, name=name, daemon=True).start()

    # ------------------------------------------------------------ ticks

    def _start_scheduler(self) -> None:
        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(
            self._feed_tick, "interval", seconds=FEED_TICK_SECONDS, id="poll_due_feeds",
            max_instances=1, coalesce=True, next_run_time=utc_now(),
        )  # fmt: skip
        # Two instances: a tick that finds the backlog busy only asks the running one to look
        # again, instead of APScheduler warning that it skipped a run.
        scheduler.add_job(
            self._backlog_tick, "interval", seconds=float(self.settings.schedule.backlog_interval),
            id="process_backlog", max_instances=2, coalesce=True, next_run_time=utc_now(),
        )  # fmt: skip
        scheduler.start()
        self.scheduler = scheduler

    def _tick(self, name: str, work: Callable[[], None]) -> None:
        if self.stopping.is_set():
            return
        with self._ticks_done:
            self._ticks += 1
        try:
            work()
        except AggregatorError as exc:
            log.error("%s failed: %s", name, exc)
        except Exception:
            log.exception("%s failed unexpectedly; the next tick tries again", name)
        finally:
            with self._ticks_done:
                self._ticks -= 1
                self._ticks_done.notify_all()

    def _feed_tick(self) -> None:
        def work() -> None:
            if self.services is None:
                return
            report = poll_feeds(self.services)
            if report.entries["new"] or report.entries["updated"]:
                self._process_backlog()

        self._tick("polling", work)

    def _backlog_tick(self) -> None:
        self._tick("processing the backlog", self._process_backlog)

    def _process_backlog(self) -> None:
        """Run the pipeline until no entry is due; one run at a time per process."""
        if not self._backlog_lock.acquire(blocking=False):
            self._backlog_again.set()
            return
        try:
            while not self.stopping.is_set() and self.services is not None:
                self._backlog_again.clear()
                concurrency = self.settings.schedule.entry_concurrency
                report = process_backlog(
                    self.services,
                    workers=concurrency,
                    batch_size=concurrency,
                    should_stop=self.stopping.is_set,
                )
                entries = report.entries
                if entries["drafted"] or entries["skipped"] or entries["failed"]:
                    log.info(
                        "backlog: %d drafted (%d published unreviewed), %d skipped, %d failed",
                        entries["drafted"], entries["published"], entries["skipped"],
                        entries["failed"],
                    )  # fmt: skip
                if not self._backlog_again.is_set():
                    break
        finally:
            # The pages are read: an idle extraction child would keep its memory till the
            # next tick (a later page starts one again).
            release_extraction_children()
            # Nothing of this run is in flight any more: a claim still held is a leftover.
            leftover = self.store.release_claims()
            if leftover:
                log.warning("released %d entries left claimed by an interrupted run", leftover)
            self._backlog_lock.release()

    def _keep_leases(self) -> None:
        """Renew the claims in flight, so a short lease only matters when a process dies."""
        while not self.stopping.wait(self.lease.total_seconds() / 3):
            try:
                self.store.renew_claims(self.clock(), self.lease)
            except AggregatorError as exc:
                log.warning("cannot renew leases: %s", exc)

    # ------------------------------------------------------------ watchdog

    def _start_watchdog(self) -> None:
        interval = watchdog_interval()
        if interval is not None:
            self._start_thread("watchdog", lambda: self._watch(interval))

    def _watch(self, interval: float) -> None:
        while not self.stopping.wait(interval):
            self._heartbeat()

    def _heartbeat(self) -> None:
        """WATCHDOG=1 only while the database answers: otherwise systemd restarts us."""
        answers = self.store.ping()
        if answers:
            sd_notify("WATCHDOG=1")
            if not self._database_answers:
                log.info("database %s answers again", self.store.safe_url)
                sd_notify("STATUS=database answers again")
        else:
            if self._database_answers:
                log.error(
                    "database %s does not answer: withholding the watchdog heartbeat",
                    self.store.safe_url,
                )
            sd_notify("STATUS=database unreachable: watchdog heartbeat withheld")
        self._database_answers = answers

    # ------------------------------------------------------------ reload

    def _reload(self, _signum: int, _frame: FrameType | None) -> None:
        self._start_thread("reload", self._reload_config)

    def _reload_config(self) -> None:
        sd_notify(
            f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
        )
        try:
            settings = config_module.load(self.settings.path)
        except AggregatorError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            sd_notify("READY=1")
            return
        for key in ("database", "server"):
            if getattr(settings, key) != getattr(self.settings, key):
                log.warning("[%s] changed: restart the service to apply it", key)
                settings = dataclasses.replace(settings, **{key: getattr(self.settings, key)})
        for key in WEB_TABLES if self.web else ():
            if getattr(settings, key, None) != getattr(self.settings, key, None):
                log.warning("[%s] changed: the web server applies it after a restart", key)
        if self.web and settings.published_languages != self.settings.published_languages:
            log.warning(
                "a feed's languages changed: drafts follow now; the web server routes a new "
                "language's paths after a restart (its published files are served at once)"
            )
        before = {feed.url for feed in self.settings.feeds}
        after = {feed.url for feed in settings.feeds}
        try:
            self.store.sync_feeds(settings.feeds, settings, self.clock())
        except AggregatorError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            sd_notify("READY=1")
            return
        self.settings = settings
        configure_logging(settings.log)
        if self.services is not None:
            self._retired.append(self.services)
            self.services = Services.build(settings, self.store, self.clock)
        if self.scheduler is not None:
            self.scheduler.reschedule_job(
                "process_backlog",
                trigger="interval",
                seconds=float(settings.schedule.backlog_interval),
            )
            # Feeds just added are due now: poll them without waiting for the next tick.
            self.scheduler.modify_job("poll_due_feeds", next_run_time=utc_now())
        log.info(
            "configuration reloaded: %d feeds (%d added, %d removed)",
            len(settings.feeds), len(after - before), len(before - after),
        )  # fmt: skip
        sd_notify("READY=1\nSTATUS=configuration reloaded")

    # ------------------------------------------------------------ stop

    def _stop(self, _signum: int, _frame: FrameType | None) -> None:
        self.stopping.set()
        if self.server is not None:
            self.server.should_exit = True

    def _shutdown(self) -> bool:
        """Stop claiming, give in-flight work the grace period, release what is left.

        True when nothing is running any more; False when work is still hung (a translation
        that does not answer), whose claims were released and whose results will be refused.
        """
        sd_notify("STOPPING=1")
        self.stopping.set()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        deadline = time.monotonic() + float(self.settings.schedule.shutdown_grace)
        with self._ticks_done:
            finished = self._ticks_done.wait_for(
                lambda: self._ticks == 0, timeout=max(0.0, deadline - time.monotonic())
            )
        if self.worker:
            try:
                released = self.store.release_claims()
            except AggregatorError as exc:
                released = 0
                log.error("cannot release claims (they expire with their lease): %s", exc)
            if released:
                log.warning(
                    "released %d in-flight entries for another process to take up", released
                )
        if finished:
            for services in [*self._retired, self.services]:
                if services is not None:
                    services.close()
            self.store.close()
        log.info("stopped" if finished else "stopped, abandoning work that did not finish")
        return finished


def _exit_now() -> None:
    """Leave without joining worker threads still blocked on the network: their claims were
    released and their writes would be refused, so there is nothing to wait for."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
