"""The approvals page over HTTP (no browser): sign-in, sessions, CSRF, scoping, deciding."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from baton.api.app import create_app
from baton.approvals import Approvals
from baton.db.engine import session_scope
from baton.settings import Settings
from baton.store.service import RunStore
from baton.store.tokens import TokensRepository
from tests.baton.api.ui.support import DAGSTER_UI, Deployment, csrf_of
from tests.baton.api.world import RecordingGateway
from tests.checkpoint_helpers import pending


def client(
    deployment: Deployment, settings: Settings | None = None, base_url: str = "http://testserver"
) -> TestClient:
    app = create_app(settings or deployment.settings)
    # Launches are recorded: these tests are about the page; the browser test resumes for real.
    app.state.dagster = RecordingGateway(settings or deployment.settings)
    return TestClient(app, base_url=base_url, follow_redirects=False)


def sign_in(c: TestClient, token: str) -> Response:
    form = c.get("/ui/login")
    assert form.status_code == 200
    return c.post("/ui/login", data={"token": token, "csrf": csrf_of(form.text), "next": ""})


def signed_in(deployment: Deployment, who: str) -> TestClient:
    c = client(deployment)
    assert sign_in(c, deployment.tokens[who]).status_code == 303
    return c


def decide(c: TestClient, approval_id: object, **fields: str) -> Response:
    page = c.get(f"/ui/approvals/{approval_id}")
    data = {"csrf": csrf_of(page.text), **fields}
    return c.post(f"/ui/approvals/{approval_id}/decision", data=data)


def test_signed_out_visitors_are_sent_to_sign_in(deployment: Deployment) -> None:
    c = client(deployment)
    response = c.get("/ui/approvals")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?next=/ui/approvals"
    assert c.get("/ui").headers["location"] == "/ui/approvals"


def test_sign_in_sets_a_strict_session_cookie(deployment: Deployment) -> None:
    c = client(deployment)
    response = sign_in(c, deployment.tokens["ann"])
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/approvals"
    cookie = next(v for v in response.headers.get_list("set-cookie") if "baton_session=" in v)
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=lax", "path=/ui"} <= attributes
    assert "secure" not in attributes  # plain http here
    session_id = cookie.split(";")[0].split("=", 1)[1]
    assert deployment.tokens["ann"] not in cookie and len(session_id) >= 40


def test_the_cookie_is_secure_behind_https(deployment: Deployment) -> None:
    settings = deployment.settings.model_copy(update={"public_url": "https://baton.example"})
    c = client(deployment, settings, base_url="https://testserver")
    response = sign_in(c, deployment.tokens["ann"])
    cookie = next(v for v in response.headers.get_list("set-cookie") if "baton_session=" in v)
    assert "secure" in {part.strip().lower() for part in cookie.split(";")}


def test_sign_in_refuses_bad_tokens_and_forms_without_csrf(deployment: Deployment) -> None:
    c = client(deployment)
    c.get("/ui/login")
    refused = c.post("/ui/login", data={"token": deployment.tokens["ann"]})
    assert refused.status_code == 403
    assert "baton_session" not in refused.headers.get("set-cookie", "")
    wrong = sign_in(c, "bt_not-a-token")
    assert wrong.status_code == 401
    assert "unknown or revoked" in wrong.text
    assert c.get("/ui/approvals").status_code == 303


def test_sign_in_never_redirects_off_site(deployment: Deployment) -> None:
    c = client(deployment)
    form = c.get("/ui/login")
    data = {"token": deployment.tokens["ann"], "csrf": csrf_of(form.text)}
    for target in ("https://evil.example/", "//evil.example/x", "/api/v1/runs"):
        c.cookies.clear()
        form = c.get("/ui/login")
        data["csrf"] = csrf_of(form.text)
        response = c.post("/ui/login", data={**data, "next": target})
        assert response.headers["location"] == "/ui/approvals"


def test_the_list_shows_own_pending_approvals_escaped_with_a_dagster_link(
    deployment: Deployment,
) -> None:
    approval = pending(deployment.url, deployment.run_id)
    page = signed_in(deployment, "ann").get("/ui/approvals")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["cache-control"] == "no-store"
    assert f'id="approval-{approval.id}"' in page.text
    assert f'href="{DAGSTER_UI}/runs/{approval.dagster_run_id}"' in page.text
    # The untrusted content is shown as text, never as markup.
    assert "<script>window.__xss" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in page.text
    assert "line one\nline two" in page.text  # multi-line strings keep their lines
    assert "Release the acme numbers" not in page.text  # another organization's
    assert 'name="mod__title"' in page.text and 'name="mod__words" value="100"' in page.text


def test_another_organization_sees_only_its_own(deployment: Deployment) -> None:
    c = signed_in(deployment, "olga")
    page = c.get("/ui/approvals")
    assert "Release the acme numbers?" in page.text
    assert "acme quarterly numbers" in page.text
    assert "Publish" not in page.text


def test_another_organizations_approval_is_not_found_and_cannot_be_decided(
    deployment: Deployment,
) -> None:
    acme = pending(deployment.url, deployment.acme_run_id)
    c = signed_in(deployment, "ann")
    assert c.get(f"/ui/approvals/{acme.id}").status_code == 404
    csrf = csrf_of(c.get("/ui/approvals").text)
    refused = c.post(
        f"/ui/approvals/{acme.id}/decision", data={"csrf": csrf, "decision": "continue"}
    )
    assert refused.status_code == 404
    assert Approvals(RunStore(deployment.url)).get(acme.id).status == "pending"
    assert c.get("/ui/approvals/not-a-uuid").status_code == 404


@pytest.mark.parametrize("csrf", [None, "", "forged-value"])
def test_a_decision_without_the_sessions_csrf_token_is_refused(
    deployment: Deployment, csrf: str | None
) -> None:
    approval = pending(deployment.url, deployment.run_id)
    c = signed_in(deployment, "ann")
    data = {"decision": "continue", "comment": "csrf?"}
    if csrf is not None:
        data["csrf"] = csrf
    refused = c.post(f"/ui/approvals/{approval.id}/decision", data=data)
    assert refused.status_code == 403
    assert "CSRF" in refused.text
    assert Approvals(RunStore(deployment.url)).get(approval.id).status == "pending"


def test_another_sessions_csrf_token_does_not_work(deployment: Deployment) -> None:
    approval = pending(deployment.url, deployment.run_id)
    other = signed_in(deployment, "ann")
    stolen = csrf_of(other.get("/ui/approvals").text)
    c = signed_in(deployment, "ann")
    refused = c.post(
        f"/ui/approvals/{approval.id}/decision", data={"csrf": stolen, "decision": "continue"}
    )
    assert refused.status_code == 403


def test_a_viewer_may_look_but_not_decide(deployment: Deployment) -> None:
    approval = pending(deployment.url, deployment.run_id)
    c = signed_in(deployment, "vic")
    page = c.get("/ui/approvals")
    assert f'id="approval-{approval.id}"' in page.text
    assert "you can review but not decide" in page.text
    assert 'class="decide"' not in page.text
    refused = decide(c, approval.id, decision="continue")
    assert refused.status_code == 403
    assert "role is viewer" in refused.text
    assert Approvals(RunStore(deployment.url)).get(approval.id).status == "pending"


def test_the_services_refusal_is_shown(deployment: Deployment) -> None:
    approval = pending(deployment.url, deployment.run_id)
    refused = decide(signed_in(deployment, "eve"), approval.id, decision="continue")
    assert refused.status_code == 403
    assert "not among the approvers of this checkpoint (editors)" in refused.text


def test_a_bad_value_names_the_field_and_keeps_what_was_typed(deployment: Deployment) -> None:
    approval = pending(deployment.url, deployment.run_id)
    c = signed_in(deployment, "ann")
    refused = decide(
        c, approval.id, decision="continue", mod__words="many", mod__title="Kept", comment="hm"
    )
    assert refused.status_code == 422
    assert "field &#39;words&#39; must be an integer, got &#39;many&#39;" in refused.text
    assert 'value="Kept"' in refused.text and ">hm</textarea>" in refused.text
    assert decide(c, approval.id, decision="publish").status_code == 422
    assert Approvals(RunStore(deployment.url)).get(approval.id).status == "pending"


def test_deciding_with_a_change_records_only_the_change(deployment: Deployment) -> None:
    approval = pending(deployment.url, deployment.run_id)
    c = signed_in(deployment, "ann")
    done = decide(
        c,
        approval.id,
        decision="continue",
        mod__title="Dagster approvals",
        mod__words="100",
        comment="better title",
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/ui/approvals?decided={approval.id}"
    notice = c.get(done.headers["location"])
    assert "Decided: <strong>continue</strong>" in notice.text
    assert f'id="approval-{approval.id}"' not in notice.text  # no longer pending
    decided = Approvals(RunStore(deployment.url)).get(approval.id)
    # The page's process claimed the decision and launched the next segment at once.
    assert decided.status == "resuming" and decided.claimed_by == "page"
    assert decided.decided_by == "ann" and decided.launch_error is None
    assert decided.comment == "better title"
    assert decided.modifications == {"title": "Dagster approvals"}
    assert list(decided.diff or {}) == ["title"]
    page = c.get(f"/ui/approvals/{approval.id}")
    assert "Status: <strong>resuming</strong>" in page.text and 'class="decide"' not in page.text
    assert "ann: <strong>continue</strong>" in page.text and "better title" in page.text
    refused = decide(c, approval.id, decision="abort")
    assert refused.status_code == 409
    assert "a decision is recorded once" in refused.text


def test_a_revoked_token_ends_the_session(deployment: Deployment) -> None:
    c = signed_in(deployment, "ann")
    assert c.get("/ui/approvals").status_code == 200
    with session_scope(deployment.url) as s:
        repo = TokensRepository(s)
        [token_id] = [t.id for t, u in repo.list() if u.name == "ann"]
        assert repo.revoke(token_id)
    assert c.get("/ui/approvals").status_code == 303


def test_sign_out_needs_the_csrf_token_and_ends_the_session(deployment: Deployment) -> None:
    c = signed_in(deployment, "ann")
    assert c.post("/ui/logout", data={}).status_code == 403
    assert c.get("/ui/approvals").status_code == 200
    csrf = csrf_of(c.get("/ui/approvals").text)
    out = c.post("/ui/logout", data={"csrf": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    assert c.get("/ui/approvals").status_code == 303


def test_the_stylesheet_is_served(deployment: Deployment) -> None:
    css = client(deployment).get("/ui/static/baton.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_signing_in_again_replaces_the_old_session(deployment: Deployment) -> None:
    app = create_app(deployment.settings)
    first = TestClient(app, follow_redirects=False)
    assert sign_in(first, deployment.tokens["ann"]).status_code == 303
    old = first.cookies["baton_session"]
    second = TestClient(app, follow_redirects=False)
    form = second.get("/ui/login")
    second.cookies.set("baton_session", old, domain="testserver.local", path="/ui")
    data = {"token": deployment.tokens["ann"], "csrf": csrf_of(form.text)}
    assert second.post("/ui/login", data=data).status_code == 303
    assert second.cookies["baton_session"] != old
    assert first.get("/ui/approvals").status_code == 303  # the old id is gone


def test_a_decision_whose_run_cannot_resume_says_why_on_the_page(deployment: Deployment) -> None:
    approval = pending(deployment.url, deployment.run_id)
    c = signed_in(deployment, "ann")

    def refuse(segment: object) -> str:
        raise RuntimeError("no job 'content_review' in code location 'baton'")

    c.app.state.dagster.launch = refuse  # type: ignore[attr-defined]
    done = decide(c, approval.id, decision="continue", mod__title="T", mod__words="1")
    assert done.status_code == 303
    page = c.get(f"/ui/approvals/{approval.id}")
    assert "Status: <strong>resuming</strong>" in page.text
    assert f'id="waiting-{approval.id}"' in page.text
    assert "no job &#39;content_review&#39; in code location" in page.text
