"""`GET /` (no auth): what answers here, as the Node video server's root route did: the service
name, version, uptime and links to `/health` and the API description (`/openapi.json`, FastAPI's
schema of the routes; docs/contract.md section 4 is the contract)."""

from __future__ import annotations

import time
from importlib import metadata

from fastapi import APIRouter, Request

from zencourt_pipeline.service.models import ServiceInfo, ServiceLinks

router = APIRouter()

SERVICE_NAME = "zencourt_pipeline"
OPENAPI_PATH = "/openapi.json"


def package_version() -> str:
    """The installed distribution's version (`0.0.0` when run from an uninstalled tree)."""
    try:
        return metadata.version(SERVICE_NAME)
    except metadata.PackageNotFoundError:
        return "0.0.0"


@router.get("/", response_model=ServiceInfo, response_model_by_alias=True)
async def root(request: Request) -> ServiceInfo:
    """Service name, version, uptime and links; never touches the database or storage."""
    return ServiceInfo(
        service=SERVICE_NAME,
        version=package_version(),
        uptime_seconds=round(time.monotonic() - request.app.state.started_at, 1),
        links=ServiceLinks(health="/health", api=OPENAPI_PATH),
    )
