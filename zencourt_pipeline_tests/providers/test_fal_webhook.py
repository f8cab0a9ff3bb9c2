"""fal webhook verification (Ed25519 over the documented message, JWKS cache/rotation) and parsing."""

from __future__ import annotations

import hashlib
import json
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zencourt_pipeline.providers.base import TaskState
from zencourt_pipeline.providers.fal_webhook import (
    FalWebhookVerifier,
    JwksUnavailableError,
    WebhookVerificationError,
    parse_fal_webhook,
    signed_message,
)
from zencourt_pipeline_tests.fakes.fal import FakeFal, FakeRequest, FalScript
from zencourt_pipeline_tests.fakes.fixtures import FakeClock, fake_fal  # noqa: F401

REQUEST_ID = "5d2c9e1a-7f6b-4c1e-9a3d-2b8f0e4c6a11"
BODY = json.dumps(
    {
        "request_id": REQUEST_ID,
        "gateway_request_id": REQUEST_ID,
        "status": "OK",
        "payload": {"video": {"url": "https://v3.fal.media/files/out.mp4", "content_type": "video/mp4"}},
    }
).encode()


@pytest.fixture
def wall() -> FakeClock:
    return FakeClock(start=time.time())


def _verifier(fake: FakeFal, wall: FakeClock, **kwargs) -> FalWebhookVerifier:
    return FalWebhookVerifier(fake.jwks_url, clock=wall, **kwargs)


def test_valid_signature(fake_fal, wall):  # noqa: F811
    verifier = _verifier(fake_fal, wall)
    verifier.verify(fake_fal.sign_headers(BODY, REQUEST_ID, timestamp=int(wall())), BODY)
    # Header names are case-insensitive (frameworks lower-case them).
    lower = {k.lower(): v for k, v in fake_fal.sign_headers(BODY, REQUEST_ID, timestamp=int(wall())).items()}
    verifier.verify(lower, BODY)
    assert verifier.fetch_count == 1


def test_signature_covers_the_documented_message(fake_fal, wall):  # noqa: F811
    headers = fake_fal.sign_headers(BODY, REQUEST_ID, timestamp=int(wall()))
    message = signed_message(REQUEST_ID, fake_fal.user_id, headers["X-Fal-Webhook-Timestamp"], BODY)
    expected = f"{REQUEST_ID}\n{fake_fal.user_id}\n{headers['X-Fal-Webhook-Timestamp']}\n{hashlib.sha256(BODY).hexdigest()}"
    assert message == expected.encode()
    fake_fal.signing_keys[0][1].public_key().verify(
        bytes.fromhex(headers["X-Fal-Webhook-Signature"]), message
    )


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b + b" "),  # body changed (even re-serialized JSON fails)
        lambda h, b: (h, json.dumps(json.loads(b), indent=2).encode()),
        lambda h, b: ({**h, "X-Fal-Webhook-Request-Id": "other"}, b),
        lambda h, b: ({**h, "X-Fal-Webhook-User-Id": "someone-else"}, b),
        lambda h, b: ({**h, "X-Fal-Webhook-Signature": "00" * 64}, b),
        lambda h, b: ({**h, "X-Fal-Webhook-Signature": "zz"}, b),
        lambda h, b: ({**h, "X-Fal-Webhook-Signature": "abcd"}, b),
    ],
)
def test_bad_signatures(fake_fal, wall, tamper):  # noqa: F811
    headers, body = tamper(fake_fal.sign_headers(BODY, REQUEST_ID, timestamp=int(wall())), BODY)
    with pytest.raises(WebhookVerificationError):
        _verifier(fake_fal, wall).verify(headers, body)


def test_signature_from_an_unknown_key(fake_fal, wall):  # noqa: F811
    verifier = _verifier(fake_fal, wall)
    stranger = Ed25519PrivateKey.generate()
    headers = fake_fal.sign_headers(BODY, REQUEST_ID, timestamp=int(wall()), private_key=stranger)
    with pytest.raises(WebhookVerificationError, match="signature"):
        verifier.verify(headers, BODY)
    assert verifier.fetch_count == 1  # the key set is brand new: no refetch


