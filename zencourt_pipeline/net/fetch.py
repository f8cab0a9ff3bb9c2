"""Downloads of user-supplied URLs (listing photos) and provider outputs, SSRF-safe.

Rules, for every hop (the first URL and each redirect, at most `max_redirects`):

* only `https` (plain `http` only for hosts in MEDIA_ALLOWED_PRIVATE_HOSTS, or with
  `allow_http`); `file://`, `ftp://`, `gopher://`, ... are INVALID_INPUT;
* the host is resolved once and every address it resolves to must be public: loopback,
  private (RFC 1918, `fc00::/7`), shared (`100.64/10`), link-local (`169.254.169.254`,
  `fe80::/10`), multicast (`ff00::/8`), reserved and unspecified (`0.0.0.0`, `::`) addresses
  are refused, also in IPv4-mapped (`::ffff:127.0.0.1`), NAT64 (`64:ff9b::/96`) and 6to4 form,
  and numeric hosts are read the way the C library reads them (`2130706433`, `0x7f.1`,
  `017700000001` are 127.0.0.1), unless the host is listed in MEDIA_ALLOWED_PRIVATE_HOSTS;
* the socket then connects to exactly the addresses that were checked (`PinnedBackend`, the
  network backend under httpx/httpcore): a DNS-rebinding host gets no second answer. TLS SNI,
  certificate verification and the Host header still use the URL's hostname.

Limits: `max_bytes` (declared Content-Length first, then counted while streaming, decoded
bytes), `total_seconds` across every hop, retry and read (a server dripping bytes is cut off),
and a bounded retry with backoff for transient failures (5xx, 408/425/429, timeouts, network
errors). What a file is comes from its bytes (`net.sniff`), never from its Content-Type.

This module checks and pins addresses (`safe_client`) and fetches photos (`fetch_url`); the
policy, the URL checks and `FetchError` are in `net.policy`, the one streaming download (also
the providers' output downloads) in `net.download`. Their names are importable from here.
"""

from __future__ import annotations

import functools
import ipaddress
import random
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.net.download import download, open_stream
from zencourt_pipeline.net.policy import (
    DEFAULT_MAX_BYTES,
    MAX_URL_LENGTH,
    FetchError,
    FetchPolicy,
    check_url,
    normalize_host,
    redact,
)
from zencourt_pipeline.net.sniff import RASTER_IMAGE_TYPES, describe, sniff_image_type, sniff_video

__all__ = [  # what callers import from here (the policy and the download live next door)
    "DEFAULT_MAX_BYTES",
    "MAX_URL_LENGTH",
    "FetchError",
    "FetchPolicy",
    "PinnedBackend",
    "PinnedTransport",
    "address_kind",
    "check_content",
    "check_host",
    "check_url",
    "fetch_url",
    "ip_literal",
    "is_public_address",
    "normalize_host",
    "open_stream",
    "redact",
    "resolve_checked",
    "safe_client",
    "system_resolver",
]

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
MAX_ADDRESSES_TRIED = 4
USER_AGENT = "zencourt-pipeline/1 (+media fetch)"

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NUMERIC_HOST = re.compile(r"^(?=.*[0-9])[0-9a-fA-FxX.]+$")


# ------------------------------------------------------------------------------ addresses


def ip_literal(host: str) -> IPAddress | None:
    """The address a host names by itself (no DNS), in every form the C library accepts:
    `127.0.0.1`, `::ffff:127.0.0.1`, `2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`."""
    name = normalize_host(host)
    try:
        return ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        pass
    if _NUMERIC_HOST.match(name):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return None
    return None


def address_kind(address: str | IPAddress) -> str | None:
    """Why an address is not public ("loopback", "private", "link-local", ...), None if it is."""
    ip = ipaddress.ip_address(address.split("%", 1)[0]) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip.sixtofour is not None:
            embedded = address_kind(ip.sixtofour)
            return embedded or "6to4"
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("non-global", not ip.is_global),
    )
    for kind, hit in checks:
        if hit:
            return kind
    return None


