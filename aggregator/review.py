"""The review pages under /review/: plain HTML forms that work without JavaScript.

Each view: who is asking (401 with the login form if nobody), read the form (413/422),
check the CSRF token (403), call the desk, answer a page or a redirect, or JSON when the
page's script asked for it. A conflict or a refused edit answers with the editor's text,
so that nothing typed is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from jinja2 import Environment
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from aggregator.auth import LOGIN_COOKIE, SESSION_COOKIE, Reviewer
from aggregator.compare import block_pairs
from aggregator.desk import Desk
from aggregator.errors import (
    ConflictError,
    InvalidEditError,
    InvalidTransitionError,
)
from aggregator.store import DraftView
from aggregator.web_input import (
    Problem,
    check_origin,
    client_address,
    parse_version,
    read_form,
    wants_json,
)

REVIEW_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: http:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": REVIEW_POLICY,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
LOGIN_FORM_LIMIT = 16 * 1024
DONE_MESSAGES = {
    "approved": "Brouillon approuvé : il est publié.",
    "rejected": "Brouillon rejeté : il ne sera jamais publié.",
    "retranslate": "Retraduction demandée : le brouillon reviendra à la prochaine passe.",
    "acknowledged": "C'est noté : la traduction publiée reste telle quelle.",
    "saved": "Modification enregistrée.",
    "login": "Vous êtes connecté.",
}
ACTION_DONE = {
    "approve": "approved",
    "reject": "rejected",
    "retranslate": "retranslate",
    "acknowledge": "acknowledged",
}
NOT_LOGGED_IN = (
    "Vous n'êtes pas connecté, ou votre session a expiré : rien n'a été modifié. "
    "Connectez-vous, puis recommencez."
)
BAD_CSRF = (
    "Jeton de sécurité (CSRF) absent ou invalide : rien n'a été modifié. "
    "Rechargez la page, puis recommencez."
)


class ReviewViews:
    def __init__(self, desk: Desk, templates: Environment) -> None:
        self.desk = desk
        self.auth = desk.auth
        self.templates = templates
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
        flash = DONE_MESSAGES.get(request.query_params.get("done", ""))
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
            password_env=self.desk.settings.review.password_env,
        )
        response.set_cookie(LOGIN_COOKIE, nonce, **self.auth.cookie_attributes(3600))  # type: ignore[arg-type]
        return response

    # ------------------------------------------------------------ pages

    def queue(self, request: Request) -> Response:
        reviewer = self.desk.session_reviewer(request)
        if reviewer is None:
            return self.login_page(request, 401, "Connectez-vous pour relire les brouillons.")
        return self.render(
            "review/queue.html",
            request,
            reviewer,
            drafts=self.desk.store.review_queue(),
            counts=self.desk.store.draft_counts(),
        )

    def draft(self, request: Request) -> Response:
        reviewer = self.desk.session_reviewer(request)
        if reviewer is None:
            return self.login_page(request, 401, "Connectez-vous pour relire ce brouillon.")
        page = self.desk.page(request.path_params["id"])
        return self.render("review/draft.html", request, reviewer, page=page)

    def audit(self, request: Request) -> Response:
        reviewer = self.desk.session_reviewer(request)
        if reviewer is None:
            return self.login_page(request, 401, "Connectez-vous pour lire le journal.")
        events = self.desk.store.recent_events(200)
        return self.render("review/audit.html", request, reviewer, events=events)

    def login_form(self, request: Request) -> Response:
        if self.desk.session_reviewer(request) is not None:
            return RedirectResponse("/review/", status_code=303)
        return self.login_page(request)

    # ------------------------------------------------------------ login and logout

    async def login(self, request: Request) -> Response:
        client = client_address(request)
        wait = self.auth.throttle.retry_after(client)
        if wait is not None:
            minutes = max(1, round(wait / 60))
            raise Problem(
                429,
                f"Trop de tentatives de connexion : réessayez dans {minutes} minute(s).",
                headers={"Retry-After": str(max(1, int(wait)))},
            )
        check_origin(request, self.desk.settings.server.base_url)
        form = await read_form(request, LOGIN_FORM_LIMIT)
        if not self.auth.check_login_csrf(request.cookies.get(LOGIN_COOKIE), form.get("csrf", "")):
            raise Problem(403, BAD_CSRF)
        name = self.auth.check_name(form.get("name", ""))
        password_ok = self.auth.check_password(form.get("password", ""))
        if name is None or not password_ok:
            self.auth.throttle.failed(client)
            error = (
                "La relecture web est désactivée : aucun mot de passe n'est configuré."
                if not self.auth.login_enabled
                else "Nom ou mot de passe incorrect."
            )
            return self.login_page(
                request, 401, error, name=form.get("name", "")[:100], next_path=form.get("next")
            )
        self.auth.throttle.succeeded(client)
        response = RedirectResponse(_local_review_path(form.get("next", "")), status_code=303)
        lifetime = int(self.desk.settings.review.session_lifetime)
        response.set_cookie(
            SESSION_COOKIE,
            self.auth.issue_session(name),
            **self.auth.cookie_attributes(lifetime),  # type: ignore[arg-type]
        )
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    async def logout(self, request: Request) -> Response:
        await self._authorized_form(request)
        response = RedirectResponse("/review/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # ------------------------------------------------------------ changes

    async def _authorized_form(self, request: Request) -> tuple[Reviewer, dict[str, str]]:
        reviewer = self.desk.session_reviewer(request)
        if reviewer is None:
            raise Problem(401, NOT_LOGGED_IN)
        check_origin(request, self.desk.settings.server.base_url)
        form = await read_form(request, self.limit)
        token = form.get("csrf") or request.headers.get("x-csrf-token")
        if not self.auth.check_csrf(reviewer, token):
            raise Problem(403, BAD_CSRF)
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
        except ConflictError as exc:
            return self._refused(request, reviewer, draft_id, 409, exc, kept(form))
        except InvalidTransitionError as exc:
            return self._refused(request, reviewer, draft_id, 409, exc, kept(form))
        except InvalidEditError as exc:
            return self._refused(request, reviewer, draft_id, 422, exc, kept(form))
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
        heading = {
            409: "Ce brouillon a changé entre-temps",
            422: "Modification refusée",
        }[status]
        if isinstance(error, ConflictError):
            message = (
                "Quelqu'un d'autre a modifié ce brouillon depuis que vous l'avez ouvert : "
                "votre action n'a pas été enregistrée. Rechargez-le pour voir la version "
                "actuelle, puis refaites votre modification."
            )
        elif isinstance(error, InvalidTransitionError):
            message = "Cette action ne s'applique pas à l'état actuel du brouillon."
        else:
            message = "Cette modification ne peut pas être enregistrée telle quelle."
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
        return await self._change(
            request,
            lambda who, i, v, form: self.desk.edit(who, i, v, title=form.get("title", "")),
            lambda form: [("Titre", form.get("title", ""))],
            lambda d, form: (
                f"/review/drafts/{d.id}?done=saved",
                {"title": d.title, "message": "Titre enregistré."},
            ),
        )

    async def edit_block(self, request: Request) -> Response:
        index = request.path_params["index"]
        return await self._change(
            request,
            lambda who, i, v, form: self.desk.edit(
                who, i, v, blocks=[(index, form.get("html", ""))]
            ),
            lambda form: [(f"Bloc {index + 1}", form.get("html", ""))],
            lambda d, form: (
                f"/review/drafts/{d.id}?done=saved#block-{index}",
                {"html": _french_block(d, index), "message": f"Bloc {index + 1} enregistré."},
            ),
        )

    async def edit_body(self, request: Request) -> Response:
        return await self._change(
            request,
            lambda who, i, v, form: self.desk.edit(who, i, v, body_html=form.get("body_html", "")),
            lambda form: [("Corps", form.get("body_html", ""))],
            lambda d, form: (
                f"/review/drafts/{d.id}?done=saved",
                {"message": "Corps enregistré."},
            ),
        )

    async def action(self, request: Request) -> Response:
        name = request.path_params["action"]
        if name not in ACTION_DONE:
            raise Problem(404, f"Action inconnue : {name}")

        def done(draft: DraftView, form: dict[str, str]) -> tuple[str, dict[str, Any]]:
            code = ACTION_DONE[name]
            following = self.desk.next_in_queue(draft.id) if name in ("approve", "reject") else None
            if following is not None:
                location = f"/review/drafts/{following}?done={code}"
            elif name in ("approve", "reject"):
                location = f"/review/?done={code}"
            else:
                location = f"/review/drafts/{draft.id}?done={code}"
            return location, {"message": DONE_MESSAGES[code], "redirect": location}

        return await self._change(
            request,
            lambda who, i, v, form: self.desk.act(who, i, v, name),
            lambda form: [],
            done,
        )


def _local_review_path(path: str) -> str:
    """Only a page of the desk itself is a place to go after login (no open redirect)."""
    if path.startswith("/review/") and not path.startswith(("/review/login", "/review//")):
        return path
    return "/review/"


def _french_block(draft: DraftView, index: int) -> str:
    pairs = block_pairs("", draft.body_html)
    return pairs[index].french_html if index < len(pairs) else ""


def problem_page(
    templates: Environment, desk: Desk, request: Request, problem: Problem
) -> Response:
    headings = {
        401: "Connexion nécessaire",
        403: "Requête refusée",
        404: "Introuvable",
        409: "Conflit",
        413: "Requête trop volumineuse",
        422: "Requête illisible",
        429: "Trop de tentatives",
    }
    reviewer = desk.session_reviewer(request)
    page = templates.get_template("review/problem.html").render(
        reviewer=reviewer,
        csrf=desk.auth.csrf_token(reviewer) if reviewer else "",
        site_title=desk.settings.server.title,
        heading=headings.get(problem.status, "Erreur"),
        message=problem.message,
        detail=None,
        kept=[],
        draft_id=request.path_params.get("id"),
        flash=None,
    )
    return HTMLResponse(
        page, status_code=problem.status, headers={**PAGE_HEADERS, **problem.headers}
    )


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else ""