@pytest.mark.parametrize("offset", [-301, 301, -3600])
def test_stale_or_future_timestamp(fake_fal, wall, offset):  # noqa: F811
    headers = fake_fal.sign_headers(BODY, REQUEST_ID, timestamp=int(wall()) + offset)
    with pytest.raises(WebhookVerificationError, match="timestamp"):
        _verifier(fake_fal, wall).verify(headers, BODY)


def test_timestamp_within_the_window(fake_fal, wall):  # noqa: F811
    _verifier(fake_fal, wall).verify(
        fake_fal.sign_headers(BODY, REQUEST_ID, timestamp=int(wall()) - 299), BODY
    )


@pytest.mark.parametrize(
    "missing",
    [
        "X-Fal-Webhook-Request-Id",
        "X-Fal-Webhook-User-Id",
        "X-Fal-Webhook-Timestamp",
        "X-Fal-Webhook-Signature",
    ],
)
def test_missing_headers(fake_fal, wall, missing):  # noqa: F811
    headers = fake_fal.sign_headers(BODY, REQUEST_ID, timestamp=int(wall()))
    del headers[missing]
    with pytest.raises(WebhookVerificationError, match=missing):
        _verifier(fake_fal, wall).verify(headers, BODY)
    with pytest.raises(WebhookVerificationError, match="missing"):
        _verifier(fake_fal, wall).verify({}, BODY)


def test_key_rotation_refetches_the_jwks(fake_fal, wall):  # noqa: F811
    verifier = _verifier(fake_fal, wall)
    verifier.verify(fake_fal.sign_headers(BODY, REQUEST_ID, timestamp=int(wall())), BODY)
    fake_fal.rotate_key()  # the old key is gone from the JWKS
    wall.advance(120)  # the cached set is now older than a minute
    verifier.verify(fake_fal.sign_headers(BODY, REQUEST_ID, timestamp=int(wall())), BODY)
    assert verifier.fetch_count == 2
    # A bad signature right after that refetch does not hammer the JWKS endpoint.
    with pytest.raises(WebhookVerificationError):
        verifier.verify({**fake_fal.sign_headers(BODY, REQUEST_ID, timestamp=int(wall()))}, BODY + b"x")
    assert verifier.fetch_count == 2


def test_rotation_with_both_keys_published(fake_fal, wall):  # noqa: F811
    old_key = fake_fal.signing_keys[0][1]
    fake_fal.rotate_key(keep_old=True)
    verifier = _verifier(fake_fal, wall)
    verifier.verify(fake_fal.sign_headers(BODY, REQUEST_ID, timestamp=int(wall()), private_key=old_key), BODY)
    verifier.verify(fake_fal.sign_headers(BODY, REQUEST_ID, timestamp=int(wall())), BODY)
    assert verifier.fetch_count == 1


def test_cache_expiry(fake_fal, wall):  # noqa: F811
    verifier = _verifier(fake_fal, wall, cache_seconds=600)
    verifier.verify(fake_fal.sign_headers(BODY, REQUEST_ID, timestamp=int(wall())), BODY)
    wall.advance(601)
    verifier.verify(fake_fal.sign_headers(BODY, REQUEST_ID, timestamp=int(wall())), BODY)
    assert verifier.fetch_count == 2 and fake_fal.counts["jwks"] == 2


def test_jwks_unavailable(wall):
    transport = httpx.MockTransport(lambda request: httpx.Response(503))
    verifier = FalWebhookVerifier(
        "https://keys.example.com/jwks.json", http_client=httpx.Client(transport=transport), clock=wall
    )
    fake = FakeFal()  # only its signing helper is used; not started
    headers = fake.sign_headers(BODY, REQUEST_ID, timestamp=int(wall()))
    with pytest.raises(JwksUnavailableError):
        verifier.verify(headers, BODY)


