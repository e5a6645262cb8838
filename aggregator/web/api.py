"""The JSON API under /api/: the review desk for scripts and other tools.

Authentication is a bearer token (``[review] api_tokens_env`` / ``api_tokens_file``; the
token's name is recorded as the reviewer) or the review pages' session cookie, whose
writes then need its CSRF token in ``X-CSRF-Token``. Every write names the version of the
draft it is based on (a ``version`` field or ``If-Match``); a stale one gets 409 and
changes nothing.

Each operation is declared once (``ApiViews.operations``) with its models: the routes, the
request validation and the OpenAPI document at /api/openapi.json all come from that list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from aggregator.desk.entries import entry_json
from aggregator.desk.service import ACTIONS, Desk
from aggregator.errors import (
    AggregatorError,
    ForbiddenError,
    NotAuthenticatedError,
    NotFoundError,
    RequestError,
)
from aggregator.models import DraftStatus
from aggregator.shapes import draft_json, draft_summary_json, iso
from aggregator.web.answers import error_answer
from aggregator.web.api_models import (
    Draft,
    DraftList,
    DraftQuery,
    DraftUpdate,
    Entry,
    EntryList,
    EntryQuery,
    EventList,
    EventQuery,
    PageQuery,
    VersionOnly,
)
from aggregator.web.auth import Auth, Reviewer
from aggregator.web.doors import api_reviewer
from aggregator.web.openapi import WRITING, Operation, openapi_document
from aggregator.web.web_input import expected_version, read_json_object

API_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
ACTION_SUMMARIES = {
    "approve": "Approve a pending draft: it is published, credited to you.",
    "reject": "Reject a pending draft: it is never published and never comes back.",
    "retranslate": "Send the draft back to translation; it becomes pending (a published "
    "version stays in the feeds until the new one is approved).",
    "withdraw": "Take a published draft out of the feeds; /articles/{id} then answers 410 Gone.",
    "acknowledge": "Keep a stale draft's translation after looking at what changed.",
}
Model = TypeVar("Model", bound=BaseModel)
Item = TypeVar("Item")


@dataclass(frozen=True)
class Call:
    """A request as a view reads it: who sent it, and what it sent, validated by the
    operation's models (``query``, ``body``: instances of them, or None)."""

    reviewer: Reviewer | None
    id: int
    query: Any
    body: Any
    if_match: str | None


View = Callable[[Call], dict[str, Any]]


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse(payload, status_code=status, headers={**API_HEADERS, **(headers or {})})


def refusal(exc: AggregatorError) -> Response:
    status, message, headers = error_answer(exc)
    if isinstance(exc, NotAuthenticatedError):
        headers["WWW-Authenticate"] = 'Bearer realm="aggregator"'
    return json_response({"error": message, "status": status}, status, headers)


