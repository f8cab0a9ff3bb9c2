"""fal webhooks: signature verification and payload parsing, free of any web framework.

fal signs `request_id + "\\n" + user_id + "\\n" + timestamp + "\\n" + sha256_hex(raw body)` with
Ed25519 and publishes its public keys as a JWKS. Verification works on the raw request bytes,
never on re-serialized JSON. Deliveries are retried by fal (up to 10 times over 2 hours), so the
consumer must dedupe on `request_id`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.providers.base import Completion, TaskState
from zencourt_pipeline.providers.fal import detail_message, is_content_policy

log = logging.getLogger(__name__)

HEADER_REQUEST_ID = "X-Fal-Webhook-Request-Id"
HEADER_USER_ID = "X-Fal-Webhook-User-Id"
HEADER_TIMESTAMP = "X-Fal-Webhook-Timestamp"
HEADER_SIGNATURE = "X-Fal-Webhook-Signature"
REQUIRED_HEADERS = (HEADER_REQUEST_ID, HEADER_USER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE)
REFETCH_MIN_AGE_SECONDS = 60.0


class WebhookVerificationError(Exception):
    """The webhook must be refused (answer 401/400). `reason` is safe to log."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class JwksUnavailableError(WebhookVerificationError):
    """No signing keys could be loaded: a server-side problem (answer 503 so fal retries)."""


def signed_message(request_id: str, user_id: str, timestamp: str, raw_body: bytes) -> bytes:
    """The exact bytes fal signs."""
    digest = hashlib.sha256(raw_body).hexdigest()
    return f"{request_id}\n{user_id}\n{timestamp}\n{digest}".encode()


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def public_keys_from_jwks(jwks: Any) -> list[Ed25519PublicKey]:
    """The Ed25519 keys (`kty` OKP, `crv` Ed25519) of a JWKS document; others are skipped."""
    keys: list[Ed25519PublicKey] = []
    entries = jwks.get("keys") if isinstance(jwks, dict) else None
    for entry in entries or []:
        if not isinstance(entry, dict) or entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
            continue
        try:
            raw = _b64url_decode(str(entry["x"]))
            keys.append(Ed25519PublicKey.from_public_bytes(raw))
        except (KeyError, ValueError, binascii.Error):
            log.warning("skipping a malformed JWKS key")
    return keys


