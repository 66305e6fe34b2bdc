"""``/ui/approvals``: sign in with an API token, review pending approvals, decide them.

Server-rendered with no build step and no JavaScript. Every POST carries the session's CSRF
token in a hidden field (sign-in, before any session exists, a double-submit cookie); a POST
without it is refused before anything else is read. Decisions go through the approvals
service, which enforces who may decide; its refusals are shown on the page.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, RedirectResponse, Response

from baton.api.auth import Principal, authenticate
from baton.api.deps import get_dagster
from baton.api.ui import forms, views
from baton.api.ui.render import TEMPLATES, page
from baton.api.ui.sessions import (
    COOKIE,
    LIFETIME,
    LOGIN_COOKIE,
    UiSession,
    new_secret,
    same,
    sessions_for,
    token_is_live,
)
from baton.approvals import ApprovalError, Approvals
from baton.db.models import HumanApproval
from baton.edge import check_decision
from baton.lifecycle import Lifecycle
from baton.settings import Settings
from baton.store.service import RunStore
from orchestration_defs.language.values import ValueProblem, check_text, shown

router = APIRouter(prefix="/ui", include_in_schema=False)

HOME = "/ui/approvals"
STATIC = TEMPLATES.parent / "static"
ERROR_STATUS = {"not_found": 404, "conflict": 409, "forbidden": 403, "invalid": 422}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or _settings(request).public_url.startswith("https://")


def _set_cookie(request: Request, response: Response, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        path="/ui",
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def _safe_next(target: str | None) -> str:
    # Only this page's own paths: never an open redirect to another site.
    if target and target.startswith("/ui/") and not target.startswith("//"):
        return target
    return HOME


async def _current(request: Request) -> UiSession | None:
    """The request's session, if signed in with a token that is still live."""
    store = sessions_for(request.app)
    session = store.get(request.cookies.get(COOKIE))
    if session is None:
        return None
    url = _settings(request).db_url
    if not await run_in_threadpool(token_is_live, url, session.principal.token_id):
        store.drop(session.id)
        return None
    return session


def _to_login(path: str) -> RedirectResponse:
    return _redirect(f"/ui/login?next={quote(path, safe='/')}")


def _message(status: int, session: UiSession | None, title: str, text: str) -> Response:
    return page("message.html", status, session=session, title=title, text=text)


# static and sign-in -------------------------------------------------------------------------


@router.get("/static/baton.css")
def stylesheet() -> FileResponse:
    return FileResponse(STATIC / "baton.css", media_type="text/css")


@router.get("")
def home() -> RedirectResponse:
    return _redirect(HOME)


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    if await _current(request) is not None:
        return _redirect(_safe_next(next))
    return _login_page(request, _safe_next(next), None, 200)


def _login_page(request: Request, target: str, error: str | None, status: int) -> Response:
    csrf = new_secret()
    response = page("login.html", status, session=None, csrf=csrf, next=target, error=error)
    _set_cookie(request, response, LOGIN_COOKIE, csrf, 600)
    return response


async def _form(request: Request) -> dict[str, str]:
    """The submitted text fields, every name and value valid text.

    Raises:
        ValueProblem: a NUL or a lone surrogate in a field (named).
    """
    fields = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    for name, value in fields.items():
        check_text(name, "form")
        check_text(value, shown(name, 40))
    return fields


def _refused(session: UiSession | None, exc: ValueProblem) -> Response:
    return _message(422, session, "Refused", f"Field {exc.field}: {exc.message}")


@router.post("/login")
async def login(request: Request) -> Response:
    try:
        form = await _form(request)
    except ValueProblem as exc:
        return _login_page(request, HOME, f"Field {exc.field}: {exc.message}", 422)
    target = _safe_next(_text(form.get("next")))
    if not same(request.cookies.get(LOGIN_COOKIE), _text(form.get("csrf"))):
        return _login_page(request, target, "The form expired; please sign in again.", 403)
    token = _text(form.get("token")).strip()
    principal = await run_in_threadpool(authenticate, token, _settings(request).db_url)
    if principal is None:
        return _login_page(request, target, "That token is unknown or revoked.", 401)
    store = sessions_for(request.app)
    store.drop(request.cookies.get(COOKIE))  # a new sign-in always gets a new session id
    session = store.create(principal)
    response = _redirect(target)
    _set_cookie(request, response, COOKIE, session.id, int(LIFETIME))
    response.delete_cookie(LOGIN_COOKIE, path="/ui")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    session = await _current(request)
    try:
        form = await _form(request)
    except ValueProblem as exc:
        return _refused(session, exc)
    if session is not None:
        if not same(session.csrf, _text(form.get("csrf"))):
            return _message(403, session, "Refused", "The form is missing its CSRF token.")
        sessions_for(request.app).drop(session.id)
    response = _redirect("/ui/login")
    response.delete_cookie(COOKIE, path="/ui")
    return response


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


