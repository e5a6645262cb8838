"""Storage: the only package that opens database sessions.

Split by domain (feeds, entries, drafts, what is published, translation memory);
``Store`` is all of them on one database. No session is held open during network I/O:
callers claim work in one short transaction, receive plain snapshots, do their I/O, and
write the outcome in another.

May import the base modules only (models, errors, config, ``transitions``…): what a rule
decides (``transitions``) or how an edit lines up with the HTML (``translation.kept``,
passed in) comes from the caller; the store persists it.
"""

from __future__ import annotations

from aggregator.config import Settings
from aggregator.store.base import MIGRATIONS, StoreBase
from aggregator.store.drafts import DraftStore
from aggregator.store.entries import EntryStore, Progress
from aggregator.store.feeds import FeedStore
from aggregator.store.listing import EntryListingStore
from aggregator.store.memory import MemoryStore, PendingMemory, Remembered, Usage
from aggregator.store.publication import PublicationStore
from aggregator.store.snapshots import (
    DraftContent,
    DraftView,
    EntryListing,
    EntryWork,
    FeedHealth,
    FeedWork,
    PollOutcome,
    UnchangedPoll,
    slugify,
)
from aggregator.store.stats import Overview, StatsStore
from aggregator.store.users import SessionView, UserStore, UserView


class Store(
    FeedStore,
    EntryStore,
    EntryListingStore,
    DraftStore,
    PublicationStore,
    StatsStore,
    MemoryStore,
    UserStore,
):
    """Every query the program makes, on one database."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls(settings.database.url)


__all__ = [
    "MIGRATIONS",
    "DraftContent",
    "DraftView",
    "EntryListing",
    "EntryWork",
    "FeedHealth",
    "FeedWork",
    "MemoryStore",
    "Overview",
    "PendingMemory",
    "PollOutcome",
    "Progress",
    "Remembered",
    "SessionView",
    "Store",
    "StoreBase",
    "UnchangedPoll",
    "Usage",
    "UserStore",
    "UserView",
    "slugify",
]
