"""Downloads of user-supplied URLs (listing photos) and provider outputs, SSRF-safe.

Every hop (the first URL and each redirect) is resolved and refused when any address it
resolves to is loopback, private, link-local (169.254.169.254), multicast, reserved or
unspecified, in IPv4 or IPv6 form, unless the host is in MEDIA_ALLOWED_PRIVATE_HOSTS.
Known gap: httpx resolves the name again when it connects, so a DNS-rebinding host could
answer differently the second time (pinning the checked address is tracked in the hardening issue).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlparse

import httpx

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class FetchError(Exception):
    """`code`: INVALID_INPUT (bad URL / refused address), STORAGE_DOWNLOAD_FAILED (HTTP or network)."""

    def __init__(self, code: str, message: str, *, retryable: bool = False):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class FetchPolicy:
    allowed_private_hosts: frozenset[str] = frozenset()
    max_bytes: int = DEFAULT_MAX_BYTES
    max_redirects: int = 5
    total_seconds: float = 120.0
    allow_http: bool = False  # plain http only for allowed private hosts unless this is set

    @classmethod
    def from_hosts(cls, hosts: Iterable[str], **kwargs) -> FetchPolicy:
        return cls(allowed_private_hosts=frozenset(h.lower() for h in hosts), **kwargs)


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_unspecified)


def check_host(host: str, port: int, policy: FetchPolicy) -> list[str]:
    """Resolve `host`; refuse non-public addresses unless the host is allowed. Returns the addresses."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchError("STORAGE_DOWNLOAD_FAILED", f"cannot resolve host {host!r}", retryable=True) from exc
    addresses = sorted({info[4][0] for info in infos})
    if host.lower() in policy.allowed_private_hosts:
        return addresses
    refused = [address for address in addresses if not is_public_address(address)]
    if refused:
        raise FetchError("INVALID_INPUT", f"refusing to fetch from {host!r}: it resolves to a non-public address")
    return addresses


def fetch_url(url: str, dest: Path, policy: FetchPolicy, *, client: httpx.Client | None = None) -> str:
    """Download `url` to `dest` (atomically); returns the final URL. Raises FetchError."""
    deadline = time.monotonic() + policy.total_seconds
    own_client = client is None
    client = client or httpx.Client(timeout=DEFAULT_TIMEOUT, follow_redirects=False, trust_env=False)
    try:
        current = url
        for _hop in range(policy.max_redirects + 1):
            parsed = urlparse(current)
            host = (parsed.hostname or "").lower()
            if parsed.scheme not in ("http", "https") or not host:
                raise FetchError("INVALID_INPUT", f"unsupported URL {current[:200]!r}: only https downloads are allowed")
            allowed_host = host in policy.allowed_private_hosts
            if parsed.scheme == "http" and not (allowed_host or policy.allow_http):
                raise FetchError("INVALID_INPUT", f"plain http is not allowed for {host!r}")
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
            check_host(host, port, policy)
            with client.stream("GET", current, timeout=_remaining(deadline)) as response:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise FetchError("STORAGE_DOWNLOAD_FAILED", "redirect without a Location header")
                    current = urljoin(current, location)
                    continue
                if response.status_code >= 400:
                    raise FetchError(
                        "STORAGE_DOWNLOAD_FAILED",
                        f"GET {host} answered HTTP {response.status_code}",
                        retryable=response.status_code in (408, 425, 429) or response.status_code >= 500,
                    )
                _stream_to(response, dest, policy.max_bytes, deadline)
                return current
        raise FetchError("INVALID_INPUT", f"too many redirects (more than {policy.max_redirects})")
    except httpx.TimeoutException as exc:
        raise FetchError("STORAGE_DOWNLOAD_FAILED", "download timed out", retryable=True) from exc
    except httpx.HTTPError as exc:
        raise FetchError("STORAGE_DOWNLOAD_FAILED", f"download failed: {type(exc).__name__}", retryable=True) from exc
    finally:
        if own_client:
            client.close()


def _remaining(deadline: float) -> httpx.Timeout:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError("STORAGE_DOWNLOAD_FAILED", "download timed out", retryable=True)
    return httpx.Timeout(min(left, 30.0), connect=min(left, 10.0))


def _stream_to(response: httpx.Response, dest: Path, max_bytes: int, deadline: float) -> None:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError("INVALID_INPUT", f"file too large ({int(declared)} bytes > {max_bytes})")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        received = 0
        with os.fdopen(fd, "wb") as out:
            for chunk in response.iter_bytes(256 * 1024):
                received += len(chunk)
                if received > max_bytes:
                    raise FetchError("INVALID_INPUT", f"file too large (over {max_bytes} bytes)")
                if time.monotonic() > deadline:
                    raise FetchError("STORAGE_DOWNLOAD_FAILED", "download timed out", retryable=True)
                out.write(chunk)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
