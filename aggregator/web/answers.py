"""The one mapping from an error to a web answer, for every door of the web (review pages,
JSON API, public pages): the status each ``AggregatorError`` declares, a message for a
person, and ``Retry-After`` when the error says when trying again may work."""

from __future__ import annotations

import math

from aggregator.errors import AggregatorError, StorageError


def error_answer(exc: AggregatorError) -> tuple[int, str, dict[str, str]]:
    """(HTTP status, message, headers) for ``exc``.

    A refusal (4xx) is the error's own message, which names what was wrong; a failure on
    our side (5xx) says whose side it is on, so that a client does not retry its input.
    """
    status = exc.http_status
    if status < 500:
        message = str(exc)
    elif isinstance(exc, StorageError):
        message = f"the database is not available: {exc}"
    else:
        message = f"the server failed: {exc}"
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return status, message, headers
