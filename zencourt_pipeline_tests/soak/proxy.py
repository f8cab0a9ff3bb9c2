"""A fault-injecting HTTP proxy in front of moto's S3 server (the soak's B2).

The topology's B2_ENDPOINT points here; requests are forwarded byte for byte (headers kept,
Host included, so SigV4 signatures stay what the client signed). `fail(share, seconds)` makes
a share of the object PUTs and GETs answer 503 SlowDown for a window, as B2 does under load.

    proxy = StorageFaultProxy(moto_endpoint).start()
    proxy.fail(0.5, 8.0)            # half of the PUT/GET/HEAD of objects answer 503 for 8 s
    proxy.counts["injected_503"]    # how many were actually answered 503
    proxy.down(30.0)                # every request (bucket calls too) answers 503 for 30 s
    proxy.slow(2.0, 20.0)           # every object request is answered 2 s late for 20 s
    proxy.counts["delayed"]         # how many were actually delayed
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection", "te", "upgrade"}
SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message></Error>")


class StorageFaultProxy:
    def __init__(self, upstream: str, *, seed: int = 0, methods: tuple[str, ...] = ("PUT", "GET", "HEAD")):
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.methods = set(methods)
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._share = 0.0
        self._until = 0.0
        self._down_until = 0.0
        self._delay = 0.0
        self._slow_until = 0.0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------------------
    def fail(self, share: float, seconds: float) -> None:
        """From now on, for `seconds`, answer 503 to `share` of the object requests."""
        with self._lock:
            self._share = share
            self._until = time.monotonic() + seconds
            self.counts["windows"] += 1

    def down(self, seconds: float) -> None:
        """From now on, for `seconds`, the storage is down: every request answers 503."""
        with self._lock:
            self._down_until = time.monotonic() + seconds
            self.counts["down_windows"] += 1

    def slow(self, delay: float, seconds: float) -> None:
        """From now on, for `seconds`, every object request is answered `delay` seconds late."""
        with self._lock:
            self._delay, self._slow_until = delay, time.monotonic() + seconds
            self.counts["slow_windows"] += 1

    def _delay_of(self, path: str) -> float:
        if path.split("?")[0].strip("/").count("/") < 1:
            return 0.0
        with self._lock:
            return self._delay if time.monotonic() < self._slow_until else 0.0

    def _is_down(self) -> bool:
        with self._lock:
            return time.monotonic() < self._down_until

    def _should_fail(self, method: str, path: str) -> bool:
        # object requests only (/bucket/key...), not bucket-level calls
        if method not in self.methods or path.split("?")[0].strip("/").count("/") < 1:
            return False
        with self._lock:
            if time.monotonic() >= self._until:
                return False
            return self._rng.random() < self._share

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> StorageFaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("content-length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                body = self._body()
                proxy.counts[f"request_{self.command}"] += 1
                delay = proxy._delay_of(self.path)
                if delay:
                    proxy.counts["delayed"] += 1
                    time.sleep(delay)
                share_fault, down = proxy._should_fail(self.command, self.path), proxy._is_down()
                if share_fault or down:
                    proxy.counts["injected_503" if share_fault else "injected_503_down"] += 1
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(SLOW_DOWN)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(SLOW_DOWN)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                if body or self.command in ("PUT", "POST"):
                    headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
                    headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=120)
                try:
                    conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for key, value in headers.items():
                        conn.putheader(key, value)
                    conn.endheaders(body or None)
                    response = conn.getresponse()
                    data = response.read()
                    self.send_response(response.status)
                    for key, value in response.getheaders():
                        if key.lower() in HOP_BY_HOP or (key.lower() == "content-length" and self.command != "HEAD"):
                            continue
                        self.send_header(key, value)
                    if self.command != "HEAD":
                        self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="storage-fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
