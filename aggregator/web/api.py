"""The JSON API under /api/: the review desk for scripts and other tools.

Authentication is a bearer token (``[review] api_tokens_env`` / ``api_tokens_file``; the
token's name is recorded as the reviewer) or the review pages' session cookie, whose
writes then need its CSRF token in ``X-CSRF-Token``. Every write names the version of the
draft it is based on (a ``version`` field or ``If-Match``); a stale one gets 409 and
changes nothing. The OpenAPI document describing all of it is at /api/openapi.json.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aggregator.desk.entries import entry_json
from aggregator.desk.service import ACTIONS, Desk
from aggregator.errors import InvalidEditError
from aggregator.models import DraftStatus
from aggregator.publishing.publish import credit_html
from aggregator.shapes import edits_json, iso
from aggregator.store import DraftView
from aggregator.store.listing import LISTED_STATES
from aggregator.untrusted import plain_text, safe_http_url
from aggregator.web.auth import Reviewer
from aggregator.web.openapi import openapi_document
from aggregator.web.web_input import Problem, expected_version, read_json_object

API_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
MAX_PAGE = 200
PATCH_FIELDS = {"version", "title", "body_html", "blocks"}


def draft_summary(d: DraftView, base_url: str) -> dict[str, Any]:
    return {
        "id": d.id,
        "status": d.status.value,
        "version": d.version,
        # Text and links leave here as they leave in the feeds: no controls, web URLs only.
        "title": plain_text(d.title),
        "original_title": plain_text(d.original_title),
        "original_url": safe_http_url(d.original_url),
        "author": plain_text(d.author) if d.author else d.author,
        "feed": d.feed,
        "feed_slug": d.feed_slug,
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
        "approved_at": iso(d.approved_at),
        "reviewed_by": d.reviewed_by,
        "warnings": list(d.warnings),
        "stale": d.stale,
        "article_url": f"{base_url.rstrip('/')}/articles/{d.id}" if d.published else None,
        "published": d.published,
        "withdrawn_at": iso(d.withdrawn_at),
    }


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse(payload, status_code=status, headers={**API_HEADERS, **(headers or {})})


class ApiViews:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.base_url = desk.settings.server.base_url
        self.limit = desk.settings.review.max_body_bytes
        self._openapi = openapi_document(desk.settings)

    # ------------------------------------------------------------ plumbing

    def _reviewer(self, request: Request, *, writing: bool) -> Reviewer:
        reviewer = self.desk.api_reviewer(request)
        if reviewer is None:
            given = request.headers.get("authorization")
            raise Problem(
                401,
                "this API needs an API token (Authorization: Bearer TOKEN) or a review session"
                + ("; the token given is not valid" if given else ""),
                headers={"WWW-Authenticate": 'Bearer realm="aggregator"'},
            )
        if writing and reviewer.scope != "write":
            raise Problem(
                403,
                f"the API token {reviewer.name!r} has the scope 'read': it cannot change "
                "anything (give a token with the scope 'write')",
            )
        if writing and not self.desk.auth.check_csrf(reviewer, request.headers.get("x-csrf-token")):
            raise Problem(
                403,
                "a write with the review session cookie needs its CSRF token in the "
                "X-CSRF-Token header (or use an API token)",
            )
        return reviewer

    def _detail(self, draft_id: int) -> dict[str, Any]:
        page = self.desk.page(draft_id)
        d = page.draft
        detail = page.detail
        changes = page.changes
        return {
            **draft_summary(d, self.base_url),
            "body_html": d.body_html,
            "credit_html": credit_html(d),
            "published_at": iso(d.published_at),
            "engine": d.engine,
            "source_language": d.source_language,
            "target_language": d.target_language,
            "source_changed_at": iso(d.source_changed_at),
            **edits_json(d),
            "blocks": [
                {
                    "index": p.index,
                    "tag": p.tag,
                    "original_html": p.original_html,
                    "french_html": p.french_html,
                }
                for p in page.pairs
            ],
            "source_changes": (
                [{"kind": c.kind, "text": c.text} for c in changes] if changes is not None else None
            ),
            "events": [
                {"action": e.action, "actor": e.actor, "detail": e.detail, "at": iso(e.at)}
                for e in detail.events
            ],
        }

    def _with_etag(self, payload: dict[str, Any], status: int = 200) -> Response:
        return json_response(payload, status, {"ETag": f'"v{payload["version"]}"'})

    # ------------------------------------------------------------ views

    async def openapi(self, request: Request) -> Response:
        return json_response(self._openapi)

    def list_drafts(self, request: Request) -> Response:
        self._reviewer(request, writing=False)
        params = request.query_params
        status = params.get("status", "pending")
        if status not in ("pending", "approved", "rejected", "withdrawn", "all"):
            raise Problem(422, "'status' must be pending, approved, rejected, withdrawn or all")
        limit = _bounded_int(params.get("limit", "50"), "limit", 1, MAX_PAGE)
        offset = _bounded_int(params.get("offset", "0"), "offset", 0, 10**9)
        feed = params.get("feed")
        drafts = self.desk.store.list_drafts(None if status == "all" else DraftStatus(status))
        if feed:
            drafts = [d for d in drafts if feed in (d.feed_slug, d.feed)]
        page = drafts[offset : offset + limit]
        return json_response(
            {
                "drafts": [draft_summary(d, self.base_url) for d in page],
                "total": len(drafts),
                "limit": limit,
                "offset": offset,
            }
        )

    def get_draft(self, request: Request) -> Response:
        self._reviewer(request, writing=False)
        return self._with_etag(self._detail(request.path_params["id"]))

    def events(self, request: Request) -> Response:
        self._reviewer(request, writing=False)
        limit = _bounded_int(request.query_params.get("limit", "100"), "limit", 1, 1000)
        return json_response(
            {
                "events": [
                    {
                        "draft_id": e.draft_id,
                        "draft_title": e.draft_title,
                        "action": e.action,
                        "actor": e.actor,
                        "detail": e.detail,
                        "at": iso(e.at),
                    }
                    for e in self.desk.store.recent_events(limit)
                ]
            }
        )

    async def update_draft(self, request: Request) -> Response:
        reviewer = self._reviewer(request, writing=True)
        body = await read_json_object(request, self.limit)
        unknown = sorted(set(body) - PATCH_FIELDS)
        if unknown:
            raise Problem(
                422, f"unknown field {unknown[0]!r}; a draft update takes "
                f"{', '.join(sorted(PATCH_FIELDS))}",
            )  # fmt: skip
        version = expected_version(request, body.get("version"))
        title = _optional_string(body, "title")
        body_html = _optional_string(body, "body_html")
        blocks = _blocks(body.get("blocks"))
        draft_id = request.path_params["id"]
        await run_in_threadpool(
            self.desk.edit, reviewer, draft_id, version,
            title=title, body_html=body_html, blocks=blocks,
        )  # fmt: skip
        return self._with_etag(await run_in_threadpool(self._detail, draft_id))

    async def act(self, request: Request) -> Response:
        action = request.path_params["action"]
        if action not in ACTIONS:
            raise Problem(404, f"no such action {action!r}: one of {', '.join(ACTIONS)}")
        reviewer = self._reviewer(request, writing=True)
        has_body = request.headers.get("content-length", "0") != "0" or (
            "transfer-encoding" in request.headers
        )
        body = await read_json_object(request, self.limit) if has_body else {}
        unknown = sorted(set(body) - {"version"})
        if unknown:
            raise Problem(422, f"unknown field {unknown[0]!r}; {action} takes only 'version'")
        version = expected_version(request, body.get("version"))
        draft_id = request.path_params["id"]
        await run_in_threadpool(self.desk.act, reviewer, draft_id, version, action)
        return self._with_etag(await run_in_threadpool(self._detail, draft_id))

    # ------------------------------------------------------------ entries

    def list_entries(self, request: Request) -> Response:
        self._reviewer(request, writing=False)
        params = request.query_params
        state = params.get("state", "all")
        if state not in LISTED_STATES:
            raise Problem(422, f"'state' must be one of {', '.join(LISTED_STATES)}")
        limit = _bounded_int(params.get("limit", "50"), "limit", 1, MAX_PAGE)
        offset = _bounded_int(params.get("offset", "0"), "offset", 0, 10**9)
        found = self.desk.store.list_entries(state, feed=params.get("feed") or None)
        return json_response(
            {
                "entries": [entry_json(e) for e in found[offset : offset + limit]],
                "total": len(found),
                "limit": limit,
                "offset": offset,
            }
        )

    async def retry_entry(self, request: Request) -> Response:
        self._reviewer(request, writing=True)
        entry = await run_in_threadpool(
            self.desk.store.retry_entry, request.path_params["id"], now=self.desk.now()
        )
        return json_response(entry_json(entry))


def _bounded_int(raw: str, name: str, low: int, high: int) -> int:
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise Problem(422, f"'{name}' must be a whole number from {low} to {high}, got {raw!r}")
    return int(raw)


def _optional_string(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise Problem(422, f"'{name}' must be a string, got {type(value).__name__}")
    return value


def _blocks(value: object) -> list[tuple[int, str]]:
    if value is None:
        return []
    if not isinstance(value, list) or not value:
        raise Problem(422, '\'blocks\' must be a non-empty list of {"index": N, "html": "…"}')
    blocks = []
    for i, item in enumerate(value):
        if (
            not isinstance(item, dict)
            or set(item) != {"index", "html"}
            or isinstance(item["index"], bool)
            or not isinstance(item["index"], int)
            or not isinstance(item["html"], str)
        ):
            raise Problem(
                422, f'\'blocks[{i}]\' must be {{"index": N, "html": "…"}}, got {item!r}'[:300]
            )
        blocks.append((item["index"], item["html"]))
    indexes = [index for index, _ in blocks]
    if len(set(indexes)) != len(indexes):
        raise InvalidEditError("the same block is given twice")
    return blocks
