"""`GET /health` (no auth).

Always answers 200 while the process is up; `status` is "ok" when the database and storage
are both reachable and "degraded" otherwise (load balancers that need a failing status code
should look at `status`, the process itself is healthy enough to answer and to be restarted
only if it stops answering). Each probe is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

logger = logging.getLogger("zencourt_pipeline.service.health")
router = APIRouter()

PROBE_TIMEOUT_SECONDS = 5.0


async def _probe(name: str, fn) -> bool:
    try:
        return bool(await asyncio.wait_for(run_in_threadpool(fn), timeout=PROBE_TIMEOUT_SECONDS))
    except Exception as exc:  # noqa: BLE001 - a failed probe is a result, not an error
        logger.warning("health probe failed", extra={"probe": name, "errorType": type(exc).__name__})
        return False


@router.get("/health")
async def health(request: Request) -> dict:
    state = request.app.state
    database, storage = await asyncio.gather(
        _probe("database", state.db.ping), _probe("storage", state.storage.ping)
    )
    return {
        "status": "ok" if database and storage else "degraded",
        "database": database,
        "storage": storage,
        "storageBackend": getattr(state.storage, "name", None),
        "apiKeyConfigured": bool(state.settings.video_server_api_key),
        "uptimeSeconds": round(time.monotonic() - state.started_at, 1),
    }
