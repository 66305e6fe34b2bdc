"""``POST /webhooks/{source}``: signed inbound webhooks, stored in the inbox before answering.

No API token: the Standard Webhooks signature with the source's secret is the credential.
A request is refused (and stored nowhere) when the source is unknown (404), the body is too
large (413), the signature headers are missing, stale or do not match (401; a malformed
timestamp is 400), the body is not JSON (400), or the verified body holds text that is not
valid (NUL, a lone surrogate), a non-finite number, nesting past BATON_API__MAX_JSON_DEPTH or
a webhook-id over 255 characters (422, naming the field). A source whose stored secret no
configured key decrypts (BATON_SECRET_KEY changed without BATON_SECRET_KEY_PREVIOUS) is 503
with Retry-After: the server cannot verify now, the sender retries. A verified request whose
``webhook-id`` this source already sent answers 200 ``duplicate`` without storing it again, so
a sender retrying after a lost answer sees success and no second run starts.

Once the 202 is answered, this process starts the runs the webhook's triggers fire
(``Lifecycle.start_from_webhook``, a background task like a decision's resume) unless
``BATON_WEBHOOKS__FAST_PATH`` is off; the webhook sensor launches whatever it did not.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from baton.api.errors import error_response, error_responses
from baton.api.metrics import webhooks_duplicate, webhooks_received, webhooks_refused
from baton.lifecycle import Lifecycle
from baton.settings import Settings
from baton.webhooks.crypto import SecretKeyError
from baton.webhooks.inbox import Inbox
from baton.webhooks.signing import SignatureError, verify
from baton.webhooks.sources import Sources, Verification
from orchestration_defs.language.values import (
    JsonSyntaxError,
    ValueLimits,
    ValueProblem,
    check_text,
    parse_json,
)

router = APIRouter(tags=["webhooks"])
log = logging.getLogger(__name__)

# A refused request for an unknown source is counted under this label, not the path's name,
# so random names cannot grow the metric without bound.
UNKNOWN_SOURCE = "unknown"
# The column that stores it (webhook_inbox.webhook_id) holds 255 characters.
MAX_WEBHOOK_ID_CHARS = 255
# An operator has to change the keys and restart: minutes, not the seconds of a database blip.
UNDECRYPTABLE_RETRY_AFTER_SECONDS = 60


class WebhookAccepted(BaseModel):
    """The webhook is stored; ``duplicate`` when this id was stored before."""

    status: str
    webhook_id: str


class _TooLarge(Exception):
    pass


async def _read_capped(request: Request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes whatever Content-Length claims."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _payload(webhook_id: str, body: bytes, settings: Settings) -> Any:
    """The body as JSON, strictly (valid UTF-8 text, finite numbers, bounded nesting), once
    the webhook-id that is stored with it has been checked too.

    Raises:
        JsonSyntaxError: the body is not JSON (or not UTF-8).
        ValueProblem: it holds something refused, or the webhook-id is unfit to store.
    """
    check_text(webhook_id, "webhook-id", max_chars=MAX_WEBHOOK_ID_CHARS)
    limits = ValueLimits(None, None, settings.api.max_json_depth, None)
    try:
        return parse_json(body, limits=limits)
    except ValueProblem as exc:
        if exc.field == "body" and exc.message.startswith("not valid UTF-8"):
            raise JsonSyntaxError(exc.field, exc.message) from None
        raise


def _refuse(
    source: str,
    reason: str,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    webhooks_refused.labels(source=source, reason=reason).inc()
    return error_response(status, code, message, headers=headers)


def _undecryptable(source: str, exc: SecretKeyError) -> JSONResponse:
    """503: the server cannot verify the signature until its keys are fixed; the sender retries."""
    # The message names the variables, never a key or the secret.
    log.warning(
        "webhook source %r: %s; put the key it was encrypted under in BATON_SECRET_KEY_PREVIOUS "
        "on every process and restart, then run `baton secrets rotate-key` "
        "(docs/production.md#rotating-baton_secret_key)",
        source,
        exc,
    )
    return _refuse(
        source,
        "secret_undecryptable",
        503,
        "unavailable",
        "this source's secret cannot be decrypted with the server's configured keys, so the "
        "signature cannot be verified now; nothing was stored, retry later",
        headers={"Retry-After": str(UNDECRYPTABLE_RETRY_AFTER_SECONDS)},
    )


@router.post(
    "/webhooks/{source}",
    status_code=202,
    response_model=WebhookAccepted,
    responses={
        200: {"model": WebhookAccepted, "description": "already received (a replayed id)"},
        **error_responses(400, 401, 404, 413, 422, 503),
    },
    summary="Receive a signed webhook",
)
async def receive_webhook(source: str, request: Request, background: BackgroundTasks) -> Any:
    """Verify a Standard Webhooks signature, store the event, answer, then start its runs."""
    settings: Settings = request.app.state.settings
    url = settings.db_url
    try:
        found: Verification | None = await run_in_threadpool(
            Sources(url, settings).verification, source
        )
    except SecretKeyError as exc:
        return _undecryptable(source, exc)
    if found is None:
        return _refuse(UNKNOWN_SOURCE, "unknown_source", 404, "not_found", "no webhook source")
    try:
        body = await _read_capped(request, settings.webhooks.max_body_bytes)
    except _TooLarge:
        limit = settings.webhooks.max_body_bytes
        return _refuse(source, "too_large", 413, "too_large", f"body exceeds {limit} bytes")
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        webhook_id = verify(
            found.secrets, headers, body, tolerance_seconds=settings.webhooks.tolerance_seconds
        )
    except SignatureError as exc:
        status = 400 if exc.reason == "bad_timestamp" else 401
        code = "bad_request" if status == 400 else "unauthorized"
        return _refuse(source, exc.reason, status, code, str(exc))
    try:
        payload = await run_in_threadpool(_payload, webhook_id, body, settings)
    except JsonSyntaxError:
        return _refuse(source, "malformed_json", 400, "bad_request", "the body is not valid JSON")
    except ValueProblem as exc:
        webhooks_refused.labels(source=source, reason="invalid").inc()
        return error_response(422, "invalid", str(exc), field=exc.field)
    stored = await run_in_threadpool(
        Inbox(url).accept,
        source=source,
        organization=found.organization,
        webhook_id=webhook_id,
        body=payload,
    )
    if stored is None:
        webhooks_duplicate.labels(source=source).inc()
        return JSONResponse({"status": "duplicate", "webhook_id": webhook_id}, status_code=200)
    webhooks_received.labels(source=source).inc()
    if settings.webhooks.fast_path:
        # After the answer, in the threadpool: the sender never waits for a launch.
        lifecycle = Lifecycle(request.app.state.store, request.app.state.dagster, via="api")
        background.add_task(_start_runs, lifecycle, stored)
    return JSONResponse(
        {"status": "accepted", "webhook_id": webhook_id}, status_code=202, background=background
    )


def _start_runs(lifecycle: Lifecycle, inbox_id: int) -> None:
    """The fast path; any failure leaves the webhook to the sensor (a claim expires)."""
    try:
        lifecycle.start_from_webhook(inbox_id)
    except Exception as exc:  # the row is stored; the sensor is the safety net
        log.warning("fast path of webhook row %s failed: %s", inbox_id, type(exc).__name__)
