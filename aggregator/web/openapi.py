"""The OpenAPI 3.1 document of /api/, built from the API's operations (``Operation``) and
their pydantic models (``api_models``): every schema in it is the JSON Schema of a model
that validates requests or describes answers, so the document cannot say one thing while
the API does another."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from aggregator import __version__
from aggregator.web.api_models import Error

REFS = "#/components/schemas/{model}"
# Why a request is refused, by status: the components' responses, all of them an Error.
REFUSALS = {
    401: ("Unauthorized", "No valid token or session."),
    403: ("Forbidden", "A read-only token, a session write without its CSRF token."),
    404: ("NotFound", "No such draft or entry."),
    409: (
        "Conflict",
        "The draft changed since the version you sent, or the action does not apply to its "
        "status. Nothing was written.",
    ),
    413: ("TooLarge", "The body is larger than [review] max_body_bytes."),
    422: ("Unprocessable", "The request cannot be read or is not valid; the error names why."),
}
READING = (401, 422)
WRITING = (401, 403, 404, 409, 413, 422)
_PATH_PARAMETER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Operation:
    """One operation of the API, as the router serves it and the document describes it.

    ``answer``: the 200 body (None: a document, not a model). ``versioned``: the answer is a
    draft, with its version as ETag, and a write takes the version seen as If-Match.
    """

    method: str
    path: str  # as documented, "/api/drafts/{id}"; every path parameter is a row id
    name: str
    summary: str
    answer: type[BaseModel] | None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_required: bool = True
    refusals: tuple[int, ...] = READING
    versioned: bool = False
    public: bool = False

    @property
    def writes(self) -> bool:
        return self.method != "GET"


def openapi_document(operations: Sequence[Operation], base_url: str) -> dict[str, Any]:
    refs, schemas = _schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
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
        "servers": [{"url": base_url.rstrip("/")}],
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
            "schemas": schemas,
            "responses": {
                name: _json(refs[Error], description) for name, description in REFUSALS.values()
            },
        },
    }


Refs = dict[type[BaseModel], dict[str, Any]]


def _schemas(operations: Sequence[Operation]) -> tuple[Refs, dict[str, Any]]:
    """Each model's reference, and the schemas of all of them (with those they hold)."""
    modes: dict[type[BaseModel], JsonSchemaMode] = {Error: "serialization"}
    for op in operations:
        if op.answer is not None:
            modes[op.answer] = "serialization"
        if op.body is not None:
            modes[op.body] = "validation"
    keyed, document = models_json_schema(list(modes.items()), ref_template=REFS)
    refs = {model: dict(keyed[model, mode]) for model, mode in modes.items()}
    return refs, document["$defs"]


def _operation(op: Operation, refs: Refs) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
        for name in _PATH_PARAMETER.findall(op.path)
    ]
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template=REFS)
        for name, field in schema["properties"].items():
            field.pop("title", None)
            description = field.pop("description", None)
            parameters.append(
                {"name": name, "in": "query", "schema": field}
                | ({"description": description} if description else {})
            )
    if op.versioned and op.writes:
        parameters.append(
            {
                "name": "If-Match",
                "in": "header",
                "required": False,
                "description": 'The version you saw, as the ETag of GET (`"v3"`); or a '
                "`version` field.",
                "schema": {"type": "string"},
            }
        )
    answer: dict[str, Any] = (
        _json(refs[op.answer], "The draft, as it is now." if op.versioned else "The answer.")
        if op.answer is not None
        else {"description": "OpenAPI 3.1 document."}
    )
    if op.versioned:
        answer["headers"] = {"ETag": {"schema": {"type": "string"}, "description": '"v" + version'}}
    operation: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "parameters": parameters,
        "responses": {
            "200": answer,
            **{
                str(status): {"$ref": f"#/components/responses/{REFUSALS[status][0]}"}
                for status in op.refusals
            },
        },
    }
    if op.body is not None:
        operation["requestBody"] = {"required": op.body_required, **_json(refs[op.body])}
    if op.public:
        operation["security"] = []
    return operation


def _json(schema: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    described = {"description": description} if description else {}
    return {**described, "content": {"application/json": {"schema": schema}}}
