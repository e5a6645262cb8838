"""The publication directory: every published feed and page, written once per change.

When the publication changes, every public resource is rendered (by ``web.public``) and
handed here as ``Page``s. Each gets its validators, then the whole set is written as a new
tree beside the old one, with a ``.gz`` sibling per file, and the ``current`` symlink is
swapped to it in one rename: a web server reading ``current/`` sees the old publication or
the new one, never half of each.

Validators are the ones nginx computes for a static file, so that it and ``aggregator
serve`` answer the same ETag and Last-Modified for the same bytes: a file's mtime is the
publication time of the change that last altered its bytes (unchanged files keep theirs, so
their 304s survive other articles' approvals and restarts), and its ETag is nginx's
``"mtime-size"`` in hexadecimal. A changed file's mtime always moves forward by at least a
second, so two edits in one second of the same length still get two ETags.

Only 200s with no query string are files. Pages beyond the first (``/?page=2``) and
withdrawn articles' 410 pages live in memory only: a web server in front passes what it
finds no file for to ``aggregator serve``, which answers them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from aggregator.publishing.representation import EPOCH, Representation, represent

log = logging.getLogger("aggregator.publishing.directory")
CURRENT = "current"
GENERATION_PREFIX = "generation-"
INDEX = "index.html"


@dataclass(frozen=True)
class Page:
    """One rendered public resource, before its validators."""

    key: str  # what a request asks for: the path, and "?page=N" beyond the first page
    body: bytes
    content_type: str
    max_age: int
    status: int = 200
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stamped:
    """What a resource's validators were derived from, kept to carry them forward."""

    digest: str
    modified: int


def file_name(page: Page) -> str | None:
    """Where ``page`` lives in the tree, or None when only ``aggregator serve`` answers it."""
    if "?" in page.key or not page.key.startswith("/") or ".." in page.key.split("/"):
        return None
    if page.status != 200:
        return None
    # A home page ("/", a language's "/es/") is its folder's index.html.
    return page.key[1:] + INDEX if page.key.endswith("/") else page.key[1:]


class PublicationDirectory:
    """Writes publications under ``root`` and remembers the validators of the last one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.stamped: dict[str, Stamped] | None = None

    @property
    def current(self) -> Path:
        return self.root / CURRENT

    def publish(
        self,
        pages: Iterable[Page],
        moment: datetime | None,
        serve: Callable[[dict[str, Representation]], None] = lambda served: None,
    ) -> dict[str, Representation]:
        """Give every page its validators, write them all as the new current tree, and
        return what to serve by request key. A tree that cannot be written is logged, and
        the pages are still served from memory.

        ``serve`` gets what to serve before the new tree becomes current: a web server in
        front answers the tree's files and passes the rest (a withdrawn article's 410) to
        the process that serves from memory, which must never be the older of the two."""
        publication_time = int((moment or EPOCH).timestamp())
        before = self.stamped if self.stamped is not None else self._stamped_on_disk()
        pages = list(pages)
        stamped: dict[str, Stamped] = {}
        served: dict[str, Representation] = {}
        for page in pages:
            digest = hashlib.sha256(page.body).hexdigest()
            previous = before.get(page.key)
            if previous is not None and previous.digest == digest:
                modified = previous.modified
            elif previous is not None:
                modified = max(publication_time, previous.modified + 1)
            else:
                modified = publication_time
            stamped[page.key] = Stamped(digest, modified)
            served[page.key] = represent(
                page.body,
                page.content_type,
                modified=modified,
                max_age=page.max_age,
                status=page.status,
                extra=page.extra,
            )
        serve(served)
        try:
            self._write(pages, served)
        except OSError as exc:
            log.error("cannot write the publication directory %s: %s", self.root, exc)
        self.stamped = stamped
        return served

    # ------------------------------------------------------------ the tree

    def _write(self, pages: list[Page], served: dict[str, Representation]) -> None:
        if not self.root.exists():
            self.root.mkdir(parents=True)
            self.root.chmod(0o755)  # for the web server's user, whatever the umask
        tree = Path(tempfile.mkdtemp(prefix=GENERATION_PREFIX, dir=self.root))
        try:
            tree.chmod(0o755)  # mkdtemp's 0700 would hide it from the web server's user
            for page in pages:
                name = file_name(page)
                if name is None:
                    continue
                rep = served[page.key]
                path = tree / name
                path.parent.mkdir(parents=True, exist_ok=True)
                _write_file(path, rep.plain.body, rep.modified)
                _write_file(path.with_name(path.name + ".gz"), rep.compressed.body, rep.modified)
            link = self.root / f".{CURRENT}-{os.getpid()}"
            link.unlink(missing_ok=True)
            link.symlink_to(tree.name)
            os.replace(link, self.current)  # the one atomic step
        except BaseException:
            shutil.rmtree(tree, ignore_errors=True)
            raise
        self._remove_old_trees(keep=tree.name)

    def _remove_old_trees(self, keep: str) -> None:
        """Every older tree goes; a reader still sending one of its files keeps its open
        descriptor, so nothing is cut short."""
        for child in self.root.iterdir():
            if child.name.startswith(GENERATION_PREFIX) and child.name != keep:
                shutil.rmtree(child, ignore_errors=True)

    def _stamped_on_disk(self) -> dict[str, Stamped]:
        """The validators of the tree a previous process left, so a restart keeps them."""
        stamped: dict[str, Stamped] = {}
        if not self.current.is_dir():
            return stamped
        for path in self.current.rglob("*"):
            if path.suffix == ".gz" or not path.is_file():
                continue
            relative = path.relative_to(self.current).as_posix()
            # "/" and a language's "/es/" are their folder's index.html.
            is_index = relative == INDEX or relative.endswith("/" + INDEX)
            key = "/" + (relative.removesuffix(INDEX) if is_index else relative)
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                stamped[key] = Stamped(digest, int(path.stat().st_mtime))
            except OSError:
                continue
        return stamped


def _write_file(path: Path, body: bytes, modified: int) -> None:
    path.write_bytes(body)
    path.chmod(0o644)
    os.utime(path, (modified, modified))
