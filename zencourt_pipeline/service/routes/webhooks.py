"""`POST /webhooks/fal`: fal's completion webhook.

Order matters: read the raw body (size-limited), verify the Ed25519 signature over exactly
those bytes (401, nothing recorded, when headers are missing, the signature is bad or the
timestamp is stale), parse (400 on malformed JSON / no request_id), write the completion
durably, and only then answer 200. A database failure answers 500 so that fal retries.
Duplicate deliveries (fal retries up to 10 times) answer 200 and change nothing. A request
id we do not know yet is recorded too (its task id may not be persisted yet: the database
layer links the completion when it is) and answered 200.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.providers.fal_webhook import (
    JwksUnavailableError,
    WebhookVerificationError,
    parse_fal_webhook,
)
from zencourt_pipeline.service.errors import ApiError, ApiErrorCode
from zencourt_pipeline.service.models import FalWebhookResponse
from zencourt_pipeline.service.openapi import errors

# fal's body (its queue's webhook format), checked by parse_fal_webhook after the signature
FAL_WEBHOOK_BODY = {
    "requestBody": {
        "required": True,
        "description": "fal's webhook body, signed (headers x-fal-webhook-request-id, -user-id, -timestamp, -signature)",
        "content": {"application/json": {"schema": {
            "type": "object",
            "required": ["request_id", "status"],
            "properties": {
                "request_id": {"type": "string"},
                "gateway_request_id": {"type": "string"},
                "status": {"type": "string"},
                "payload": {"type": ["object", "null"]},
                "error": {"type": ["string", "null"]},
            },
        }}},
    }
}

logger = logging.getLogger("zencourt_pipeline.service.webhooks")
router = APIRouter()


def _task_known(db, provider: str, task_id: str) -> bool | None:
    try:
        return db.ledger.task_known(provider, task_id)
    except Exception:  # noqa: BLE001 - only used for logging
        return None


@router.post(
    "/webhooks/fal",
    response_model=FalWebhookResponse,
    response_model_by_alias=True,
    responses=errors(400, 401, 413, 500, 503),
    openapi_extra=FAL_WEBHOOK_BODY,
)
async def fal_webhook(request: Request) -> FalWebhookResponse:
    """`POST /webhooks/fal`: verify the signature over the raw body, record the completion, answer 200."""
    state = request.app.state
    raw = await request.body()

    try:
        await run_in_threadpool(state.verifier.verify, request.headers, raw)
    except JwksUnavailableError as exc:  # fal's keys could not be loaded: let fal retry later
        logger.error("could not verify fal webhook: %s", exc.reason)
        raise ApiError(
            503, ApiErrorCode.WEBHOOK_VERIFICATION_UNAVAILABLE, "could not verify the webhook signature now; retry later"
        ) from None
    except WebhookVerificationError as exc:
        logger.warning("rejected fal webhook: %s", exc.reason)
        raise ApiError(401, ApiErrorCode.UNAUTHORIZED, "invalid fal webhook signature", {"reason": exc.reason}) from None
    except Exception as exc:
        logger.error("could not verify fal webhook", exc_info=True, extra={"errorType": type(exc).__name__})
        raise ApiError(
            503, ApiErrorCode.WEBHOOK_VERIFICATION_UNAVAILABLE, "could not verify the webhook signature now; retry later"
        ) from None

    try:
        completion = parse_fal_webhook(raw)
    except ValueError as exc:
        logger.warning("malformed fal webhook: %s", exc)
        raise ApiError(400, ErrorCode.INVALID_INPUT, f"malformed fal webhook: {exc}") from None

    status = getattr(completion.status, "value", completion.status)
    try:
        inserted = await run_in_threadpool(
            lambda: state.db.completions.record_completion(
                provider=completion.provider or "fal",
                task_id=completion.task_id,
                status=status,
                source="webhook",
                output_url=completion.output_url,
                error_code=completion.error_code,
                error_message=completion.error_message,
                payload=raw.decode("utf-8", errors="replace"),
            )
        )
    except Exception:
        logger.exception("could not record fal webhook", extra={"requestId": completion.task_id})
        raise ApiError(500, ApiErrorCode.DATABASE_ERROR, "could not record the completion; retry later") from None

    fields = {"requestId": completion.task_id, "completionStatus": status, "duplicate": not inserted}
    if not inserted:
        logger.info("duplicate fal webhook ignored", extra=fields)
    elif (
        await run_in_threadpool(_task_known, state.db, completion.provider or "fal", completion.task_id)
        is False
    ):
        logger.warning(
            "fal webhook for an unknown request_id recorded (linked when its task is persisted)", extra=fields
        )
    else:
        logger.info("fal webhook recorded", extra=fields)
    return FalWebhookResponse(request_id=completion.task_id, duplicate=not inserted)
