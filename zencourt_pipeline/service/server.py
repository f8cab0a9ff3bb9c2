"""`zencourt serve`: the HTTP service under uvicorn on 0.0.0.0:`PORT`."""

from __future__ import annotations

import logging
import threading

from zencourt_pipeline.config import Settings
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.service.app import Canceller, configure_logging, create_app
from zencourt_pipeline.storage.base import Storage

logger = logging.getLogger("zencourt_pipeline.service")


def stopping_server(config, stopping: threading.Event):
    """A uvicorn server that also sets `stopping` when told to exit (SIGTERM, SIGINT): the live
    event streams end then (their clients reconnect with `Last-Event-ID`, to another replica)
    instead of holding the shutdown for the whole graceful timeout."""
    import uvicorn

    class StoppingServer(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            stopping.set()
            super().handle_exit(sig, frame)

    return StoppingServer(config)


def serve(
    settings: Settings,
    *,
    host: str = "0.0.0.0",
    db: AppDatabase | None = None,
    storage: Storage | None = None,
    verifier=None,
    canceller: Canceller | None = None,
) -> None:
    """Run the service until interrupted. JSON logs at LOG_LEVEL; secrets redacted.

    With the embedded SQLite default the schema is upgraded first (`zencourt db upgrade` is the
    way for a shared PostgreSQL database).
    """
    import uvicorn

    configure_logging(settings)
    if db is None:
        db = AppDatabase.connect(settings.resolved_database_url)
        if db.db.engine.dialect.name == "sqlite":
            db.db.upgrade()
    app = create_app(settings, db=db, storage=storage, verifier=verifier, canceller=canceller)
    if not settings.video_server_api_key:
        logger.warning("VIDEO_SERVER_API_KEY is not set: every protected route answers 503")
    logger.info("starting HTTP service", extra={"host": host, "port": settings.port})
    config = uvicorn.Config(
        app,
        host=host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=True,
        timeout_graceful_shutdown=20,
    )
    stopping_server(config, app.state.stopping).run()
