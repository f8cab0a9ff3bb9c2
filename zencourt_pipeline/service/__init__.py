"""The HTTP service: fal webhooks, batch status and cancel, storage (docs/contract.md section 4)."""

from zencourt_pipeline.service.app import Canceller, configure_logging, create_app

__all__ = ["Canceller", "configure_logging", "create_app"]
