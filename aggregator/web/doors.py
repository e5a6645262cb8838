"""Who is asking, read from an HTTP request: the review pages' session cookie, or the API's
bearer token. The desk itself knows no request; each web door calls these first."""

from __future__ import annotations

from starlette.requests import Request

from aggregator.web.auth import SESSION_COOKIE, Auth, Reviewer


def session_reviewer(auth: Auth, request: Request) -> Reviewer | None:
    return auth.session(request.cookies.get(SESSION_COOKIE))


def api_reviewer(auth: Auth, request: Request) -> Reviewer | None:
    """A bearer token, else the review pages' session (whose writes need the CSRF token in
    the X-CSRF-Token header)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return auth.token_reviewer(token.strip())
    return session_reviewer(auth, request)
