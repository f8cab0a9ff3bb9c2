"""The webhook signature (docs/contract.md section 5).

`X-Webhook-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">`, keyed with
`VERCEL_WEBHOOK_SECRET`; `X-Webhook-Timestamp` is the same unix-seconds timestamp and
`X-Webhook-Id` the body's `id`. The receiver verifies over the raw request bytes (never
re-serialized JSON), compares in constant time, and rejects stale timestamps.

Receiver side, in TypeScript terms:
    expected = "sha256=" + hmacSha256Hex(secret, `${timestamp}.` + rawBody)
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_PREFIX = "sha256="
DEFAULT_TOLERANCE_SECONDS = 300


def _mac(secret: str, timestamp: int, raw_body: bytes) -> str:
    message = f"{int(timestamp)}.".encode() + raw_body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, raw_body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of f"{timestamp}." + raw_body>`."""
    if not secret:
        raise ValueError("a webhook secret is required to sign")
    if isinstance(raw_body, str):
        raise TypeError("sign the raw body bytes, not a str")
    return SIGNATURE_PREFIX + _mac(secret, timestamp, raw_body)


def verify(
    secret: str,
    timestamp: int | str,
    raw_body: bytes,
    signature: str,
    *,
    now: float | None = None,
    tolerance_seconds: int | None = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """True when `signature` is ours for (timestamp, raw_body) and, if `now` is given, the
    timestamp is within `tolerance_seconds` of it."""
    if not secret or not signature or not signature.startswith(SIGNATURE_PREFIX):
        return False
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if now is not None and tolerance_seconds is not None and abs(now - ts) > tolerance_seconds:
        return False
    expected = _mac(secret, ts, raw_body)
    return hmac.compare_digest(expected, signature[len(SIGNATURE_PREFIX) :])


def delivery_headers(delivery_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Webhook-Id": delivery_id,
        "X-Webhook-Timestamp": str(int(timestamp)),
        "X-Webhook-Signature": signature,
    }
