"""The review pages under /review/: plain HTML forms that work without JavaScript.

Each view: who is asking (401 with the login form if nobody), read the form (413/422),
check the CSRF token (403), call the desk, answer a page or a redirect, or JSON when the
page's script asked for it. A conflict or a refused edit answers with the editor's text,
so that nothing typed is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import Environment
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from aggregator.desk.compare import block_pairs
from aggregator.desk.entries import RETRYABLE, explain_reason, translate_pasted_text
from aggregator.desk.service import Desk
from aggregator.errors import (
    ConflictError,
    ForbiddenError,
    InvalidEditError,
    InvalidTransitionError,
    NotAuthenticatedError,
    NotFoundError,
    RequestError,
    TooManyAttemptsError,
)
from aggregator.i18n import N_, SOURCE_LANGUAGE, messages
from aggregator.store import DraftView
from aggregator.store.listing import LISTED_STATES
from aggregator.web.answers import error_answer
from aggregator.web.auth import LOGIN_COOKIE, SESSION_COOKIE, Auth, Reviewer
from aggregator.web.doors import session_reviewer
from aggregator.web.images import desk_html
from aggregator.web.web_input import (
    check_origin,
    client_address,
    parse_version,
    read_form,
    wants_json,
)

# img-src 'self': a draft's images are shown through the desk's image route (``images``),
# so the reviewer's browser never contacts an upstream host (tracking pixels, internal
# addresses such as 169.254.169.254).
REVIEW_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": REVIEW_POLICY,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
LOGIN_FORM_LIMIT = 16 * 1024
# Messages are English msgids, shown in the desk's language (``self.words``).
DONE_MESSAGES = {
    "approved": N_("Draft approved: it is published."),
    "rejected": N_("Draft rejected: it will never be published."),
    "retranslate": N_("Retranslation requested: the draft comes back at the next pass."),
    "acknowledged": N_("Noted: the published translation stays as it is."),
    "withdrawn": N_("Article withdrawn: it left the feeds, its page answers “article withdrawn”."),
    "saved": N_("Change saved."),
    "login": N_("You are logged in."),
    "retried": N_("Entry queued again: it is taken up at the next pass."),
    "pasted": N_(
        "Text saved: the entry is translated at the next pass, then its draft appears in the queue."
    ),
}
ACTION_DONE = {
    "approve": "approved",
    "reject": "rejected",
    "retranslate": "retranslate",
    "acknowledge": "acknowledged",
    "withdraw": "withdrawn",
}
NOT_LOGGED_IN = N_(
    "You are not logged in, or your session expired: nothing was changed. Log in, then try again."
)
BAD_CSRF = N_(
    "Security token (CSRF) missing or invalid: nothing was changed. Reload the page, then "
    "try again."
)

PROBLEM_HEADINGS = {
    401: N_("Login needed"),
    403: N_("Request refused"),
    404: N_("Not found"),
    409: N_("Conflict"),
    413: N_("Request too large"),
    422: N_("Unreadable request"),
    429: N_("Too many attempts"),
}


class ReviewViews:
    def __init__(self, desk: Desk, auth: Auth, templates: Environment) -> None:
        self.desk = desk
        self.auth = auth
        self.templates = templates
        self.words = messages(templates.globals.get("language", SOURCE_LANGUAGE))
        self.limit = desk.settings.review.max_body_bytes

    # ------------------------------------------------------------ rendering

    def render(
        self,
        template: str,
        request: Request,
        reviewer: Reviewer | None,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        done = DONE_MESSAGES.get(request.query_params.get("done", ""))
        flash = self.words.gettext(done) if done else None
        page = self.templates.get_template(template).render(
            reviewer=reviewer,
            csrf=self.auth.csrf_token(reviewer) if reviewer else "",
            site_title=self.desk.settings.server.title,
            flash=flash,
            **context,
        )
        return HTMLResponse(page, status_code=status, headers=PAGE_HEADERS)

    def login_page(
        self,
        request: Request,
        status: int = 200,
        error: str | None = None,
        name: str = "",
        next_path: str | None = None,
    ) -> Response:
        """The login form; after login the editor lands on ``next_path`` (default: the
        page asked for)."""
        nonce = request.cookies.get(LOGIN_COOKIE) or self.auth.new_login_nonce()
        next_path = _local_review_path(next_path or request.url.path)
        response = self.render(
            "review/login.html",
            request,
            None,
            status=status,
            error=error,
            name=name,
            login_csrf=self.auth.login_csrf(nonce),
            next_path=next_path,
            enabled=self.auth.login_enabled,
            accounts=self.auth.accounts,
            password_env=self.desk.settings.review.password_env,
        )
        response.set_cookie(LOGIN_COOKIE, nonce, **self.auth.cookie_attributes(3600))  # type: ignore[arg-type]
        return response

    def problem_page(self, request: Request, answer: tuple[int, str, dict[str, str]]) -> Response:
        """The page of a refused request: ``answer`` is ``error_answer``'s."""
        status, message, headers = answer
        response = self.render(
            "review/problem.html",
            request,
            session_reviewer(self.auth, request),
            status=status,
            heading=self.words.gettext(PROBLEM_HEADINGS.get(status, N_("Error"))),
            message=message,
            detail=None,
            kept=[],
            draft_id=request.path_params.get("id"),
        )
        response.headers.update(headers)
        return response

    # ------------------------------------------------------------ pages

    def queue(self, request: Request) -> Response:
        reviewer = session_reviewer(self.auth, request)
        if reviewer is None:
            return self.login_page(request, 401, self.words.gettext("Log in to review the drafts."))
        # ?language=es: only the drafts into that language (a feed's ``languages``).
        languages = self.desk.settings.published_languages
        language = request.query_params.get("language", "")
        chosen = language if language in languages else None
        return self.render(
            "review/queue.html",
            request,
            reviewer,
            drafts=self.desk.store.review_queue(language=chosen),
            counts=self.desk.store.draft_counts(),
            languages=languages if len(languages) > 1 else (),
            chosen_language=chosen,
        )

    def draft(self, request: Request) -> Response:
        reviewer = session_reviewer(self.auth, request)
        if reviewer is None:
            return self.login_page(request, 401, self.words.gettext("Log in to review this draft."))
        page = self.desk.page(request.path_params["id"])
        return self.render("review/draft.html", request, reviewer, page=page)

    def audit(self, request: Request) -> Response:
        reviewer = session_reviewer(self.auth, request)
        if reviewer is None:
            return self.login_page(request, 401, self.words.gettext("Log in to read the log."))
        events = self.desk.store.recent_events(200)
        return self.render("review/audit.html", request, reviewer, events=events)

    def login_form(self, request: Request) -> Response:
        if session_reviewer(self.auth, request) is not None:
            return RedirectResponse("/review/", status_code=303)
        return self.login_page(request)

    # ------------------------------------------------------------ login and logout

    async def login(self, request: Request) -> Response:
        """Throttled per (account, client) before the password is even looked at: a
        throttled attempt learns nothing, and someone else's failures never block you."""
        check_origin(request, self.desk.settings.server.base_url)
        form = await read_form(request, LOGIN_FORM_LIMIT)
        if not self.auth.check_login_csrf(request.cookies.get(LOGIN_COOKIE), form.get("csrf", "")):
            raise ForbiddenError(self.words.gettext(BAD_CSRF))
        outcome = await run_in_threadpool(
            self.auth.log_in,
            form.get("name", ""),
            form.get("password", ""),
            client_address(request),
        )
        if outcome.wait is not None:
            seconds = max(1, int(outcome.wait + 0.999))
            raise TooManyAttemptsError(
                self.words.gettext(
                    "Too many login attempts: try again %(delay)s.",
                    delay=self.words.duration(seconds, relative=True),
                ),
                retry_after=seconds,
            )
        if outcome.cookie is None:
            error = (
                self.words.gettext("Web review is disabled: no password is configured.")
                if not self.auth.login_enabled
                else self.words.gettext("Wrong name or password.")
            )
            return self.login_page(
                request, 401, error, name=form.get("name", "")[:100], next_path=form.get("next")
            )
        response = RedirectResponse(_local_review_path(form.get("next", "")), status_code=303)
        lifetime = int(self.desk.settings.review.session_lifetime)
        response.set_cookie(
            SESSION_COOKIE,
            outcome.cookie,
            **self.auth.cookie_attributes(lifetime),  # type: ignore[arg-type]
        )
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    async def logout(self, request: Request) -> Response:
        """Deletes the session in the database: the cookie is worthless from now on,
        wherever a copy of it is."""
        await self._authorized_form(request)
        await run_in_threadpool(self.auth.end_session, request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/review/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # ------------------------------------------------------------ changes

    async def _authorized_form(self, request: Request) -> tuple[Reviewer, dict[str, str]]:
        reviewer = await run_in_threadpool(session_reviewer, self.auth, request)
        if reviewer is None:
            raise NotAuthenticatedError(self.words.gettext(NOT_LOGGED_IN))
        check_origin(request, self.desk.settings.server.base_url)
        form = await read_form(request, self.limit)
        token = form.get("csrf") or request.headers.get("x-csrf-token")
        if not self.auth.check_csrf(reviewer, token):
            raise ForbiddenError(self.words.gettext(BAD_CSRF))
        return reviewer, form

    async def _change(
        self,
        request: Request,
        work: Callable[[Reviewer, int, int, dict[str, str]], DraftView],
        kept: Callable[[dict[str, str]], list[tuple[str, str]]],
        done: Callable[[DraftView, dict[str, str]], tuple[str, dict[str, Any]]],
    ) -> Response:
        reviewer, form = await self._authorized_form(request)
        draft_id = request.path_params["id"]
        version = parse_version(form.get("version"), "the form's 'version' field")
        try:
            draft = await run_in_threadpool(work, reviewer, draft_id, version, form)
        except (ConflictError, InvalidTransitionError, InvalidEditError) as exc:
            status, _, _ = error_answer(exc)
            return self._refused(request, reviewer, draft_id, status, exc, kept(form))
        location, payload = done(draft, form)
        if wants_json(request):
            return JSONResponse({"ok": True, "version": draft.version, **payload})
        return RedirectResponse(location, status_code=303)

    def _refused(
        self,
        request: Request,
        reviewer: Reviewer,
        draft_id: int,
        status: int,
        error: Exception,
        kept: list[tuple[str, str]],
    ) -> Response:
        words = self.words
        heading = {
            409: words.gettext("This draft changed in the meantime"),
            422: words.gettext("Change refused"),
        }[status]
        if isinstance(error, ConflictError):
            message = words.gettext(
                "Someone else changed this draft since you opened it: your action was not "
                "saved. Reload it to see the current version, then make your change again."
            )
        elif isinstance(error, InvalidTransitionError):
            message = words.gettext("This action does not apply to the draft's current state.")
        else:
            message = words.gettext("This change cannot be saved as it is.")
        if wants_json(request):
            return JSONResponse({"error": f"{message} ({error})", "status": status}, status)
        return self.render(
            "review/problem.html",
            request,
            reviewer,
            status=status,
            heading=heading,
            message=message,
            detail=str(error),
            kept=[(label, text) for label, text in kept if text],
            draft_id=draft_id,
        )

    async def edit_title(self, request: Request) -> Response:
        return await self._edit_whole(request, "title", N_("Title"), N_("Title saved."))

    async def _edit_whole(self, request: Request, field: str, label: str, saved: str) -> Response:
        """The title or the whole body: the form's ``field`` (``title``, ``body_html``);
        ``label`` and ``saved`` are msgids."""

        def edit(who: Reviewer, draft_id: int, version: int, form: dict[str, str]) -> DraftView:
            text = form.get(field, "")
            if field == "title":
                return self.desk.edit(who, draft_id, version, title=text)
            return self.desk.edit(who, draft_id, version, body_html=text)

        def done(d: DraftView, form: dict[str, str]) -> tuple[str, dict[str, Any]]:
            shown = {"title": d.title} if field == "title" else {}
            return f"/review/drafts/{d.id}?done=saved", {
                **shown,
                "message": self.words.gettext(saved),
            }

        return await self._change(
            request, edit, lambda form: [(self.words.gettext(label), form.get(field, ""))], done
        )

    async def edit_block(self, request: Request) -> Response:
        index = request.path_params["index"]
        return await self._change(
            request,
            lambda who, i, v, form: self.desk.edit(
                who, i, v, blocks=[(index, form.get("html", ""))]
            ),
            lambda form: [
                (self.words.gettext("Block %(number)s", number=index + 1), form.get("html", ""))
            ],
            lambda d, form: (
                f"/review/drafts/{d.id}?done=saved#block-{index}",
                # As the page shows it: images through the desk's route.
                {
                    "html": desk_html(_french_block(d, index)),
                    "message": self.words.gettext("Block %(number)s saved.", number=index + 1),
                },
            ),
        )

    async def edit_body(self, request: Request) -> Response:
        return await self._edit_whole(request, "body_html", N_("Body"), N_("Body saved."))

    async def action(self, request: Request) -> Response:
        name = request.path_params["action"]
        if name not in ACTION_DONE:
            raise NotFoundError(self.words.gettext("Unknown action: %(name)s", name=name))

        def done(draft: DraftView, form: dict[str, str]) -> tuple[str, dict[str, Any]]:
            code = ACTION_DONE[name]
            following = self.desk.next_in_queue(draft.id) if name in ("approve", "reject") else None
            if following is not None:
                location = f"/review/drafts/{following}?done={code}"
            elif name in ("approve", "reject"):
                location = f"/review/?done={code}"
            else:
                location = f"/review/drafts/{draft.id}?done={code}"
            message = self.words.gettext(DONE_MESSAGES[code])
            return location, {"message": message, "redirect": location}

        return await self._change(
            request,
            lambda who, i, v, form: self.desk.act(who, i, v, name),
            lambda form: [],
            done,
        )

    # ------------------------------------------------------------ entries with no draft

    def feeds(self, request: Request) -> Response:
        """Each feed's health, its own settings and what its drafts cost."""
        reviewer = session_reviewer(self.auth, request)
        if reviewer is None:
            return self.login_page(request, 401, self.words.gettext("Log in to see the feeds."))
        return self.render("review/feeds.html", request, reviewer, sheets=self.desk.feeds())

    def entries(self, request: Request) -> Response:
        """Entries the editor would not otherwise see: skipped (and why), failing (the last
        error, attempts, next try), with the original link, retry and paste forms."""
        reviewer = session_reviewer(self.auth, request)
        if reviewer is None:
            return self.login_page(request, 401, self.words.gettext("Log in to see the entries."))
        state = request.query_params.get("state", "skipped")
        if state not in LISTED_STATES:
            raise RequestError(
                self.words.gettext(
                    "Unknown state: %(state)s (%(known)s)",
                    state=repr(state[:40]),
                    known=", ".join(LISTED_STATES),
                ),
            )
        return self.render(
            "review/entries.html",
            request,
            reviewer,
            state=state,
            entries=self.desk.store.list_entries(state),
            counts=self.desk.store.entry_counts(),
            explain_reason=lambda reason: explain_reason(reason, self.words),
            retryable=RETRYABLE,
        )

    async def retry_entry(self, request: Request) -> Response:
        await self._authorized_form(request)
        entry = await run_in_threadpool(
            self.desk.store.retry_entry, request.path_params["id"], now=self.desk.now()
        )
        return RedirectResponse(f"/review/entries?state={entry.state}&done=retried", 303)

    async def paste_entry_text(self, request: Request) -> Response:
        reviewer, form = await self._authorized_form(request)
        entry_id = request.path_params["id"]
        html = form.get("body_html", "")
        try:
            await run_in_threadpool(
                translate_pasted_text, self.desk.store, self.desk.settings, entry_id, html,
                now=self.desk.now(),
            )  # fmt: skip
        except (InvalidEditError, InvalidTransitionError) as exc:
            return self.render(
                "review/problem.html",
                request,
                reviewer,
                status=422 if isinstance(exc, InvalidEditError) else 409,
                heading=self.words.gettext("Text refused"),
                message=self.words.gettext(
                    "This text cannot be translated as it is: nothing was saved."
                ),
                detail=str(exc),
                kept=[(self.words.gettext("Pasted text"), html)] if html else [],
                draft_id=None,
            )
        return RedirectResponse("/review/entries?state=pending&done=pasted", 303)


def _local_review_path(path: str) -> str:
    """Only a page of the desk itself is a place to go after login (no open redirect)."""
    if path.startswith("/review/") and not path.startswith(("/review/login", "/review//")):
        return path
    return "/review/"


def _french_block(draft: DraftView, index: int) -> str:
    pairs = block_pairs("", draft.body_html)
    return pairs[index].french_html if index < len(pairs) else ""