def test_failed_refresh_keeps_the_cached_keys(fake_fal, wall):  # noqa: F811
    calls = []

    def handler(request):
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(200, json=fake_fal.jwks())
        return httpx.Response(500)

    verifier = FalWebhookVerifier(
        fake_fal.jwks_url,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
        clock=wall,
        cache_seconds=60,
    )
    verifier.verify(fake_fal.sign_headers(BODY, REQUEST_ID, timestamp=int(wall())), BODY)
    wall.advance(61)
    verifier.verify(fake_fal.sign_headers(BODY, REQUEST_ID, timestamp=int(wall())), BODY)
    assert len(calls) == 2


# --------------------------------------------------------------------------------------- parse


def _body(**fields) -> bytes:
    return json.dumps({"request_id": REQUEST_ID, "gateway_request_id": REQUEST_ID, **fields}).encode()


def test_parse_ok():
    completion = parse_fal_webhook(BODY)
    assert completion.provider == "fal" and completion.source == "webhook"
    assert completion.task_id == REQUEST_ID and completion.status is TaskState.SUCCEEDED
    assert completion.output_url == "https://v3.fal.media/files/out.mp4"


def test_parse_error():
    completion = parse_fal_webhook(
        _body(status="ERROR", error="Invalid status code: 500", payload={"detail": "GPU fell over"})
    )
    assert completion.status is TaskState.FAILED and completion.error_code == "FAL_GENERATION_FAILED"
    assert "GPU fell over" in completion.error_message and "500" in completion.error_message


def test_parse_content_policy():
    detail = [{"loc": ["body", "image_url"], "msg": "flagged", "type": "content_policy_violation"}]
    completion = parse_fal_webhook(
        _body(status="ERROR", error="Invalid status code: 422", payload={"detail": detail})
    )
    assert completion.status is TaskState.FAILED and completion.error_code == "FAL_CONTENT_POLICY"
    assert "flagged" in completion.error_message


def test_parse_payload_error():
    # succeeded without an output URL: the result is fetched from the queue (fetch_result)
    completion = parse_fal_webhook(_body(status="OK", payload=None, payload_error="not JSON serializable"))
    assert completion.status is TaskState.SUCCEEDED and completion.output_url is None


def test_parse_ok_without_video():
    completion = parse_fal_webhook(_body(status="OK", payload={"images": []}))
    assert completion.status is TaskState.FAILED


@pytest.mark.parametrize(
    "raw",
    [b"", b"{not json", b"[1, 2]", b'"text"', _body(status="OK")[:-1], json.dumps({"status": "OK"}).encode()],
)
def test_parse_malformed(raw):
    with pytest.raises(ValueError):
        parse_fal_webhook(raw)


def test_parse_unknown_status():
    with pytest.raises(ValueError):
        parse_fal_webhook(_body(status="MAYBE"))


def test_webhooks_sent_by_the_fake_verify_and_parse(fake_fal, wall):  # noqa: F811
    # The bodies the fake sends for each outcome parse to the expected completion.
    for outcome, webhook, state, code in (
        ("succeed", "deliver", TaskState.SUCCEEDED, None),
        ("fail", "deliver", TaskState.FAILED, "FAL_GENERATION_FAILED"),
        ("content_policy", "deliver", TaskState.FAILED, "FAL_CONTENT_POLICY"),
        ("succeed", "payload_error", TaskState.SUCCEEDED, None),
    ):
        req = FakeRequest(
            id=REQUEST_ID,
            model="fal-ai/kling-video/v2.1/standard/image-to-video",
            body={},
            script=FalScript(outcome=outcome, webhook=webhook),
            created_at=0.0,
            webhook_url=None,
            gateway_request_id=REQUEST_ID,
            final=outcome,
        )
        raw = json.dumps(fake_fal.webhook_body(req)).encode()
        _verifier(fake_fal, wall).verify(fake_fal.sign_headers(raw, REQUEST_ID, timestamp=int(wall())), raw)
        completion = parse_fal_webhook(raw)
        assert (completion.status, completion.error_code) == (state, code)