class ApiViews:
    def __init__(self, desk: Desk, auth: Auth) -> None:
        self.desk = desk
        self.auth = auth
        self.base_url = desk.settings.server.base_url
        self.main_language = desk.settings.translation.target_language
        self.limit = desk.settings.review.max_body_bytes
        self.operations = self._operations()
        self._openapi = openapi_document([op for op, _ in self.operations], self.base_url)

    def _operations(self) -> list[tuple[Operation, View]]:
        draft = "/api/drafts/{id}"
        changes: dict[str, Any] = {"refusals": WRITING, "versioned": True}
        return [
            (
                Operation("GET", "/api/drafts", "listDrafts", "Drafts of one status, newest "
                          "first.", DraftList, query=DraftQuery),
                self.list_drafts,
            ),
            (
                Operation("GET", draft, "getDraft", "One draft: French and original block by "
                          "block, history.", Draft, refusals=(401, 404, 422), versioned=True),
                self.get_draft,
            ),
            (
                Operation("PATCH", draft, "updateDraft", "Change the title, the whole body or "
                          "some blocks.", Draft, body=DraftUpdate, **changes),
                self.update_draft,
            ),
            *(
                (
                    Operation("POST", f"{draft}/{action}", f"{action}Draft",
                              ACTION_SUMMARIES[action], Draft, body=VersionOnly,
                              body_required=False, **changes),
                    partial(self.act, action),
                )
                for action in ACTIONS
            ),
            (
                Operation("GET", "/api/events", "listEvents", "The audit trail: who did what "
                          "to which draft, newest first.", EventList, query=EventQuery),
                self.events,
            ),
            (
                Operation("GET", "/api/entries", "listEntries", "Entries of one state, newest "
                          "first: skipped ones with their reason (members-only posts among "
                          "them), failing ones with their last error.", EntryList,
                          query=EntryQuery),
                self.list_entries,
            ),
            (
                Operation("POST", "/api/entries/{id}/retry", "retryEntry", "Take a skipped, "
                          "failing or pending entry again at the next pass (a skipped one "
                          "from its full text). 409 when it already has a draft.", Entry,
                          refusals=WRITING),
                self.retry_entry,
            ),
            (
                Operation("GET", "/api/openapi.json", "openapi", "This document.", None,
                          refusals=(), public=True),
                lambda call: self._openapi,
            ),
        ]  # fmt: skip

    def routes(self) -> list[BaseRoute]:
        served: list[BaseRoute] = [
            Route(
                op.path.replace("{id}", "{id:int}"), self._endpoint(op, view), methods=[op.method]
            )
            for op, view in self.operations
        ]
        # After the actions: a misspelt one is told which exist.
        served.append(Route("/api/drafts/{id:int}/{action}", _unknown_action, methods=["POST"]))
        return served

    # ------------------------------------------------------------ plumbing

    def _endpoint(self, op: Operation, view: View) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                reviewer = None
                if not op.public:
                    reviewer = await run_in_threadpool(self._reviewer, request, op.writes)
                call = Call(
                    reviewer=reviewer,
                    id=request.path_params.get("id", 0),
                    query=valid(op.query, dict(request.query_params)) if op.query else None,
                    body=await self._body(op, request),
                    if_match=request.headers.get("if-match"),
                )
                payload = await run_in_threadpool(view, call)
            except AggregatorError as exc:
                return refusal(exc)
            etag = {"ETag": f'"v{payload["version"]}"'} if op.versioned else {}
            return json_response(payload, headers=etag)

        return endpoint

    async def _body(self, op: Operation, request: Request) -> BaseModel | None:
        if op.body is None:
            return None
        sent = request.headers.get("content-length", "0") != "0" or (
            "transfer-encoding" in request.headers
        )
        if not sent and not op.body_required:
            return op.body()
        return valid(op.body, await read_json_object(request, self.limit))

    def _reviewer(self, request: Request, writing: bool) -> Reviewer:
        reviewer = api_reviewer(self.auth, request)
        if reviewer is None:
            given = request.headers.get("authorization")
            raise NotAuthenticatedError(
                "this API needs an API token (Authorization: Bearer TOKEN) or a review session"
                + ("; the token given is not valid" if given else "")
            )
        if writing and reviewer.scope != "write":
            raise ForbiddenError(
                f"the API token {reviewer.name!r} has the scope 'read': it cannot change "
                "anything (give a token with the scope 'write')"
            )
        if writing and not self.auth.check_csrf(reviewer, request.headers.get("x-csrf-token")):
            raise ForbiddenError(
                "a write with the review session cookie needs its CSRF token in the "
                "X-CSRF-Token header (or use an API token)"
            )
        return reviewer

    def _draft(self, draft_id: int) -> dict[str, Any]:
        return draft_json(self.desk.page(draft_id), self.base_url, main_language=self.main_language)

    # ------------------------------------------------------------ views

    def list_drafts(self, call: Call) -> dict[str, Any]:
        query: DraftQuery = call.query
        status = None if query.status == "all" else DraftStatus(query.status)
        drafts = self.desk.store.draft_summaries(status, language=query.language or None)
        if query.feed:
            drafts = [d for d in drafts if query.feed in (d.feed_slug, d.feed)]
        main = self.main_language
        return page_of(
            "drafts",
            drafts,
            query,
            lambda d: draft_summary_json(d, self.base_url, main_language=main),
        )

    def get_draft(self, call: Call) -> dict[str, Any]:
        return self._draft(call.id)

    def update_draft(self, call: Call) -> dict[str, Any]:
        body: DraftUpdate = call.body
        assert call.reviewer is not None
        self.desk.edit(
            call.reviewer,
            call.id,
            expected_version(call.if_match, body.version),
            title=body.title,
            body_html=body.body_html,
            blocks=[(block.index, block.html) for block in body.blocks or ()],
        )
        return self._draft(call.id)

    def act(self, action: str, call: Call) -> dict[str, Any]:
        body: VersionOnly = call.body
        assert call.reviewer is not None
        version = expected_version(call.if_match, body.version)
        self.desk.act(call.reviewer, call.id, version, action)
        return self._draft(call.id)

    def events(self, call: Call) -> dict[str, Any]:
        query: EventQuery = call.query
        return {
            "events": [
                {
                    "draft_id": e.draft_id,
                    "draft_title": e.draft_title,
                    "action": e.action,
                    "actor": e.actor,
                    "detail": e.detail,
                    "at": iso(e.at),
                }
                for e in self.desk.store.recent_events(query.limit)
            ]
        }

    def list_entries(self, call: Call) -> dict[str, Any]:
        query: EntryQuery = call.query
        found = self.desk.store.list_entries(query.state, feed=query.feed or None)
        return page_of("entries", found, query, entry_json)

    def retry_entry(self, call: Call) -> dict[str, Any]:
        return entry_json(self.desk.store.retry_entry(call.id, now=self.desk.now()))


