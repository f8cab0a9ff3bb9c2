"""The fake fal's webhooks: it signs them like fal (Ed25519 over request id, user id,
timestamp and the body's SHA-256, its keys published as a JWKS at `/.well-known/jwks.json`) and
POSTs them to the submit's `fal_webhook` URL once a request completes, retrying failed deliveries
and sending scripted duplicates."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from collections import Counter
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from zencourt_pipeline_tests.fakes.fal_api import FakeRequest, policy_detail

USER_ID = "fake-fal-user"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class FalWebhooks:
    """Mixed into FakeFal, which holds `_lock`, `_timers`, `_stopping`, `counts`, `url` and
    `_result_payload(req, base_url)`. Attributes tests read or set: `signing_keys`, `user_id`,
    `webhook_deliveries`, `webhook_url_override`, `webhook_timestamp_offset`."""

    _lock: threading.RLock
    _timers: list[threading.Timer]
    _stopping: bool
    counts: Counter[str]
    url: str

    def _result_payload(self, req: FakeRequest, base_url: str) -> dict[str, Any]: ...

    def _init_webhooks(self, retries: int, retry_delay: float) -> None:
        self.webhook_deliveries: list[dict[str, Any]] = []
        self.webhook_url_override: str | None = None
        self.webhook_timestamp_offset = 0
        self.webhook_retries = retries
        self.webhook_retry_delay = retry_delay
        self.user_id = USER_ID
        self.signing_keys: list[tuple[str, Ed25519PrivateKey]] = []
        self.rotate_key()

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks.json"

    # ----------------------------------------------------------------------------- signatures

    def rotate_key(self, *, keep_old: bool = False) -> str:
        """A new signing key (the JWKS then lists it, plus the old ones with `keep_old`); its kid."""
        kid = uuid.uuid4().hex[:16]
        entry = (kid, Ed25519PrivateKey.generate())
        self.signing_keys = [entry, *self.signing_keys] if keep_old else [entry]
        return kid

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, private in self.signing_keys:
            raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            keys.append(
                {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw), "kid": kid, "use": "sig", "alg": "EdDSA"}
            )
        return {"keys": keys}

    def sign_headers(
        self,
        body: bytes,
        request_id: str,
        *,
        user_id: str | None = None,
        timestamp: int | None = None,
        private_key: Ed25519PrivateKey | None = None,
    ) -> dict[str, str]:
        """The four X-Fal-Webhook-* headers for `body`, signed like fal does."""
        user = user_id or self.user_id
        ts = str(int(time.time()) + self.webhook_timestamp_offset if timestamp is None else timestamp)
        message = f"{request_id}\n{user}\n{ts}\n{hashlib.sha256(body).hexdigest()}".encode()
        key = private_key or self.signing_keys[0][1]
        return {
            "X-Fal-Webhook-Request-Id": request_id,
            "X-Fal-Webhook-User-Id": user,
            "X-Fal-Webhook-Timestamp": ts,
            "X-Fal-Webhook-Signature": key.sign(message).hex(),
        }

    def webhook_body(self, req: FakeRequest, base_url: str | None = None) -> dict[str, Any]:
        base: dict[str, Any] = {"request_id": req.id, "gateway_request_id": req.gateway_request_id}
        if req.final == "succeed":
            if req.script.webhook == "payload_error":
                return {
                    **base,
                    "status": "OK",
                    "payload": None,
                    "payload_error": "Response payload is not JSON serializable.",
                }
            return {**base, "status": "OK", "payload": self._result_payload(req, base_url or self.url)}
        if req.final == "content_policy":
            return {
                **base,
                "status": "ERROR",
                "error": "Invalid status code: 422",
                "payload": {"detail": [policy_detail()]},
            }
        return {
            **base,
            "status": "ERROR",
            "error": "Invalid status code: 500",
            "payload": {"detail": req.script.error, "error_type": req.script.error_type},
        }

    async def _jwks(self, request: Request) -> Response:
        with self._lock:
            self.counts["jwks"] += 1
            return JSONResponse(self.jwks())

    # ------------------------------------------------------------------------------- webhooks

    def _schedule(self, delay: float, fn: Any) -> None:
        if self._stopping:
            return
        timer = threading.Timer(max(0.0, delay), fn)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _on_complete(self, req: FakeRequest) -> None:
        if req.webhook_sent or req.final == "canceled":
            return
        url = self.webhook_url_override or req.webhook_url
        if not url:
            return
        if req.script.webhook == "lost":
            if not req.webhook_withheld:
                req.webhook_withheld = True
                self.fault_log.hit("webhook_withheld", req.id)
            return
        req.webhook_sent = True
        body = json.dumps(self.webhook_body(req)).encode()
        if req.script.webhook_copies > 1:
            self.fault_log.hit("webhook_duplicated", req.id)
        for _ in range(max(1, req.script.webhook_copies)):
            self._schedule(0.0, lambda: self._deliver(url, req.id, body))

    def _deliver(self, url: str, request_id: str, body: bytes) -> None:
        for attempt in range(self.webhook_retries + 1):
            if self._stopping:
                return
            headers = {"Content-Type": "application/json", **self.sign_headers(body, request_id)}
            record: dict[str, Any] = {"request_id": request_id, "url": url, "body": body, "headers": headers}
            try:
                response = httpx.post(url, content=body, headers=headers, timeout=5.0)
                record["status"] = response.status_code
            except httpx.HTTPError as exc:
                record["error"] = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self.webhook_deliveries.append(record)
                self.counts["webhook_sent"] += 1
                req = self.requests.get(request_id)
                if req is not None and req.answer_held and 200 <= record.get("status", 0) < 300:
                    self.fault_log.hit("webhook_before_answer", request_id)  # reordered: the result overtook the answer
            if 200 <= record.get("status", 0) < 300:
                return
            if attempt < self.webhook_retries:
                time.sleep(self.webhook_retry_delay)
