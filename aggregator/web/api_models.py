"""The JSON API's types: what a client may send (bodies and query strings) and what it gets.

These models are the one description of /api/: the API validates every request with them
and the OpenAPI document (``openapi``) is their JSON Schema, so the two cannot differ. The
answer models describe exactly what ``aggregator.shapes`` and ``desk.entries`` write (no
field more: ``extra="forbid"`` makes a new field a schema error in the tests).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from aggregator.models import DraftStatus, EntryState

MAX_PAGE = 200


def _version_number(value: object) -> object:
    # JSON's true is a Python int: a version is a number and nothing else.
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("version", "must be the draft's version number")
    return value


VersionNumber = Annotated[
    int,
    Field(ge=0, description="The version you saw (GET the draft); or an If-Match header."),
    BeforeValidator(_version_number),
]


class Request(BaseModel):
    """A request body: JSON types as they are (no "3" for 3), no field it does not name."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    """A query string: its values are text, read as the types below; others are ignored."""


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- requests


class BlockEdit(Request):
    index: int = Field(ge=0, description="The block's index, from 0, as in the draft's blocks.")
    html: str = Field(description="Inline HTML only.")


class DraftUpdate(Request):
    """Change the title, the whole body or some blocks (not the body and blocks both)."""

    version: VersionNumber | None = None
    title: str | None = Field(None, description="Blank is refused; markup is kept as text.")
    body_html: str | None = Field(None, description="Sanitized when saved.")
    blocks: list[BlockEdit] | None = Field(None, min_length=1)

    @field_validator("blocks")
    @classmethod
    def _each_block_once(cls, blocks: list[BlockEdit] | None) -> list[BlockEdit] | None:
        indexes = [block.index for block in blocks or []]
        if len(set(indexes)) != len(indexes):
            raise PydanticCustomError("repeated", "gives the same block twice")
        return blocks


class VersionOnly(Request):
    version: VersionNumber | None = None


class PageQuery(Query):
    limit: int = Field(50, ge=1, le=MAX_PAGE)
    offset: int = Field(0, ge=0, le=10**9)


class DraftQuery(PageQuery):
    status: Literal["pending", "approved", "rejected", "withdrawn", "all"] = "pending"
    feed: str = Field("", description="A feed's name or slug.")
    language: str = Field("", description='A target language ("fr", "es"); empty: all.')


class EventQuery(Query):
    limit: int = Field(100, ge=1, le=1000)


class EntryQuery(PageQuery):
    state: Literal["skipped", "failing", "pending", "drafted", "all"] = "all"
    feed: str = Field("", description="A feed's name, slug or URL.")


# ---------------------------------------------------------------- answers


class Error(Answer):
    error: str = Field(description="What was wrong, for a person; it names the field.")
    status: int


class DraftSummary(Answer):
    id: int
    status: DraftStatus
    version: int = Field(description="Send it back with every change.")
    title: str = Field(description="French title.")
    original_title: str
    original_url: str | None
    author: str | None = Field(description="The original author.")
    feed: str
    feed_slug: str
    created_at: datetime
    updated_at: datetime
    approved_at: datetime | None
    reviewed_by: str | None
    warnings: list[str]
    stale: bool = Field(description="Approved, and the original changed since: look again.")
    language: str = Field(description="The draft's target language; one draft per language.")
    article_url: str | None
    published: bool = Field(
        description="A version is in the feeds (while a redraft of a published article "
        "waits for review: the one approved before)."
    )
    auto_published: bool = Field(
        description='The version in the feeds went out unreviewed (its feed has review = "auto").'
    )
    withdrawn_at: datetime | None


class EditFlag(Answer):
    """An edit kept over a redraft although its original changed."""

    part: str
    index: int | None
    text: str
    old_source: str = Field(description="The original the edit was made on.")
    new_source: str = Field(description="The original as it is now.")
    flagged_at: datetime


class Block(Answer):
    index: int
    tag: str
    original_html: str
    french_html: str


class SourceChange(Answer):
    kind: Literal["same", "removed", "added"]
    text: str


class DraftEvent(Answer):
    action: str
    actor: str
    detail: str | None
    at: datetime


class Draft(DraftSummary):
    body_html: str = Field(description="French body (HTML).")
    credit_html: str
    published_at: datetime | None
    engine: str
    source_language: str
    target_language: str
    characters: int = Field(description="Characters sent to the engine for this draft.")
    requests: int = Field(description="Requests made to the engine for this draft.")
    source_changed_at: datetime | None
    edited: list[str] = Field(
        description='Parts changed by an editor ("title", "block N" from 1, "body"), kept '
        "over every redraft."
    )
    edit_flags: list[EditFlag]
    review_policy: Literal["manual"]
    blocks: list[Block]
    source_changes: list[SourceChange] | None = Field(
        description="For a stale draft: what changed in the original since it was reviewed."
    )
    events: list[DraftEvent]


class Page(Answer):
    """A page of a list: ``total`` items in all, from ``offset``, at most ``limit``."""

    total: int
    limit: int
    offset: int


class DraftList(Page):
    drafts: list[DraftSummary]


class Event(DraftEvent):
    draft_id: int
    draft_title: str


class EventList(Answer):
    events: list[Event]


class Entry(Answer):
    id: int
    feed: str
    title: str = Field(description="The original title.")
    url: str | None = Field(description="The original article.")
    state: Literal["skipped", "failing", "pending", "drafted"] = Field(
        description="skipped: not translated (see reason); failing: the last attempt failed "
        "(see last_error), retried at next_attempt_at."
    )
    reason: str | None = Field(description="Why a skipped entry was skipped.")
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    feed_slug: str
    stage: EntryState
    published_at: datetime | None
    updated_at: datetime
    full_text_source: str | None
    draft_id: int | None


class EntryList(Page):
    entries: list[Entry]
