"""What may be fetched: the policy of an outbound download, the URL checks every hop passes,
the error every refusal or failure is, and the one way a URL is written into a log or a message.

`net.fetch` checks and pins the addresses (the transport); `net.download` streams the bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from zencourt_pipeline.errors import CodedError, ErrorCode
from zencourt_pipeline.net.backoff import RetryPolicy

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
MAX_URL_LENGTH = 8192


class FetchError(CodedError):
    """`code`: INVALID_INPUT (bad URL, refused address, too large, too many redirects),
    UNSUPPORTED_FORMAT (the bytes are a known non-photo), STORAGE_DOWNLOAD_FAILED (HTTP or
    network failure, timeout). `retryable`: another attempt may succeed; `attempts`: how many
    were made (`net.download.download` counts them)."""

    def __init__(self, code: ErrorCode | str, message: str, *, retryable: bool = False):
        super().__init__(code, message)
        self.retryable = retryable
        self.attempts = 1


def normalize_host(host: str) -> str:
    """Lower case, no IPv6 brackets, no trailing dot: the form allowlists are compared in."""
    return host.strip().strip("[]").rstrip(".").lower()


@dataclass(frozen=True)
class FetchPolicy:
    allowed_private_hosts: frozenset[str] = frozenset()
    max_bytes: int = DEFAULT_MAX_BYTES
    max_redirects: int = 5
    total_seconds: float = 120.0
    allow_http: bool = False  # plain http only for allowed private hosts unless this is set
    retries: int = 2  # extra attempts after a transient failure, within total_seconds
    retry_base_delay: float = 0.5

    @classmethod
    def from_hosts(cls, hosts: Iterable[str], **kwargs) -> FetchPolicy:
        return cls(allowed_private_hosts=frozenset(normalize_host(h) for h in hosts if h and h.strip()), **kwargs)

    def allows_private(self, host: str) -> bool:
        return normalize_host(host) in self.allowed_private_hosts

    def retry_policy(self) -> RetryPolicy:
        """`retries` more attempts after the first, backing off from `retry_base_delay` (at most
        10 s, at least half of each step), within `total_seconds`."""
        return RetryPolicy(
            max_attempts=self.retries + 1,
            base_delay=self.retry_base_delay,
            max_delay=10.0,
            max_total_seconds=self.total_seconds,
            jitter=0.5,
        )


def check_url(url: str, policy: FetchPolicy) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL we may request, before any network activity."""
    if len(url) > MAX_URL_LENGTH:
        raise FetchError(ErrorCode.INVALID_INPUT, f"URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        host = normalize_host(parts.hostname or "")
        port = parts.port
    except ValueError as exc:
        raise FetchError(ErrorCode.INVALID_INPUT, f"malformed URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        shown = f"{scheme}://" if scheme else repr(url[:80])
        raise FetchError(ErrorCode.INVALID_INPUT, f"unsupported URL {shown}: only https downloads are allowed")
    if scheme == "http" and not (policy.allow_http or policy.allows_private(host)):
        raise FetchError(ErrorCode.INVALID_INPUT, f"plain http is not allowed for {host!r}: use https")
    return scheme, host, port or (443 if scheme == "https" else 80)


def redact(url: str) -> str:
    """`url` as logs and messages may show it: no query string or fragment (presigned URLs carry
    their signature there) and no `user:password@`."""
    base = url.split("?", 1)[0].split("#", 1)[0]
    scheme, sep, rest = base.partition("//")
    authority, slash, path = rest.partition("/")
    if not sep or (scheme and not scheme.endswith(":")) or "@" not in authority:
        return base
    return f"{scheme}{sep}{authority.rsplit('@', 1)[1]}{slash}{path}"
