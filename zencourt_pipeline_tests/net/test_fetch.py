"""SSRF-safe downloads: address checks in every form, pinned connections, redirects, limits,
retries and content sniffing, on literal addresses, an injected resolver and real sockets."""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpcore
import httpx
import pytest
from PIL import Image

from zencourt_pipeline.net.fetch import (
    FetchError,
    FetchPolicy,
    PinnedBackend,
    PinnedTransport,
    address_kind,
    fetch_url,
    ip_literal,
    is_public_address,
    resolve_checked,
    safe_client,
)
from zencourt_pipeline.net.sniff import sniff_image_type, sniff_video
from zencourt_pipeline.providers.base import GenerationError
from zencourt_pipeline.providers.output import download_to_file
from zencourt_pipeline_tests.net.server import LocalServer, Route, make_test_ca

LOCAL = FetchPolicy.from_hosts(["127.0.0.1"], retries=2, retry_base_delay=0.01, total_seconds=10)
STRICT = FetchPolicy(retries=0, total_seconds=10)  # nothing private allowed


def png_bytes(size=(96, 80)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes(size=(96, 80)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 120, 10)).save(buf, "JPEG")
    return buf.getvalue()


class RecordingBackend(httpcore.NetworkBackend):
    """Stands in for the socket layer: records where a connection was asked to go, connects nowhere."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.calls.append((host, port))
        raise httpcore.ConnectError("recording backend: not connecting")


class ScriptedResolver:
    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def recording_client(policy: FetchPolicy, resolver=None) -> tuple[httpx.Client, RecordingBackend]:
    backend = RecordingBackend()
    transport = PinnedTransport(policy, network_backend=PinnedBackend(policy, resolver, inner=backend))
    return httpx.Client(transport=transport, follow_redirects=False, trust_env=False), backend


def expect_error(code: str, url: str, dest: Path, policy: FetchPolicy = LOCAL, **kwargs) -> FetchError:
    with pytest.raises(FetchError) as err:
        fetch_url(url, dest, policy, **kwargs)
    assert err.value.code == code, err.value
    assert not dest.exists()
    assert not [p.name for p in dest.parent.iterdir() if p.name.endswith(".part")]
    return err.value


# --------------------------------------------------------------------------- address forms

REFUSED_URLS = {
    "loopback": "https://127.0.0.1/p.jpg",
    "loopback-other": "https://127.8.9.10/p.jpg",
    "decimal": "https://2130706433/p.jpg",
    "hex": "https://0x7f.1/p.jpg",
    "hex-dotted": "https://0x7f.0x0.0x0.0x1/p.jpg",
    "octal": "https://017700000001/p.jpg",
    "octal-dotted": "https://0177.0.0.1/p.jpg",
    "short": "https://127.1/p.jpg",
    "unspecified": "https://0.0.0.0/p.jpg",
    "zero-short": "https://0/p.jpg",
    "metadata": "https://169.254.169.254/latest/meta-data/",
    "metadata-decimal": "https://2852039166/latest/meta-data/",
    "rfc1918-10": "https://10.0.0.1/p.jpg",
    "rfc1918-172": "https://172.16.5.4/p.jpg",
    "rfc1918-192": "https://192.168.0.10/p.jpg",
    "shared-cgnat": "https://100.64.0.1/p.jpg",
    "multicast": "https://224.0.0.1/p.jpg",
    "broadcast": "https://255.255.255.255/p.jpg",
    "v6-loopback": "https://[::1]/p.jpg",
    "v6-unspecified": "https://[::]/p.jpg",
    "v6-mapped-loopback": "https://[::ffff:127.0.0.1]/p.jpg",
    "v6-mapped-metadata": "https://[::ffff:169.254.169.254]/p.jpg",
    "v6-mapped-hex": "https://[::ffff:a9fe:a9fe]/p.jpg",
    "v6-compat": "https://[::127.0.0.1]/p.jpg",
    "v6-link-local": "https://[fe80::1]/p.jpg",
    "v6-ula": "https://[fc00::1]/p.jpg",
    "v6-ula-aws-metadata": "https://[fd00:ec2::254]/p.jpg",
    "v6-multicast": "https://[ff02::1]/p.jpg",
    "v6-nat64-loopback": "https://[64:ff9b::7f00:1]/p.jpg",
    "v6-6to4-metadata": "https://[2002:a9fe:a9fe::1]/p.jpg",
}


@pytest.mark.parametrize("url", list(REFUSED_URLS.values()), ids=list(REFUSED_URLS))
def test_non_public_literal_addresses_are_refused_before_any_connection(url, tmp_path):
    def resolver(host, port):
        raise AssertionError(f"a literal address needs no DNS lookup ({host})")

    client, backend = recording_client(STRICT, resolver)
    with client:
        err = expect_error("INVALID_INPUT", url, tmp_path / "p.jpg", STRICT, client=client)
    assert "address" in err.message
    assert backend.calls == []  # not even a SYN


@pytest.mark.parametrize(
    "answer",
    [["10.1.2.3"], ["93.184.216.34", "127.0.0.1"], ["::1"], ["169.254.169.254"], ["fd12::1", "2606:4700::1111"]],
    ids=["private", "mixed", "v6-loopback", "metadata", "mixed-v6"],
)
def test_hostnames_resolving_to_non_public_addresses_are_refused(answer, tmp_path):
    resolver = ScriptedResolver(answer)
    client, backend = recording_client(LOCAL, resolver)
    with client:
        expect_error("INVALID_INPUT", "https://photos.example/p.jpg", tmp_path / "p.jpg", client=client)
    assert resolver.calls == ["photos.example"] and backend.calls == []


def test_public_addresses_are_connected_to_exactly_as_checked(tmp_path):
    resolver = ScriptedResolver(["93.184.216.34", "2606:2800:220:1::1"])
    policy = FetchPolicy(retries=0)
    client, backend = recording_client(policy, resolver)
    with client:
        err = expect_error("STORAGE_DOWNLOAD_FAILED", "https://photos.example:8443/p.jpg", tmp_path / "p.jpg", policy, client=client)
    assert err.retryable
    assert backend.calls == [("93.184.216.34", 8443), ("2606:2800:220:1::1", 8443)]


def test_dns_rebinding_gets_no_second_answer(tmp_path):
    """The first answer is public and checked; the socket goes there; a second lookup (which
    would answer 127.0.0.1) never happens."""
    resolver = ScriptedResolver(["93.184.216.34"], ["127.0.0.1"])
    policy = FetchPolicy(retries=0)
    client, backend = recording_client(policy, resolver)
    with client:
        expect_error("STORAGE_DOWNLOAD_FAILED", "https://rebind.example/p.jpg", tmp_path / "p.jpg", policy, client=client)
    assert resolver.calls == ["rebind.example"]
    assert backend.calls == [("93.184.216.34", 443)]


def test_allowlist_is_by_exact_host_not_by_address(tmp_path):
    allowed = FetchPolicy.from_hosts(["127.0.0.1", "Storage.Internal."])
    assert allowed.allows_private("storage.internal") and allowed.allows_private("[127.0.0.1]")
    for other in ("2130706433", "0x7f.1", "127.1", "localhost"):
        with pytest.raises(FetchError) as err:
            resolve_checked(other, 443, allowed, resolver=lambda h, p: ["127.0.0.1"])
        assert err.value.code == "INVALID_INPUT", other
    assert resolve_checked("storage.internal", 443, allowed, resolver=lambda h, p: ["10.0.0.5"]) == ["10.0.0.5"]


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        "ftp://example.com/p.jpg",
        "gopher://example.com:70/_GET",
        "data:image/jpeg;base64,AAAA",
        "//example.com/p.jpg",
        "example.com/p.jpg",
        "http://photos.example/p.jpg",  # plain http to a host that is not allowed
        "https:///p.jpg",
        "https://[::1/p.jpg",
    ],
)
def test_only_https_urls_with_a_host_are_fetched(url, tmp_path):
    client, backend = recording_client(LOCAL, ScriptedResolver(["93.184.216.34"]))
    with client:
        expect_error("INVALID_INPUT", url, tmp_path / "p.jpg", client=client)
    assert backend.calls == []


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("127.0.0.1", False),
        ("169.254.169.254", False),
        ("::ffff:10.0.0.1", False),
        ("fe80::1%eth0", False),
        ("198.18.0.1", False),
        ("192.0.2.1", False),
        ("240.0.0.1", False),
    ],
)
def test_is_public_address(address, public):
    assert is_public_address(address) is public
    assert (address_kind(address) is None) is public


def test_numeric_hosts_are_read_like_the_c_library():
    assert str(ip_literal("2130706433")) == "127.0.0.1"
    assert str(ip_literal("0x7f.1")) == "127.0.0.1"
    assert str(ip_literal("0177.0.0.1")) == "127.0.0.1"
    assert str(ip_literal("[::ffff:169.254.169.254]")) == "::ffff:a9fe:a9fe"
    assert ip_literal("cafe.de") is None and ip_literal("photos.example") is None


# ---------------------------------------------------------------------------- real sockets


@pytest.fixture
def server():
    with LocalServer() as srv:
        yield srv


def test_download_over_a_real_socket(server, tmp_path):
    server.routes["/p.png"] = Route(body=png_bytes(), content_type="text/html")  # the bytes win
    dest = tmp_path / "p.png"
    assert fetch_url(server.url("/p.png"), dest, LOCAL, expect="image") == server.url("/p.png")
    assert dest.read_bytes() == png_bytes()
    assert server.hosts == [f"127.0.0.1:{server.port}"]


def test_a_pinned_name_keeps_its_host_header(server, tmp_path):
    resolver = ScriptedResolver(["127.0.0.1"])
    policy = FetchPolicy.from_hosts(["photos.test"], total_seconds=10)
    server.routes["/p.jpg"] = Route(body=jpeg_bytes())
    fetch_url(f"http://photos.test:{server.port}/p.jpg", tmp_path / "p.jpg", policy, resolver=resolver)
    assert resolver.calls == ["photos.test"]
    assert server.hosts == [f"photos.test:{server.port}"]


def test_tls_keeps_sni_and_certificate_verification_for_the_hostname(tmp_path):
    ca = make_test_ca()
    resolver = ScriptedResolver(["127.0.0.1"])
    policy = FetchPolicy.from_hosts(["photos.test"], total_seconds=10, retries=0)
    with LocalServer(tls=ca.server_context(tmp_path, "photos.test")) as tls_server:
        tls_server.routes["/p.jpg"] = Route(body=jpeg_bytes())
        with safe_client(policy, resolver=resolver, verify=ca.client_context()) as client:
            fetch_url(tls_server.url("/p.jpg", host="photos.test"), tmp_path / "p.jpg", policy, client=client)
        assert tls_server.sni == ["photos.test"]
        assert tls_server.hosts == [f"photos.test:{tls_server.port}"]
    # a certificate for another name is refused although the pinned address is the same
    with LocalServer(tls=ca.server_context(tmp_path, "other.test")) as tls_server:
        tls_server.routes["/p.jpg"] = Route(body=jpeg_bytes())
        with safe_client(policy, resolver=resolver, verify=ca.client_context()) as client:
            err = expect_error(
                "STORAGE_DOWNLOAD_FAILED", tls_server.url("/p.jpg", host="photos.test"), tmp_path / "q.jpg",
                policy, client=client,
            )  # fmt: skip
        assert tls_server.hits["/p.jpg"] == 0 and err.retryable


def test_404_is_not_retried(server, tmp_path):
    err = expect_error("STORAGE_DOWNLOAD_FAILED", server.url("/missing.jpg"), tmp_path / "p.jpg")
    assert "404" in err.message and not err.retryable
    assert server.hits["/missing.jpg"] == 1


def test_500_then_200_is_retried(server, tmp_path):
    server.routes["/p.jpg"] = Route(body=jpeg_bytes(), fail_first=[500, 503])
    fetch_url(server.url("/p.jpg"), tmp_path / "p.jpg", LOCAL, expect="image")
    assert server.hits["/p.jpg"] == 3


def test_5xx_past_the_retry_budget_fails(server, tmp_path):
    server.routes["/p.jpg"] = Route(body=jpeg_bytes(), fail_first=[502] * 10)
    err = expect_error("STORAGE_DOWNLOAD_FAILED", server.url("/p.jpg"), tmp_path / "p.jpg")
    assert err.retryable and server.hits["/p.jpg"] == LOCAL.retries + 1


def test_redirect_loop_stops_at_the_bound(server, tmp_path):
    server.routes["/a"] = Route(location="/b")
    server.routes["/b"] = Route(location=server.url("/a"))
    err = expect_error("INVALID_INPUT", server.url("/a"), tmp_path / "p.jpg")
    assert "redirects" in err.message
    assert server.hits["/a"] + server.hits["/b"] == LOCAL.max_redirects + 1


def test_redirects_within_the_bound_are_followed(server, tmp_path):
    server.routes["/a"] = Route(location="/b", status=301)
    server.routes["/b"] = Route(location="/c", status=307)
    server.routes["/c"] = Route(body=jpeg_bytes())
    assert fetch_url(server.url("/a"), tmp_path / "p.jpg", LOCAL) == server.url("/c")


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/iam/",
        "https://169.254.169.254/latest/meta-data/iam/",
        "https://10.0.0.1/p.jpg",
        "https://[::1]/p.jpg",
        "http://localhost:{port}/p.jpg",  # loopback under a name that is not allowed
        "https://2130706433:{port}/p.jpg",
        "file:///etc/passwd",
    ],
)
def test_a_redirect_from_an_allowed_host_to_a_refused_address_is_refused(server, tmp_path, target):
    server.routes["/r"] = Route(location=target.format(port=server.port))
    server.routes["/p.jpg"] = Route(body=jpeg_bytes())
    expect_error("INVALID_INPUT", server.url("/r"), tmp_path / "p.jpg")
    assert server.hits["/p.jpg"] == 0


def test_slow_headers_hit_the_total_time_limit(server, tmp_path):
    server.routes["/slow.jpg"] = Route(body=jpeg_bytes(), delay=3.0)
    policy = FetchPolicy.from_hosts(["127.0.0.1"], total_seconds=0.5)
    started = time.monotonic()
    err = expect_error("STORAGE_DOWNLOAD_FAILED", server.url("/slow.jpg"), tmp_path / "p.jpg", policy)
    assert "timed out" in err.message and time.monotonic() - started < 2.0


def test_a_dripping_body_hits_the_total_time_limit(server, tmp_path):
    """One byte every 50 ms never trips a read timeout; the total limit still ends it."""
    server.routes["/drip.jpg"] = Route(body=jpeg_bytes(), drip=0.05)
    policy = FetchPolicy.from_hosts(["127.0.0.1"], total_seconds=0.6)
    started = time.monotonic()
    err = expect_error("STORAGE_DOWNLOAD_FAILED", server.url("/drip.jpg"), tmp_path / "p.jpg", policy)
    assert "timed out" in err.message and time.monotonic() - started < 2.0


def test_declared_oversized_body_is_refused_before_reading(server, tmp_path):
    server.routes["/big.jpg"] = Route(body=b"\xff\xd8\xff" + bytes(5000))
    policy = FetchPolicy.from_hosts(["127.0.0.1"], max_bytes=4096)
    err = expect_error("INVALID_INPUT", server.url("/big.jpg"), tmp_path / "p.jpg", policy)
    assert "too large" in err.message


def test_streamed_oversized_body_is_cut_off(server, tmp_path):
    """No Content-Length: the bytes are counted while they arrive."""
    server.routes["/big.jpg"] = Route(body=b"\xff\xd8\xff" + bytes(200_000), no_length=True)
    policy = FetchPolicy.from_hosts(["127.0.0.1"], max_bytes=64 * 1024)
    err = expect_error("INVALID_INPUT", server.url("/big.jpg"), tmp_path / "p.jpg", policy)
    assert "too large" in err.message and server.hits["/big.jpg"] == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"<!DOCTYPE html><html><body>Not found</body></html>", "UNSUPPORTED_FORMAT"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "UNSUPPORTED_FORMAT"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), "UNSUPPORTED_FORMAT"),
        (b"%PDF-1.7\n", "UNSUPPORTED_FORMAT"),
        (b"\x13\x37 random bytes", "INVALID_INPUT"),
        (b"", "INVALID_INPUT"),
    ],
    ids=["html", "svg", "heic", "pdf", "garbage", "empty"],
)
def test_content_type_comes_from_the_bytes(server, tmp_path, body, code):
    server.routes["/p.jpg"] = Route(body=body, content_type="image/jpeg")
    expect_error(code, server.url("/p.jpg"), tmp_path / "p.jpg", expect="image")


def test_sniffers():
    assert sniff_image_type(jpeg_bytes()) == "jpeg" and sniff_image_type(png_bytes()) == "png"
    assert sniff_image_type(b"GIF89a....") == "gif"
    assert sniff_image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    assert sniff_image_type(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf") == "avif"
    assert sniff_video(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2") == "mp4"
    assert sniff_video(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic") is None
    assert sniff_video(b"<html>502</html>") is None


# ------------------------------------------------------------------------ provider outputs


def test_provider_output_downloads_are_checked_too(server, tmp_path, sample_clip):
    """download_to_file with a fetch policy: the output URL's address is checked, its
    redirects bounded and re-checked; refusals are INVALID_OUTPUT (another provider may work)."""
    data = sample_clip.read_bytes()
    server.routes["/out.mp4"] = Route(body=data, content_type="video/mp4")
    server.routes["/to-metadata"] = Route(location="http://169.254.169.254/latest/meta-data/")
    policy = FetchPolicy.from_hosts(["127.0.0.1"], max_bytes=len(data) + 1, total_seconds=10)
    ok = download_to_file(None, server.url("/out.mp4"), tmp_path / "ok.mp4", fetch_policy=policy)
    assert ok.read_bytes() == data
    for url in (server.url("/to-metadata"), "https://10.0.0.7/out.mp4", "https://[::ffff:127.0.0.1]/o.mp4"):
        with pytest.raises(GenerationError) as err:
            download_to_file(None, url, tmp_path / "bad.mp4", fetch_policy=policy, sleep=lambda s: None)
        assert (err.value.code, err.value.fallback) == ("INVALID_OUTPUT", True), url
        assert "refused" in err.value.message
    assert not (tmp_path / "bad.mp4").exists()


@pytest.fixture
def sample_clip():
    from zencourt_pipeline_tests.fakes.server import sample_mp4

    return sample_mp4(320, 240, seconds=1.0)


def test_generators_refuse_private_output_urls(tmp_path):
    """Runway and fal outputs go through the same checks; MEDIA_ALLOWED_PRIVATE_HOSTS (and the
    configured API host) may serve them."""
    from zencourt_pipeline.providers.fal import FalGenerator
    from zencourt_pipeline.providers.runway import RunwayGenerator

    generators = [
        RunwayGenerator("k", base_url="https://api.dev.runwayml.com", sleep=lambda s: None),
        FalGenerator("k", queue_url="https://queue.fal.run", sleep=lambda s: None, allowed_private_hosts=["media.internal"]),
    ]
    try:
        for gen in generators:
            for url in ("http://169.254.169.254/latest/meta-data/", "https://10.0.0.7/out.mp4", "https://0x7f.1/o.mp4"):
                with pytest.raises(GenerationError) as err:
                    gen._download(url, tmp_path / "out.mp4")
                assert (err.value.code, err.value.fallback) == ("INVALID_OUTPUT", True), url
        assert generators[0].fetch_policy.allowed_private_hosts == {"api.dev.runwayml.com"}
        assert generators[1].fetch_policy.allowed_private_hosts == {"media.internal", "queue.fal.run"}
    finally:
        for gen in generators:
            gen.close()
