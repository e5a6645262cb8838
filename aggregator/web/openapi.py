"""The OpenAPI 3.1 document of /api/, written out by hand: it is the API's contract, and
the tests check every answer of the real API against the schemas here."""

from __future__ import annotations

from typing import Any

from aggregator import __version__
from aggregator.config import Settings
from aggregator.desk.entries import ENTRY_FIELDS

_NULLABLE_STRING = {"type": ["string", "null"]}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "422": {"$ref": "#/components/responses/Unprocessable"},
}
_WRITE_ERRORS = {
    **_ERRORS,
    "403": {"$ref": "#/components/responses/Forbidden"},
    "404": {"$ref": "#/components/responses/NotFound"},
    "409": {"$ref": "#/components/responses/Conflict"},
    "413": {"$ref": "#/components/responses/TooLarge"},
}
_DRAFT_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": 'The version you saw, as the ETag of GET (`"v3"`); or a `version` field.',
    "schema": {"type": "string"},
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "status"],
        "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
    },
    "DraftSummary": {
        "type": "object",
        "required": [
            "id",
            "status",
            "version",
            "title",
            "original_title",
            "original_url",
            "author",
            "feed",
            "feed_slug",
            "created_at",
            "updated_at",
            "approved_at",
            "reviewed_by",
            "warnings",
            "stale",
            "article_url",
        ],
        "properties": {
            "id": {"type": "integer"},
            "status": {"enum": ["pending", "approved", "rejected", "withdrawn"]},
            "version": {"type": "integer", "description": "Send it back with every change."},
            "title": {"type": "string", "description": "French title."},
            "original_title": {"type": "string"},
            "original_url": _NULLABLE_STRING,
            "author": {**_NULLABLE_STRING, "description": "The original author."},
            "feed": {"type": "string"},
            "feed_slug": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "approved_at": _NULLABLE_TIME,
            "reviewed_by": _NULLABLE_STRING,
            "warnings": {"type": "array", "items": {"type": "string"}},
            "stale": {
                "type": "boolean",
                "description": "Approved, and the original changed since: look again.",
            },
            "article_url": _NULLABLE_STRING,
            "published": {
                "type": "boolean",
                "description": "A version is in the feeds (while a redraft of a published "
                "article waits for review: the one approved before).",
            },
            "withdrawn_at": _NULLABLE_TIME,
        },
    },
    "EditFlag": {
        "type": "object",
        "description": "An edit kept over a redraft although its original changed.",
        "required": ["part", "index", "text", "old_source", "new_source", "flagged_at"],
        "properties": {
            "part": {"type": "string"},
            "index": {"type": ["integer", "null"]},
            "text": {"type": "string"},
            "old_source": {"type": "string", "description": "The original the edit was made on."},
            "new_source": {"type": "string", "description": "The original as it is now."},
            "flagged_at": {"type": "string", "format": "date-time"},
        },
    },
    "Block": {
        "type": "object",
        "required": ["index", "tag", "original_html", "french_html"],
        "properties": {
            "index": {"type": "integer"},
            "tag": {"type": "string"},
            "original_html": {"type": "string"},
            "french_html": {"type": "string"},
        },
    },
    "Event": {
        "type": "object",
        "required": ["action", "actor", "detail", "at"],
        "properties": {
            "action": {"type": "string"},
            "actor": {"type": "string"},
            "detail": _NULLABLE_STRING,
            "at": {"type": "string", "format": "date-time"},
            "draft_id": {"type": "integer"},
            "draft_title": {"type": "string"},
        },
    },
    "Draft": {
        "allOf": [
            _ref("DraftSummary"),
            {
                "type": "object",
                "required": [
                    "body_html",
                    "credit_html",
                    "published_at",
                    "engine",
                    "source_language",
                    "target_language",
                    "source_changed_at",
                    "blocks",
                    "source_changes",
                    "events",
                ],
                "properties": {
                    "body_html": {"type": "string", "description": "French body (HTML)."},
                    "credit_html": {"type": "string"},
                    "published_at": _NULLABLE_TIME,
                    "engine": {"type": "string"},
                    "source_language": {"type": "string"},
                    "target_language": {"type": "string"},
                    "source_changed_at": _NULLABLE_TIME,
                    "blocks": {"type": "array", "items": _ref("Block")},
                    "source_changes": {
                        "type": ["array", "null"],
                        "items": {
                            "type": "object",
                            "required": ["kind", "text"],
                            "properties": {
                                "kind": {"enum": ["same", "removed", "added"]},
                                "text": {"type": "string"},
                            },
                        },
                    },
                    "events": {"type": "array", "items": _ref("Event")},
                    "edited": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": 'Parts changed by an editor ("title", "block N" from 1, '
                        '"body"), kept over every redraft.',
                    },
                    "edit_flags": {"type": "array", "items": _ref("EditFlag")},
                    "review_policy": {"enum": ["manual"]},
                },
            },
        ]
    },
    "DraftList": {
        "type": "object",
        "required": ["drafts", "total", "limit", "offset"],
        "properties": {
            "drafts": {"type": "array", "items": _ref("DraftSummary")},
            "total": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        },
    },
    "EventList": {
        "type": "object",
        "required": ["events"],
        "properties": {"events": {"type": "array", "items": _ref("Event")}},
    },
    "DraftUpdate": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "version": {"type": "integer"},
            "title": {"type": "string", "minLength": 1, "maxLength": 500},
            "body_html": {"type": "string", "description": "Sanitized when saved."},
            "blocks": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["index", "html"],
                    "properties": {
                        "index": {"type": "integer", "minimum": 0},
                        "html": {"type": "string", "description": "Inline HTML only."},
                    },
                },
            },
        },
    },
    "Entry": {
        "type": "object",
        "required": list(ENTRY_FIELDS),  # what the CLI's --json promises too
        "properties": {
            "id": {"type": "integer"},
            "feed": {"type": "string"},
            "title": {"type": "string", "description": "The original title."},
            "url": {**_NULLABLE_STRING, "description": "The original article."},
            "state": {
                "enum": ["skipped", "failing", "pending", "drafted"],
                "description": "skipped: not translated (see reason); failing: the last "
                "attempt failed (see last_error), retried at next_attempt_at.",
            },
            "reason": {**_NULLABLE_STRING, "description": "Why a skipped entry was skipped."},
            "attempts": {"type": "integer"},
            "last_error": _NULLABLE_STRING,
            "next_attempt_at": _NULLABLE_TIME,
            "feed_slug": {"type": "string"},
            "stage": {"enum": ["new", "extracted", "drafted", "skipped"]},
            "published_at": _NULLABLE_TIME,
            "updated_at": {"type": "string", "format": "date-time"},
            "full_text_source": _NULLABLE_STRING,
            "draft_id": {"type": ["integer", "null"]},
        },
    },
    "EntryList": {
        "type": "object",
        "required": ["entries", "total", "limit", "offset"],
        "properties": {
            "entries": {"type": "array", "items": _ref("Entry")},
            "total": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        },
    },
    "VersionOnly": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"version": {"type": "integer"}},
    },
}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def openapi_document(settings: Settings) -> dict[str, Any]:
    draft_response = {
        **_json(_ref("Draft"), "The draft, as it is now."),
        "headers": {"ETag": {"schema": {"type": "string"}, "description": '"v" + version'}},
    }
    actions = {
        "approve": "Approve a pending draft: it is published, credited to you.",
        "reject": "Reject a pending draft: it is never published and never comes back.",
        "retranslate": "Send the draft back to translation; it becomes pending (a published "
        "version stays in the feeds until the new one is approved).",
        "withdraw": "Take a published draft out of the feeds; /articles/{id} then answers "
        "410 Gone.",
        "acknowledge": "Keep a stale draft's translation after looking at what changed.",
    }
    paths: dict[str, Any] = {
        "/api/drafts": {
            "get": {
                "operationId": "listDrafts",
                "summary": "Drafts of one status, newest first.",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {
                            "enum": ["pending", "approved", "rejected", "withdrawn", "all"],
                            "default": "pending",
                        },
                    },
                    {"name": "feed", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                    },
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                ],
                "responses": {"200": _json(_ref("DraftList"), "Drafts."), **_ERRORS},
            }
        },
        "/api/drafts/{id}": {
            "parameters": [_DRAFT_ID],
            "get": {
                "operationId": "getDraft",
                "summary": "One draft: French and original block by block, history.",
                "responses": {
                    "200": draft_response,
                    "404": {"$ref": "#/components/responses/NotFound"},
                    **_ERRORS,
                },
            },
            "patch": {
                "operationId": "updateDraft",
                "summary": "Change the title, the whole body or some blocks.",
                "parameters": [_IF_MATCH],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("DraftUpdate")}},
                },
                "responses": {"200": draft_response, **_WRITE_ERRORS},
            },
        },
        "/api/events": {
            "get": {
                "operationId": "listEvents",
                "summary": "The audit trail: who did what to which draft, newest first.",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    }
                ],
                "responses": {"200": _json(_ref("EventList"), "Events."), **_ERRORS},
            }
        },
        "/api/entries": {
            "get": {
                "operationId": "listEntries",
                "summary": "Entries of one state, newest first: skipped ones with their reason "
                "(members-only posts among them), failing ones with their last error.",
                "parameters": [
                    {
                        "name": "state",
                        "in": "query",
                        "schema": {
                            "enum": ["skipped", "failing", "pending", "drafted", "all"],
                            "default": "all",
                        },
                    },
                    {
                        "name": "feed",
                        "in": "query",
                        "description": "A feed's name, slug or URL.",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                    },
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                ],
                "responses": {"200": _json(_ref("EntryList"), "Entries."), **_ERRORS},
            }
        },
        "/api/entries/{id}/retry": {
            "parameters": [_DRAFT_ID],
            "post": {
                "operationId": "retryEntry",
                "summary": "Take a skipped, failing or pending entry again at the next pass "
                "(a skipped one from its full text). 409 when it already has a draft.",
                "responses": {
                    "200": _json(_ref("Entry"), "The entry, as it is now."),
                    **_WRITE_ERRORS,
                },
            },
        },
        "/api/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1 document."}},
            }
        },
    }
    for action, summary in actions.items():
        paths[f"/api/drafts/{{id}}/{action}"] = {
            "parameters": [_DRAFT_ID],
            "post": {
                "operationId": f"{action}Draft",
                "summary": summary,
                "parameters": [_IF_MATCH],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref("VersionOnly")}},
                },
                "responses": {"200": draft_response, **_WRITE_ERRORS},
            },
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "aggregator review API",
            "version": __version__,
            "description": (
                "Review machine-translated French drafts of English newsletters. Every change "
                "names the draft version it is based on; of two concurrent changes one wins "
                "and the other gets 409 with nothing written."
            ),
        },
        "servers": [{"url": settings.server.base_url.rstrip("/")}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "aggregator_session",
                    "description": "Review session; writes also need the X-CSRF-Token header.",
                },
            },
            "schemas": SCHEMAS,
            "responses": {
                "Unauthorized": _error("No valid token or session."),
                "Forbidden": _error("Session write without its CSRF token, or cross-site."),
                "NotFound": _error("No such draft."),
                "Conflict": _error(
                    "The draft changed since the version you sent, or the action does not "
                    "apply to its status. Nothing was written."
                ),
                "TooLarge": _error("The body is larger than [review] max_body_bytes."),
                "Unprocessable": _error("The request cannot be read or is not valid."),
            },
        },
    }