# approvals ----------------------------------------------------------------------------------


@router.get("/approvals")
async def approvals(
    request: Request, decided: str | None = None, run: str | None = None
) -> Response:
    session = await _current(request)
    if session is None:
        return _to_login(request.url.path)
    settings = _settings(request)
    org = session.principal.organization
    root = _uuid(run)  # ?run=ID: that run's tree only (an id that is not one shows them all)
    rows = await run_in_threadpool(
        views.pending, settings.db_url, org, settings.dagster.ui_url, root
    )
    rows = await run_in_threadpool(views.for_viewer, settings.db_url, rows, session.principal)
    notice = await _notice(settings, org, decided)
    return page("approvals.html", session=session, approvals=rows, notice=notice, root=root)


async def _notice(settings: Settings, org: str, decided: str | None) -> views.ApprovalView | None:
    approval_id = _uuid(decided)
    if approval_id is None:
        return None
    return await run_in_threadpool(
        views.one, settings.db_url, org, approval_id, settings.dagster.ui_url
    )


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value or "")
    except ValueError:
        return None


async def _approval(request: Request, session: UiSession, raw_id: str) -> views.ApprovalView | None:
    approval_id = _uuid(raw_id)
    if approval_id is None:
        return None
    settings = _settings(request)
    view = await run_in_threadpool(
        views.one,
        settings.db_url,
        session.principal.organization,
        approval_id,
        settings.dagster.ui_url,
    )
    if view is None:
        return None
    [view] = await run_in_threadpool(views.for_viewer, settings.db_url, [view], session.principal)
    return view


def _not_found(session: UiSession) -> Response:
    return _message(404, session, "Not found", "No such approval in your organization.")


@router.get("/approvals/{approval_id}")
async def approval_page(request: Request, approval_id: str) -> Response:
    session = await _current(request)
    if session is None:
        return _to_login(request.url.path)
    approval = await _approval(request, session, approval_id)
    if approval is None:
        return _not_found(session)
    return page("approval.html", session=session, approval=approval, error=None, submitted={})


@router.post("/approvals/{approval_id}/decision")
async def decide(request: Request, approval_id: str) -> Response:
    session = await _current(request)
    if session is None:
        return _to_login(f"{HOME}/{approval_id}")
    try:
        form = await _form(request)
    except ValueProblem as exc:
        return _refused(session, exc)
    if not same(session.csrf, form.get("csrf")):
        return _message(
            403, session, "Refused", "The form is missing its CSRF token; reload and try again."
        )
    approval = await _approval(request, session, approval_id)
    if approval is None:
        return _not_found(session)
    try:
        decided = await run_in_threadpool(
            _decide, _settings(request), session.principal, approval, form
        )
    except (ApprovalError, forms.FormError, ValueProblem) as exc:
        status = ERROR_STATUS.get(getattr(exc, "code", "invalid"), 422)
        error = {"message": str(exc), "field": exc.field}
        return page(
            "approval.html",
            status,
            session=session,
            approval=approval,
            error=error,
            submitted=form,
        )
    response = _redirect(f"{HOME}?decided={approval.id}")
    if decided.status == "decided":  # the run's next segment starts from here, right after
        lifecycle = Lifecycle(RunStore(_settings(request).db_url), get_dagster(request), via="page")
        response.background = BackgroundTask(lifecycle.resume, decided.id)
    return response


def _decide(
    settings: Settings,
    principal: Principal,
    approval: views.ApprovalView,
    form: dict[str, str],
) -> HumanApproval:
    """Record the decision through the service, which checks who may decide and what."""
    refusal = views.role_refusal(principal)
    if refusal:
        raise ApprovalError("forbidden", refusal)
    decision = forms.decision_of(form)
    modifiable = {f.name: f.type for f in approval.fields}
    changes = forms.modifications(form, modifiable, approval.show) if decision != "abort" else {}
    comment = (form.get("comment") or "").strip() or None
    check_decision(settings, changes, comment)  # the API's limits on changes and comment
    return Approvals(RunStore(settings.db_url)).decide(
        approval.id,
        user=principal.user_name,
        decision=decision,
        modifications=changes,
        comment=comment,
    )