class FalWebhookVerifier:
    """Verify fal webhook signatures against fal's JWKS (cached, refetched on key rotation)."""

    def __init__(
        self,
        jwks_url: str,
        *,
        http_client: httpx.Client | None = None,
        cache_seconds: float = 86_400,
        max_skew_seconds: float = 300,
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
    ):
        self.jwks_url = jwks_url
        self._client = http_client
        self.cache_seconds = cache_seconds
        self.max_skew_seconds = max_skew_seconds
        self._clock = clock
        self._timeout = timeout
        self._lock = threading.Lock()
        self._keys: list[Ed25519PublicKey] | None = None
        self._fetched_at = 0.0  # last successful fetch
        self._attempted_at = float("-inf")  # last fetch attempt (throttles rotation refetches)
        self.fetch_count = 0

    # --------------------------------------------------------------------------------- keys

    def _fetch(self) -> list[Ed25519PublicKey]:
        self.fetch_count += 1
        try:
            if self._client is not None:
                response = self._client.get(self.jwks_url, timeout=self._timeout)
            else:
                response = httpx.get(self.jwks_url, timeout=self._timeout)
            response.raise_for_status()
            keys = public_keys_from_jwks(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            raise JwksUnavailableError(f"cannot load fal JWKS: {type(exc).__name__}: {exc}") from exc
        if not keys:
            raise JwksUnavailableError("fal JWKS holds no Ed25519 key")
        return keys

    def _current_keys(self, *, refresh_older_than: float | None = None) -> list[Ed25519PublicKey]:
        """The cached key set, fetched when missing or expired, or when `refresh_older_than` is
        given and the last fetch attempt is older than that (key rotation)."""
        with self._lock:
            now = self._clock()
            expired = self._keys is None or now - self._fetched_at >= self.cache_seconds
            rotate = refresh_older_than is not None and now - self._attempted_at > refresh_older_than
            if not (expired or rotate):
                return list(self._keys or [])
            self._attempted_at = now
            try:
                self._keys = self._fetch()
            except JwksUnavailableError:
                if self._keys:  # keep serving the last good set when a refresh fails
                    log.warning("fal JWKS refresh failed; using the cached keys")
                    return list(self._keys)
                raise
            self._fetched_at = now
            return list(self._keys)

    # ------------------------------------------------------------------------------- verify

    def verify(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        """Raise WebhookVerificationError unless `raw_body` carries a valid, fresh fal signature."""
        lower = {str(k).lower(): v for k, v in headers.items()}
        values: dict[str, str] = {}
        missing = []
        for name in REQUIRED_HEADERS:
            value = lower.get(name.lower())
            if value is None or not str(value).strip():
                missing.append(name)
            else:
                values[name] = str(value).strip()
        if missing:
            raise WebhookVerificationError(f"missing header(s): {', '.join(missing)}")
        timestamp = values[HEADER_TIMESTAMP]
        try:
            sent_at = int(timestamp)
        except ValueError as exc:
            raise WebhookVerificationError("timestamp header is not an integer") from exc
        skew = abs(self._clock() - sent_at)
        if skew > self.max_skew_seconds:
            raise WebhookVerificationError(
                f"timestamp is {skew:.0f} s off (limit {self.max_skew_seconds:.0f} s)"
            )
        try:
            signature = bytes.fromhex(values[HEADER_SIGNATURE])
        except ValueError as exc:
            raise WebhookVerificationError("signature header is not hex") from exc
        if len(signature) != 64:
            raise WebhookVerificationError("signature has the wrong length for Ed25519")
        message = signed_message(values[HEADER_REQUEST_ID], values[HEADER_USER_ID], timestamp, raw_body)
        if self._any_key_verifies(self._current_keys(), signature, message):
            return
        # Maybe fal rotated its keys: refetch, at most once a minute.
        if self._any_key_verifies(
            self._current_keys(refresh_older_than=REFETCH_MIN_AGE_SECONDS), signature, message
        ):
            return
        raise WebhookVerificationError("signature does not verify with any fal key")

    @staticmethod
    def _any_key_verifies(keys: list[Ed25519PublicKey], signature: bytes, message: bytes) -> bool:
        for key in keys:
            try:
                key.verify(signature, message)
                return True
            except InvalidSignature:
                continue
        return False


def parse_fal_webhook(raw_body: bytes) -> Completion:
    """Map a fal webhook body to a `Completion` (provider "fal", source "webhook").

    Raises ValueError for malformed JSON, a body without `request_id` or an unknown status.
    """
    try:
        data = json.loads(raw_body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"fal webhook body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError("fal webhook body is not a JSON object")
    request_id = data.get("request_id")
    if not isinstance(request_id, str) or not request_id.strip():
        raise ValueError("fal webhook body has no request_id")
    status = str(data.get("status") or "").upper()
    if status == "OK":
        return _ok_completion(request_id, data)
    if status == "ERROR":
        return _error_completion(request_id, data)
    raise ValueError(f"fal webhook has an unknown status {data.get('status')!r}")


def _webhook_completion(request_id: str, data: dict, state: TaskState, **fields: Any) -> Completion:
    return Completion(provider="fal", task_id=request_id, status=state, source="webhook", payload=data, **fields)


def _ok_completion(request_id: str, data: dict) -> Completion:
    """An `OK` webhook: succeeded with the video URL; succeeded without one when fal could not put
    its output in the webhook (`payload_error`: the result is still at the request's response URL,
    and `FalGenerator.fetch_result` fetches it, so a paid result is not thrown away); failed when
    the payload simply has no video."""
    payload = data.get("payload")
    video = payload.get("video") if isinstance(payload, dict) else None
    url = video.get("url") if isinstance(video, dict) else None
    if isinstance(url, str) and url:
        return _webhook_completion(request_id, data, TaskState.SUCCEEDED, output_url=url)
    if payload is None and data.get("payload_error"):
        return _webhook_completion(request_id, data, TaskState.SUCCEEDED, output_url=None)
    return _webhook_completion(
        request_id, data, TaskState.FAILED, error_code=ErrorCode.FAL_GENERATION_FAILED,
        error_message="fal reported OK without a video URL",
    )  # fmt: skip


def _error_completion(request_id: str, data: dict) -> Completion:
    """An `ERROR` webhook: failed, content policy or generation, with every detail fal gave."""
    payload = data.get("payload")
    parts = [str(data["error"])] if data.get("error") else []
    detail = detail_message(payload) if payload is not None else ""
    if detail:
        parts.append(detail)
    if data.get("payload_error"):
        parts.append(str(data["payload_error"]))
    message = ": ".join(parts) or "fal reported an error"
    policy = is_content_policy(payload) or is_content_policy(data.get("error"))
    code = ErrorCode.FAL_CONTENT_POLICY if policy else ErrorCode.FAL_GENERATION_FAILED
    return _webhook_completion(request_id, data, TaskState.FAILED, error_code=code, error_message=message[:2000])
