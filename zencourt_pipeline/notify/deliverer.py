"""Delivers the webhook outbox to the web app: at least once, signed, with backoff.

Each due row's `body` is POSTed as stored, except that its media URLs are resolved at delivery
time (`storage.urls.MediaUrls`): the stored `videoUrl`/`thumbnailUrl` are the canonical URIs
(`s3://...`), sent as `videoUri`/`thumbnailUri` beside fresh playable `videoUrl`/`thumbnailUrl`
(and `urlsExpireAt` when they expire), so a redelivery a day later still carries working URLs;
the same for each of a `batch.completed` body's `outputs` (its `videoUri`/`thumbnailUri`).
The signature covers exactly the bytes sent, to `VERCEL_API_URL + VERCEL_WEBHOOK_PATH` with `X-Webhook-Id` (= body id),
`X-Webhook-Timestamp` and `X-Webhook-Signature` (see `signing.py`).

* 2xx: the row becomes `delivered`.
* Anything else (3xx included: redirects are not followed), a timeout or a network error:
  the attempt is recorded (`attempts`, `last_status_code`, `last_error`) and the row is
  retried after an exponential backoff with jitter: 10 s, 20 s, 40 s, ... capped at 1 h per
  step, each step shortened by up to half at random so that many rows do not retry in lock
  step. With the defaults that is 9 tries in the first ~1.5 h, then one an hour.
* A row whose first report is older than the retry horizon (default 72 h, never less than
  24 h) when an attempt fails, and that has been tried at least `MIN_ATTEMPTS_BEFORE_DEAD`
  times, becomes `dead` (logged as an error with the Node server's code `WEBHOOK_DELIVERY_FAILED`) (so rows that waited out a long outage of the deliverer itself still
  get tries). `zencourt webhooks requeue` (`outbox.requeue_dead`) puts dead rows back with
  their attempts reset: a requeued row gets at least that many new tries.

A row with a `target_url` (a batch's own `callback_url`, migration 0012) goes there instead, signed
the same way with the same secret, through the SSRF-safe client of `net.fetch` (`safe_client`:
every connection's addresses resolved, checked against `MEDIA_ALLOWED_PRIVATE_HOSTS` and pinned;
the URL checked by `check_callback_url` before each attempt; redirects not followed). A refused
callback URL is a failed attempt like any other (retried, then dead). Callback rows need only the
secret: they go out while the global URL is unset.

Rows are claimed with a lease (`outbox.due`), so any number of deliverers (threads,
processes, hosts) can run at once without sending a row twice concurrently; rows live in the
database, so nothing is lost across restarts. When the URL or the secret is unset nothing is
sent (rows stay pending, one log line says so) and they go out once both are configured.
The secret is never logged, nor written to `last_error`.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic.alias_generators import to_camel

from zencourt_pipeline.db import outbox
from zencourt_pipeline.db.clock import as_utc
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import OutboxEvent
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.net.backoff import RetryPolicy
from zencourt_pipeline.net.fetch import check_callback_url, safe_client
from zencourt_pipeline.net.policy import FetchError, FetchPolicy
from zencourt_pipeline.notify.signing import delivery_headers, sign
from zencourt_pipeline.storage.urls import MediaUrls

logger = logging.getLogger(__name__)

MIN_RETRY_HORIZON = timedelta(hours=24)
DEFAULT_RETRY_HORIZON = timedelta(hours=72)
MIN_ATTEMPTS_BEFORE_DEAD = 3
BASE_DELAY_SECONDS = 10.0
MAX_DELAY_SECONDS = 3600.0
USER_AGENT = "zencourt-pipeline-webhooks/1"
MEDIA_FIELDS = ("videoUrl", "videoUri", "thumbnailUrl", "thumbnailUri", "urlsExpireAt")


def webhook_url(api_url: str | None, path: str | None) -> str | None:
    """`VERCEL_API_URL` + `VERCEL_WEBHOOK_PATH`, or None when the API URL is unset."""
    if not api_url:
        return None
    path = path or ""
    if path and not path.startswith("/"):
        path = "/" + path
    return api_url.rstrip("/") + path


class OutboxDeliverer:
    def __init__(
        self,
        db: AppDatabase,
        *,
        url: str | None,
        secret: str | None,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | Any = None,
        timeout: float = 10.0,
        retry_horizon: timedelta = DEFAULT_RETRY_HORIZON,
        base_delay: float = BASE_DELAY_SECONDS,
        max_delay: float = MAX_DELAY_SECONDS,
        media_urls: MediaUrls | None = None,
        callback_policy: FetchPolicy | None = None,
        callback_client: httpx.Client | None = None,
    ):
        """`media_urls`: resolves the stored URIs into playable URLs at delivery (None: sent as stored);
        `callback_policy`: what batch callback URLs may reach (default: public addresses only);
        `callback_client`: the client they are sent with (default: `safe_client(callback_policy)`)."""
        if retry_horizon < MIN_RETRY_HORIZON:
            raise ValueError("retry_horizon must be at least 24 hours (docs/contract.md section 5)")
        self.db = db
        self.url = url or None
        self._secret = secret or None
        self.clock = clock
        self.rng = rng or random.Random()
        self.timeout = timeout
        self.retry_horizon = retry_horizon
        # the one backoff: 10 s, 20 s, 40 s, ... capped at an hour, each step shortened by up to half
        self.backoff = RetryPolicy(base_delay=base_delay, max_delay=max_delay, jitter=0.5)
        self.media_urls = media_urls
        self._owns_storage = False
        self._owns_client = client is None
        self._client = client
        self._warned_disabled = False
        self._lock = threading.Lock()
        self.callback_policy = callback_policy or FetchPolicy()
        self._owns_callback_client = callback_client is None
        self._callback_client = callback_client

    @classmethod
    def from_settings(cls, db: AppDatabase, settings: Any, **kwargs: Any) -> OutboxDeliverer:
        """Built from `Settings` (VERCEL_API_URL, VERCEL_WEBHOOK_PATH, VERCEL_WEBHOOK_SECRET, the
        storage and media URL settings)."""
        owns_storage = "media_urls" not in kwargs
        if owns_storage:
            from zencourt_pipeline.storage import storage_from_settings

            kwargs["media_urls"] = MediaUrls.from_settings(settings, storage_from_settings(settings))
        kwargs.setdefault("callback_policy", FetchPolicy.from_hosts(settings.media_allowed_private_hosts))
        deliverer = cls(
            db,
            url=webhook_url(settings.vercel_api_url, settings.vercel_webhook_path),
            secret=settings.vercel_webhook_secret,
            **kwargs,
        )
        deliverer._owns_storage = owns_storage
        return deliverer

    def __repr__(self) -> str:  # never the secret
        return f"OutboxDeliverer(url={self.url!r}, enabled={self.enabled})"

    @property
    def enabled(self) -> bool:
        """Both the global URL and the secret are set: every row goes out."""
        return bool(self.url and self._secret)

    @property
    def callbacks_enabled(self) -> bool:
        """The secret is set: the rows of batch callback URLs go out (with or without the global URL)."""
        return bool(self._secret)

    @property
    def callback_client(self) -> httpx.Client:
        with self._lock:
            if self._callback_client is None:
                self._callback_client = safe_client(self.callback_policy, timeout=self.timeout)
            return self._callback_client

    @property
    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=self.timeout, follow_redirects=False, headers={"User-Agent": USER_AGENT}
                )
            return self._client

    def close(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None
        if self._owns_callback_client and self._callback_client is not None:
            self._callback_client.close()
            self._callback_client = None
        close_storage = getattr(self.media_urls.storage, "close", None) if self._owns_storage else None
        if callable(close_storage):
            close_storage()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # -- one pass ----------------------------------------------------------------------------
    def deliver_due(self, limit: int = 50) -> dict[str, int]:
        """Send every due row once (up to `limit`); returns counts of what happened."""
        counts = {"claimed": 0, "delivered": 0, "failed": 0, "dead": 0}
        if not self.enabled:
            if not self._warned_disabled:
                self._warned_disabled = True
                missing = [
                    name
                    for name, value in (("VERCEL_API_URL", self.url), ("VERCEL_WEBHOOK_SECRET", self._secret))
                    if not value
                ]
                logger.warning(
                    "webhook delivery is off: %s unset; outbox rows stay pending until configured%s",
                    " and ".join(missing), " (batch callback URLs are still served)" if self.callbacks_enabled else "",
                )
            if not self.callbacks_enabled:
                return counts
        lease = timedelta(seconds=self.timeout * max(1, limit) + 60)
        rows = self.db.outbox.due(limit=limit, now=self._now(), lease=lease, callbacks_only=not self.enabled)
        counts["claimed"] = len(rows)
        for row in rows:
            outcome = self._deliver(row)
            counts[outcome] += 1
        return counts

    def body_to_send(self, row: OutboxEvent) -> bytes:
        """The row's body with its media URLs resolved now (see the module docstring)."""
        try:
            body = json.loads(row.body)
        except ValueError:
            body = None
        if self.media_urls is None or not isinstance(body, dict) or not any(k in body for k in (*MEDIA_FIELDS, "outputs")):
            return row.body.encode("utf-8")
        if isinstance(body.get("outputs"), list):  # batch.completed: each output's URLs too
            body["outputs"] = [self._output_to_send(output) for output in body["outputs"]]
        if not any(k in body for k in MEDIA_FIELDS):
            return json.dumps(body, separators=(",", ":")).encode("utf-8")
        video_uri = body.get("videoUri", body.get("videoUrl"))
        thumbnail_uri = body.get("thumbnailUri", body.get("thumbnailUrl"))
        media = {
            to_camel(name): value
            for name, value in self.media_urls.fields(video_uri, thumbnail_uri).items()
            if value is not None
        }
        sent: dict[str, Any] = {}
        for name, value in body.items():
            if name not in MEDIA_FIELDS:
                sent[name] = value
            elif media:  # the media fields, in their order, where the first of them stood
                sent.update(media)
                media = {}
        return json.dumps(sent, separators=(",", ":")).encode("utf-8")

    def _output_to_send(self, output: Any) -> Any:
        """One output of a `batch.completed` body with its playable URLs (where its `videoUri` stood)."""
        if not isinstance(output, dict) or self.media_urls is None:
            return output
        media = {to_camel(k): v for k, v in self.media_urls.fields(output.get("videoUri"), output.get("thumbnailUri")).items()}
        sent: dict[str, Any] = {}
        for name, value in output.items():
            if name not in MEDIA_FIELDS:
                sent[name] = value
            elif media:
                sent.update(media)
                media = {}
        return sent

    def _deliver(self, row: OutboxEvent) -> str:
        """Send `row` once and record the outcome: "delivered", "failed" (retried after the backoff) or "dead"."""
        attempt = row.attempts + 1
        status_code, error = self._attempt(row)
        if error is None:
            self.db.outbox.mark_delivered(row.id, status_code, now=self._now())
            logger.info(
                "webhook %s (%s, batch %s) delivered: HTTP %d on attempt %d",
                row.id,
                row.event,
                row.batch_id,
                status_code,
                attempt,
                extra={"webhookId": row.id, "event": row.event, "batchId": row.batch_id},
            )
            return "delivered"
        return self._record_failure(row, attempt, status_code, error)

    def _attempt(self, row: OutboxEvent) -> tuple[int | None, str | None]:
        """One signed POST of `row`: the HTTP status (None: no answer) and, unless a 2xx, the error (redacted)."""
        raw_body = self.body_to_send(row)
        timestamp = int(self.clock())
        headers = delivery_headers(row.id, timestamp, sign(self._secret, timestamp, raw_body))
        status_code: int | None = None
        try:
            response = self._post(row, raw_body, headers)
            status_code = response.status_code
            if 200 <= status_code < 300:
                return status_code, None
            error = f"HTTP {status_code}: {_snippet(response)}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except FetchError as exc:  # a callback URL refused (SSRF policy)
            error = f"{exc.code}: {exc.message}"
        return status_code, self._redact(error)

    def _record_failure(self, row: OutboxEvent, attempt: int, status_code: int | None, error: str) -> str:
        """The failed attempt recorded: the row retried after the backoff ("failed"), or given up
        past the retry horizon and the minimum attempts ("dead")."""
        now = self._now()
        created_at = as_utc(row.created_at)
        dead = now - created_at >= self.retry_horizon and attempt >= MIN_ATTEMPTS_BEFORE_DEAD
        delay = self.backoff.delay(min(attempt - 1, 30), self.rng)
        self.db.outbox.mark_failed(
            row.id, error, status_code, now + timedelta(seconds=delay), dead=dead, now=now
        )
        if dead:
            # the Node server's code for a webhook it gave up on; also on `zencourt webhooks dead`
            # and the status API's batch (`webhookErrorCode`)
            code = ErrorCode.WEBHOOK_DELIVERY_FAILED
            logger.error(
                "%s: webhook %s (%s, batch %s) is dead after %d attempts over %s: %s",
                code,
                row.id,
                row.event,
                row.batch_id,
                attempt,
                now - created_at,
                error,
                extra={"webhookId": row.id, "event": row.event, "batchId": row.batch_id, "errorCode": code},
            )
            return "dead"
        logger.warning(
            "webhook %s (%s, batch %s) attempt %d failed: %s; next try in %.0f s",
            row.id,
            row.event,
            row.batch_id,
            attempt,
            error,
            delay,
            extra={"webhookId": row.id, "event": row.event, "batchId": row.batch_id},
        )
        return "failed"

    def _post(self, row: OutboxEvent, raw_body: bytes, headers: dict[str, str]) -> httpx.Response:
        """POST one row: to the global URL, or to its batch's callback URL through the SSRF-safe client."""
        if row.target_url is None:
            return self.client.post(self.url, content=raw_body, headers=headers, timeout=self.timeout)
        check_callback_url(row.target_url, self.callback_policy)
        return self.callback_client.post(row.target_url, content=raw_body, headers=headers, timeout=self.timeout)

    def _redact(self, text: str) -> str:
        if self._secret:
            text = text.replace(self._secret, "[redacted]")
        return text[: outbox.MAX_ERROR_LENGTH]

    # -- the loop ----------------------------------------------------------------------------
    def run_forever(self, stop: threading.Event, interval: float = 2.0, limit: int = 50) -> None:
        """Deliver until `stop` is set: a pass every `interval` seconds, at once while a pass
        comes back full (a backlog drains without waiting)."""
        logger.info("webhook deliverer started (%s)", "enabled" if self.enabled else "disabled")
        while not stop.is_set():
            try:
                counts = self.deliver_due(limit=limit)
            except Exception:  # the database may be briefly unreachable: keep going
                logger.exception("webhook delivery pass failed")
                counts = {}
            if counts.get("claimed", 0) >= limit:
                continue
            stop.wait(interval)
        logger.info("webhook deliverer stopped")

    def start(self, stop: threading.Event, interval: float = 2.0) -> threading.Thread:
        """`run_forever` in a daemon thread."""
        thread = threading.Thread(
            target=self.run_forever, args=(stop, interval), name="webhook-deliverer", daemon=True
        )
        thread.start()
        return thread


def _snippet(response: httpx.Response, limit: int = 200) -> str:
    try:
        text = response.text
    except Exception:  # undecodable body
        return "(unreadable body)"
    text = " ".join(text.split())
    return text[:limit] if text else "(empty body)"
