"""Completion webhooks to the web app (docs/contract.md section 5): signing and outbox delivery."""

from zencourt_pipeline.notify.signing import delivery_headers, sign, verify

__all__ = ["delivery_headers", "sign", "verify"]
