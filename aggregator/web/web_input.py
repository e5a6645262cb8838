"""Reading what clients send, safely: bodies capped before they are read, forms and JSON
decoded strictly, the draft version a client saw. Anything unacceptable is a
``RequestError`` (413, 422) or a ``ForbiddenError`` (403) naming what was wrong.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request

from aggregator.errors import BodyTooLargeError, ForbiddenError, RequestError

MAX_FORM_FIELDS = 50
_VERSION_TAG = re.compile(r'^\s*(?:W/)?"?v?(\d{1,9})"?\s*$')


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past ``limit`` bytes, before or while it is read."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestError("the Content-Length header is not a number")
        if int(declared) > limit:
            raise BodyTooLargeError(_too_large(int(declared), limit))
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(_too_large(size, limit))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> str:
    return f"the request body is too large ({size} bytes or more; at most {limit} are accepted)"


async def read_form(request: Request, limit: int) -> dict[str, str]:
    """An application/x-www-form-urlencoded body as a dict (one value per field)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise RequestError(
            f"send an HTML form (application/x-www-form-urlencoded), not {kind or 'nothing'}"
        )
    body = await read_body(request, limit)
    try:
        text = body.decode("utf-8")
        fields = parse_qs(
            text, keep_blank_values=True, strict_parsing=bool(text),
            max_num_fields=MAX_FORM_FIELDS, errors="strict",
        )  # fmt: skip
    except UnicodeDecodeError:
        raise RequestError("the form is not valid UTF-8") from None
    except ValueError as exc:
        raise RequestError(f"the form cannot be read: {exc}") from None
    repeated = sorted(name for name, values in fields.items() if len(values) > 1)
    if repeated:
        raise RequestError(f"the form field {repeated[0]!r} is given more than once")
    return {name: values[0] for name, values in fields.items()}


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """A JSON object, whatever its fields (the API's models check those)."""
    body = await read_body(request, limit)
    if not body.strip():
        raise RequestError("the request body is empty; send a JSON object")
    try:
        value = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise RequestError("the request body is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise RequestError(f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        # The one place JSON is read: arrays or objects nested thousands deep exhaust the
        # parser's stack; no request this API takes nests deeper than three.
        raise RequestError("the request body nests arrays or objects too deeply") from None
    if not isinstance(value, dict):
        raise RequestError(f"send a JSON object, not a JSON {type(value).__name__}")
    return value


def parse_version(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise RequestError(f"{where} must be the draft's version number, got {value!r}")
    match = _VERSION_TAG.match(str(value))
    if match is None:
        raise RequestError(f"{where} must be the draft's version number, got {value!r}")
    return int(match.group(1))


def expected_version(if_match: str | None, from_body: int | None) -> int:
    """The version the client saw: the body's, or the If-Match header's. Required."""
    from_header = parse_version(if_match, "If-Match") if if_match is not None else None
    if from_header is not None and from_body is not None and from_header != from_body:
        raise RequestError(f"If-Match says version {from_header} but the body says {from_body}")
    version = from_body if from_body is not None else from_header
    if version is None:
        raise RequestError(
            "say which version of the draft your change is based on: a 'version' field or an "
            "If-Match header (GET the draft to learn it)",
        )
    return version


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def check_origin(request: Request, base_url: str) -> None:
    """A browser's cross-site POST is refused even before its CSRF token is looked at."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    allowed = {_origin(base_url), f"{request.url.scheme}://{request.headers.get('host', '')}"}
    if origin not in allowed:
        raise ForbiddenError(f"cross-site request refused (Origin {origin} is not this site)")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
