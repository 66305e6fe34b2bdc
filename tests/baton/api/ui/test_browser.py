"""The approvals page in headless Chromium against the API served by uvicorn.

A run pauses at a checkpoint on a real Dagster instance; an approver signs in on the page and
continues with a change and a comment; the approval sensor's own logic resumes the run, which
completes with the changed value; the decision is in the audit. Chromium is Debian's package
(``/usr/bin/chromium``), driven by Playwright; outside CI the test skips without it, in CI it
fails.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from baton.api.app import create_app
from baton.approvals import Approvals
from baton.store.service import RunStore
from tests.baton.api.ui.support import DAGSTER_UI, XSS, Deployment
from tests.checkpoint_helpers import launch, pending, tick
from tests.chromium import launched_chromium


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """The app on a real uvicorn server on 127.0.0.1 (a free port), in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Debian Chromium; skipped outside CI when it is not installed."""
    with launched_chromium() as chromium:
        yield chromium


def _launch_attempt_ended(url: str, approval_id: Any) -> None:
    deadline = time.monotonic() + 120
    while True:
        claim = Approvals(RunStore(url)).get(approval_id)
        if claim.launch_error is not None or claim.claimed_by is None:
            return
        assert time.monotonic() < deadline, f"the page's launch still holds the claim: {claim}"
        time.sleep(0.2)


def sign_in(browser: Any, base: str, token: str) -> Any:
    """A fresh browser context signed in with ``token``; its page shows the approvals."""
    page = browser.new_context().new_page()
    page.goto(f"{base}/ui/approvals")
    assert "/ui/login" in page.url
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/ui/approvals")
    return page


def test_decide_on_the_page_and_the_run_resumes_with_the_change(
    deployment: Deployment, browser: Any
) -> None:
    approval = pending(deployment.url, deployment.run_id)
    acme = pending(deployment.url, deployment.acme_run_id)
    with serve(create_app(deployment.settings)) as base:
        page = sign_in(browser, base, deployment.tokens["ann"])
        card = page.locator(f"#approval-{approval.id}")
        assert card.is_visible()
        # Another organization's approval is not listed.
        assert page.locator(f"#approval-{acme.id}").count() == 0
        assert "Release the acme numbers" not in page.content()
        # The untrusted content is text: shown literally, never run.
        assert page.evaluate("() => window.__xss") is None
        assert XSS in card.locator(".show").inner_text()
        assert XSS in card.locator("h2").inner_text()
        link = card.locator("a.dagster").get_attribute("href")
        assert link == f"{DAGSTER_UI}/runs/{approval.dagster_run_id}"

        # A POST without the session's CSRF token is refused, even with the session cookie.
        forged = page.request.post(
            f"{base}/ui/approvals/{approval.id}/decision", form={"decision": "abort"}
        )
        assert forged.status == 403
        # A form on another site posting here does not even carry the session cookie.
        attacker = page.context.new_page()
        attacker.set_content(
            f'<form method="post" action="{base}/ui/approvals/{approval.id}/decision">'
            '<input name="decision" value="abort"></form>'
        )
        with attacker.expect_navigation():
            attacker.evaluate("() => document.forms[0].submit()")
        # Sent to sign in (then back to the page, as the GET carries the Lax cookie): the POST
        # came without a session, else it would have stayed on /decision with a 403.
        assert not attacker.url.endswith("/decision")
        assert Approvals(RunStore(deployment.url)).get(approval.id).status == "pending"

        # Someone the checkpoint does not list gets no form, and reads why.
        eve = sign_in(browser, base, deployment.tokens["eve"])
        eve_card = eve.locator(f"#approval-{approval.id}")
        assert eve_card.locator("form.decide").count() == 0
        why = eve_card.locator(f"#blocked-{approval.id}").inner_text()
        assert "not among the approvers of this checkpoint (editors)" in why
        # A hand-made POST with her session's CSRF token is still refused by the service.
        csrf = eve.locator('input[name="csrf"]').first.get_attribute("value")
        refused = eve.request.post(
            f"{base}/ui/approvals/{approval.id}/decision",
            form={"csrf": csrf or "", "decision": "continue"},
        )
        assert refused.status == 403
        assert "not among the approvers" in refused.text()

        # The approver continues with a change and a comment.
        card.locator('input[name="decision"][value="continue"]').check()
        card.locator('input[name="mod__title"]').fill("Dagster approvals")
        card.locator('textarea[name="comment"]').fill("better title")
        card.locator("button[type=submit]").click()
        page.wait_for_url(f"{base}/ui/approvals?decided={approval.id}")
        assert "Decided: continue" in page.locator("#notice").inner_text()
        assert "The run resumes" in page.locator("#notice").inner_text()
        assert page.locator(f"#approval-{approval.id}").count() == 0

        page.click("#sign-out")
        page.wait_for_url(f"{base}/ui/login")
        page.goto(f"{base}/ui/approvals")
        assert "/ui/login" in page.url

    # The page's own launch (a background task after the answer) finds no code location here
    # and hands the claim back; on a loaded machine that may end after the server stopped.
    _launch_attempt_ended(deployment.url, approval.id)
    # The approval sensor resumes the run; it completes with the approver's value.
    [request] = tick(deployment.instance, deployment.url, deployment.job)
    resumed = launch(
        deployment.job,
        deployment.instance,
        deployment.url,
        request,
        resources={"agent_echo": deployment.agent()},
    )
    assert resumed.success
    store = RunStore(deployment.url)
    run = store.get_run(deployment.run_id)
    assert run.status == "completed"
    assert run.outputs is not None
    assert run.outputs["post"]["title"] == "Dagster approvals"
    assert run.outputs["post"]["words"] == 100
    assert run.outputs["by"] == "ann"
    # The audit: the vote, the decision event with its diff and comment.
    [vote] = Approvals(store).votes(approval.id)
    assert (vote.user_name, vote.decision, vote.comment) == ("ann", "continue", "better title")
    [decided] = [
        e for e in store.run_detail(deployment.run_id).events if e.type == "checkpoint.decided"
    ]
    assert decided.payload["decided_by"] == "ann"
    assert decided.payload["comment"] == "better title"
    assert decided.payload["diff"] == {"title": {"from": XSS, "to": "Dagster approvals"}}
    assert Approvals(store).get(approval.id).status == "resumed"