def is_public_address(address: str | IPAddress) -> bool:
    return address_kind(address) is None


def system_resolver(host: str, port: int) -> list[str]:
    """getaddrinfo's addresses for `host`, in its (RFC 6724) order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def resolve_checked(host: str, port: int, policy: FetchPolicy, resolver: Resolver | None = None) -> list[str]:
    """Resolve `host` once; refuse it unless every address is public or the host is allowed.

    Returns the addresses to connect to (the caller must connect to these, not resolve again).
    """
    name = normalize_host(host)
    if not name:
        raise FetchError(ErrorCode.INVALID_INPUT, "URL has no host")
    literal = ip_literal(name)
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = (resolver or system_resolver)(name, port)
        except (OSError, UnicodeError) as exc:
            raise FetchError(ErrorCode.STORAGE_DOWNLOAD_FAILED, f"cannot resolve host {name!r}", retryable=True) from exc
        if not addresses:
            raise FetchError(ErrorCode.STORAGE_DOWNLOAD_FAILED, f"host {name!r} has no address", retryable=True)
    if policy.allows_private(name):
        return addresses
    for address in addresses:
        kind = address_kind(address)
        if kind is not None:
            raise FetchError(
                ErrorCode.INVALID_INPUT, f"refusing to fetch from {name!r}: it resolves to a {kind} address"
            )
    return addresses


def check_callback_url(url: str, policy: FetchPolicy) -> str:
    """A batch's callback URL as it is accepted (before any network activity): what `check_url`
    allows (https; plain http only for allowed hosts), no credentials, and no host that names a
    private, loopback or otherwise non-public address by itself (`localhost`, `10.0.0.1`, ...)
    unless allowed. Names are resolved and their addresses checked and pinned at each delivery
    (`safe_client`), so a name that later resolves inward is refused then."""
    _scheme, host, _port = check_url(url, policy)
    if "@" in urlsplit(url).netloc:
        raise FetchError(ErrorCode.INVALID_INPUT, "callback URL must not carry credentials")
    if policy.allows_private(host):
        return url
    literal = ip_literal(host)
    kind = address_kind(literal) if literal is not None else ("loopback" if host == "localhost" or host.endswith(".localhost") else None)
    if kind is not None:
        raise FetchError(ErrorCode.INVALID_INPUT, f"refusing callback URL host {host!r}: a {kind} address")
    return url


def check_host(host: str, port: int, policy: FetchPolicy, resolver: Resolver | None = None) -> list[str]:
    """Alias of `resolve_checked` (the original name)."""
    return resolve_checked(host, port, policy, resolver)


# ------------------------------------------------------------------------- pinned transport


class PinnedBackend(httpcore.NetworkBackend):
    """httpcore's network backend, connecting only to addresses `resolve_checked` accepted.

    httpcore hands it the URL's host; it resolves that once, checks the answer against the
    policy and connects the socket to the checked address itself (so no second lookup can
    answer differently). TLS is started by httpcore on the returned stream with the URL's
    hostname as SNI and for certificate verification.
    """

    def __init__(
        self,
        policy: FetchPolicy,
        resolver: Resolver | None = None,
        inner: httpcore.NetworkBackend | None = None,
    ):
        self.policy = policy
        self.resolver = resolver
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = resolve_checked(host, port, self.policy, self.resolver)
        last: Exception | None = None
        for address in addresses[:MAX_ADDRESSES_TRIED]:
            try:
                return self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options=None):
        raise FetchError(ErrorCode.INVALID_INPUT, "unix sockets are never fetched from")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


@functools.lru_cache(maxsize=2)
def _default_ssl_context(verify: bool) -> ssl.SSLContext:
    """httpx's default context (certifi, or SSL_CERT_FILE/SSL_CERT_DIR), built once: loading
    the CA bundle costs tens of milliseconds and generators are built on every sensor tick."""
    return httpx.create_ssl_context(verify=verify)


class PinnedTransport(httpx.HTTPTransport):
    """httpx's HTTP transport (request/response mapping, exception mapping) over a connection
    pool whose network backend is a `PinnedBackend`. Never uses a proxy from the environment
    (a proxy would do its own resolution)."""

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        resolver: Resolver | None = None,
        verify: ssl.SSLContext | bool = True,
        network_backend: httpcore.NetworkBackend | None = None,
    ):
        # HTTPTransport.__init__ only builds `self._pool`; build ours instead (httpx 0.28 has
        # no public hook for the network backend).
        ssl_context = verify if isinstance(verify, ssl.SSLContext) else _default_ssl_context(bool(verify))
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=10,
            max_keepalive_connections=5,
            keepalive_expiry=5.0,
            network_backend=network_backend or PinnedBackend(policy, resolver),
        )


def safe_client(
    policy: FetchPolicy,
    *,
    resolver: Resolver | None = None,
    verify: ssl.SSLContext | bool = True,
    timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
) -> httpx.Client:
    """An httpx client for untrusted URLs: pinned, checked connections, no redirects followed
    automatically (use `open_stream`), no proxies or credentials from the environment."""
    return httpx.Client(
        transport=PinnedTransport(policy, resolver=resolver, verify=verify),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
    )


# ---------------------------------------------------------------------------------- fetch


def fetch_url(
    url: str,
    dest: Path,
    policy: FetchPolicy,
    *,
    client: httpx.Client | None = None,
    expect: str | None = None,
    resolver: Resolver | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> str:
    """Download `url` to `dest` (atomically); returns the final URL. Raises FetchError.

    `expect="image"`: the bytes must be a raster photo (UNSUPPORTED_FORMAT for a known
    non-photo such as HEIC, SVG or an HTML page, INVALID_INPUT for anything unrecognizable);
    `expect="video"`: an MP4/QuickTime/WebM container. `client`, if given, must come from
    `safe_client` (it is what checks and pins the addresses).
    """
    deadline = time.monotonic() + policy.total_seconds
    own_client = client is None
    client = client or safe_client(policy, resolver=resolver)
    try:
        return download(
            client, url, Path(dest), accept=_accept_photo, max_bytes=policy.max_bytes, retry=policy.retry_policy(),
            validate=None if expect is None else functools.partial(check_content, expect=expect), policy=policy,
            deadline=deadline, sleep=sleep, rng=rng, label="fetch",
        )  # fmt: skip
    except httpx.InvalidURL as exc:
        raise FetchError(ErrorCode.INVALID_INPUT, f"malformed URL: {exc}") from exc
    finally:
        if own_client:
            client.close()


def _accept_photo(response: httpx.Response, final: str) -> None:
    host = urlsplit(final).hostname
    status = response.status_code
    if status >= 400:
        raise FetchError(
            ErrorCode.STORAGE_DOWNLOAD_FAILED,
            f"GET {host} answered HTTP {status}",
            retryable=status in (408, 425, 429) or status >= 500,
        )
    if status not in (200, 203):
        raise FetchError(ErrorCode.STORAGE_DOWNLOAD_FAILED, f"GET {host} answered HTTP {status} without a body")


def check_content(path: Path, expect: str) -> str:
    """The sniffed kind of `path`, or FetchError when it is not what `expect` asks for."""
    if expect == "image":
        kind = sniff_image_type(path)
        if kind in RASTER_IMAGE_TYPES:
            return kind
        if kind is None:
            raise FetchError(ErrorCode.INVALID_INPUT, "the downloaded file is empty or not a recognizable image")
        raise FetchError(ErrorCode.UNSUPPORTED_FORMAT, f"the downloaded file is {describe(kind)}, not a raster photo")
    if expect == "video":
        kind = sniff_video(path)
        if kind is None:
            seen = sniff_image_type(path)
            raise FetchError(ErrorCode.INVALID_INPUT, f"the downloaded file is {describe(seen)}, not a video")
        return kind
    raise ValueError(f"unknown expectation {expect!r}")