def page_of(
    name: str, found: Sequence[Item], query: PageQuery, shown: Callable[[Item], dict[str, Any]]
) -> dict[str, Any]:
    """One page of ``found`` as a ``Page`` answer, its items under ``name``."""
    return {
        name: [shown(item) for item in found[query.offset : query.offset + query.limit]],
        "total": len(found),
        "limit": query.limit,
        "offset": query.offset,
    }


async def _unknown_action(request: Request) -> Response:
    action = request.path_params["action"]
    return refusal(NotFoundError(f"no such action {action!r}: one of {', '.join(ACTIONS)}"))


# ---------------------------------------------------------------- validation messages

# What a client is told, by pydantic's error type: "'limit' must be at least 1, got '0'".
PHRASES = {
    "missing": "is missing",
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "literal_error": "must be {expected}",
    "too_short": "must be a non-empty list",
    "list_type": "must be a list",
    "model_type": "must be an object",
}


def valid(model: type[Model], data: dict[str, Any]) -> Model:
    """``data`` as ``model``, or a RequestError (422) naming the first field that is wrong."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestError(explain(model, exc.errors(include_url=False)[0], data)) from None


def explain(model: type[BaseModel], error: ErrorDetails, data: dict[str, Any]) -> str:
    loc = error["loc"]
    if error["type"] == "extra_forbidden" and len(loc) == 1:
        return f"unknown field {loc[0]!r}; this request takes {', '.join(model.model_fields)}"
    phrase = PHRASES.get(error["type"], error["msg"].replace("Input should be", "must be", 1))
    phrase = phrase.format(**error.get("ctx", {}))
    item = next((i for i, part in enumerate(loc) if isinstance(part, int)), None)
    if item is None:
        where = ".".join(map(str, loc))
        return f"'{where}' {phrase}" + ("" if error["type"] == "missing" else _got(error["input"]))
    # Inside a list of objects: name the item, show what it should look like.
    name = str(loc[0])
    inner = ".".join(map(str, loc[item + 1 :]))
    shape = ", ".join(f'"{field}": …' for field in _item_fields(model, name))
    given: Any = data
    for part in loc[: item + 1]:
        given = given[part]
    inner = f"{inner!r} {phrase}" if inner else phrase
    return f"'{name}[{loc[item]}]' must be {{{shape}}}{_got(given)} ({inner})"


def _got(value: object) -> str:
    return f", got {value!r}"[:200]


def _item_fields(model: type[BaseModel], name: str) -> list[str]:
    """The fields of the model that the list field ``name`` holds."""
    kinds: list[Any] = [model.model_fields[name].annotation]
    while kinds:
        kind = kinds.pop()
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return list(kind.model_fields)
        kinds.extend(get_args(kind))
    return []
