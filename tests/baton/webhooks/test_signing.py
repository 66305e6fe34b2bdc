"""Standard Webhooks signatures: the published test vector, round trips and every refusal."""

from __future__ import annotations

import base64

import pytest

from baton.webhooks.signing import (
    PREFIX,
    SignatureError,
    generate_secret,
    headers,
    secret_key,
    sign,
    verify,
)

# The test vector published with the Standard Webhooks reference libraries.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
NOW = 1_800_000_000


def test_sign_reproduces_the_standard_webhooks_test_vector() -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_the_test_vector_verifies_and_the_prefix_is_optional() -> None:
    signed = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    assert verify([VECTOR_SECRET], signed, VECTOR_BODY, now=VECTOR_TIMESTAMP) == VECTOR_ID
    bare = VECTOR_SECRET.removeprefix(PREFIX)
    assert verify([bare], signed, VECTOR_BODY, now=VECTOR_TIMESTAMP) == VECTOR_ID


def test_generated_secrets_are_whsec_base64_of_24_random_bytes() -> None:
    first, second = generate_secret(), generate_secret()
    assert first.startswith(PREFIX) and first != second
    assert len(secret_key(first)) == 24


def test_round_trip_with_headers() -> None:
    secret = generate_secret()
    body = b'{"hello": "world"}'
    assert verify([secret], headers(secret, "msg_1", body, now=NOW), body, now=NOW) == "msg_1"


def test_any_listed_signature_and_any_valid_secret_may_match() -> None:
    old, new = generate_secret(), generate_secret()
    body = b"{}"
    signed = headers(new, "msg_2", body, now=NOW)
    signed["webhook-signature"] = "v1,bm9wZQ== " + signed["webhook-signature"]
    assert verify([old, new], signed, body, now=NOW) == "msg_2"


@pytest.mark.parametrize("skew", [-301, 301, -10_000])
def test_timestamps_outside_five_minutes_either_way_are_refused(skew: int) -> None:
    secret = generate_secret()
    signed = headers(secret, "msg_3", b"{}", now=NOW + skew)
    with pytest.raises(SignatureError) as caught:
        verify([secret], signed, b"{}", now=NOW)
    assert caught.value.reason == "stale_timestamp"


@pytest.mark.parametrize("skew", [-300, 0, 300])
def test_timestamps_within_five_minutes_either_way_are_accepted(skew: int) -> None:
    secret = generate_secret()
    assert verify([secret], headers(secret, "m", b"{}", now=NOW + skew), b"{}", now=NOW) == "m"


def test_a_changed_body_id_or_timestamp_breaks_the_signature() -> None:
    secret = generate_secret()
    signed = headers(secret, "msg_4", b'{"a": 1}', now=NOW)
    for changed, body in (
        ({}, b'{"a": 2}'),
        ({"webhook-id": "msg_5"}, b'{"a": 1}'),
        ({"webhook-timestamp": str(NOW + 1)}, b'{"a": 1}'),
    ):
        with pytest.raises(SignatureError) as caught:
            verify([secret], {**signed, **changed}, body, now=NOW)
        assert caught.value.reason == "bad_signature"


def test_another_secret_is_refused() -> None:
    signed = headers(generate_secret(), "msg_6", b"{}", now=NOW)
    with pytest.raises(SignatureError, match="no webhook-signature matches"):
        verify([generate_secret()], signed, b"{}", now=NOW)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers_are_refused(missing: str) -> None:
    secret = generate_secret()
    signed = headers(secret, "msg_7", b"{}", now=NOW)
    del signed[missing]
    with pytest.raises(SignatureError) as caught:
        verify([secret], signed, b"{}", now=NOW)
    assert caught.value.reason == "missing_headers"


def test_a_malformed_timestamp_is_refused() -> None:
    secret = generate_secret()
    signed = {**headers(secret, "msg_8", b"{}", now=NOW), "webhook-timestamp": "yesterday"}
    with pytest.raises(SignatureError) as caught:
        verify([secret], signed, b"{}", now=NOW)
    assert caught.value.reason == "bad_timestamp"


def test_a_signature_of_another_scheme_version_is_not_accepted() -> None:
    secret = generate_secret()
    signed = headers(secret, "msg_9", b"{}", now=NOW)
    signed["webhook-signature"] = signed["webhook-signature"].replace("v1,", "v1a,")
    with pytest.raises(SignatureError):
        verify([secret], signed, b"{}", now=NOW)


def test_a_secret_that_is_not_base64_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="base64"):
        secret_key("whsec_not base64!")
    assert base64.b64encode(secret_key(VECTOR_SECRET)).decode() == VECTOR_SECRET[len(PREFIX) :]
