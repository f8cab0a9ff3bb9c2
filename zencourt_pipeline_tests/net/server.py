"""A scriptable HTTP(S) server on 127.0.0.1 for download tests: fixed bodies, statuses that
fail first, redirects, slow headers, dripped bodies, bodies without a Content-Length, TLS with
a test CA. Counts every request per path and records the Host header and the TLS SNI."""

from __future__ import annotations

import datetime as dt
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "image/jpeg"
    fail_first: list[int] = field(default_factory=list)  # statuses answered (and popped) first
    location: str | None = None  # a redirect (with `status` 302 unless given)
    delay: float = 0.0  # seconds before the status line
    drip: float | None = None  # seconds between single body bytes
    declared_length: int | None = None  # a Content-Length other than len(body)
    no_length: bool = False  # no Content-Length: the body ends when the connection closes


class LocalServer:
    """`with LocalServer() as server: server.routes["/a.jpg"] = Route(body=...); server.url("/a.jpg")`."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.hosts: list[str] = []
        self.sni: list[str | None] = []
        self._lock = threading.Lock()
        self._tls = tls
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                owner._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            tls.sni_callback = self._record_sni
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    def _record_sni(self, _sock, server_name, _ctx) -> None:
        with self._lock:
            self.sni.append(server_name)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def start(self) -> LocalServer:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        with self._lock:
            self.hits[path] += 1
            self.hosts.append(handler.headers.get("Host", ""))
            route = self.routes.get(path)
            failing = route.fail_first.pop(0) if route is not None and route.fail_first else None
        handler.close_connection = True
        try:
            if route is None or failing is not None:
                status = 404 if route is None else failing
                body = b"<html><body>error</body></html>"
                handler.send_response(status)
                handler.send_header("Content-Type", "text/html")
                handler.send_header("Content-Length", str(len(body)))
                handler.send_header("Connection", "close")
                handler.end_headers()
                handler.wfile.write(body)
                return
            if route.delay:
                time.sleep(route.delay)
            if route.location is not None:
                handler.send_response(route.status if 300 <= route.status < 400 else 302)
                handler.send_header("Location", route.location)
                handler.send_header("Content-Length", "0")
                handler.send_header("Connection", "close")
                handler.end_headers()
                return
            handler.send_response(route.status)
            handler.send_header("Content-Type", route.content_type)
            if not route.no_length:
                length = route.declared_length if route.declared_length is not None else len(route.body)
                handler.send_header("Content-Length", str(length))
            handler.send_header("Connection", "close")
            handler.end_headers()
            if route.drip is None:
                handler.wfile.write(route.body)
                return
            for index in range(len(route.body)):
                handler.wfile.write(route.body[index : index + 1])
                handler.wfile.flush()
                time.sleep(route.drip)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass


# ------------------------------------------------------------------------------------- TLS


@dataclass
class LocalCA:
    cert_pem: bytes
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        ctx.load_verify_locations(cadata=self.cert_pem.decode())
        return ctx

    def server_context(self, tmp: Path, *dns_names: str) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        cert_file, key_file = tmp / f"{dns_names[0]}.crt", tmp / f"{dns_names[0]}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_file, key_file)
        return ctx


def make_test_ca() -> LocalCA:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zencourt test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return LocalCA(cert.public_bytes(serialization.Encoding.PEM), key, cert)
