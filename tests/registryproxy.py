"""A stand-in for the failures a real registry cannot be made to produce on demand, in front of the real one.

``FailingRegistryProxy`` forwards every request to the real Schema Registry (so ids, subjects and
compatibility answers are the real registry's) until told to fail the way a registry, or the network to
it, fails: answer 503 (an overloaded or restarting registry), drop connections without an answer (a
registry that went away), answer 404 pages (an ingress routing the path elsewhere), or refuse requests
without the expected basic-auth credentials (401). With a certificate it serves HTTPS, for the registry
client's TLS settings.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import urllib.error
import urllib.request
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class Mode(StrEnum):
    FORWARD = "forward"
    SERVICE_UNAVAILABLE = "503"
    DROP = "drop"
    NOT_FOUND_PAGE = "404"


class FailingRegistryProxy:
    def __init__(
        self,
        target: str,
        credentials: tuple[str, str] | None = None,
        certificate: tuple[Path, Path] | None = None,
    ) -> None:
        scheme, _, rest = target.partition("://")
        host, _, path = rest.partition("/")
        self.origin = f"{scheme}://{host}"  # requests keep their path, which includes the API's
        self.path = path.rstrip("/")
        self.mode = Mode.FORWARD
        self.requests = 0
        self.failed = 0
        expected = None
        if credentials is not None:
            expected = "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                proxy.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.mode is Mode.DROP:
                    proxy.failed += 1
                    self.close_connection = True
                    self.connection.close()
                    return
                if proxy.mode is Mode.NOT_FOUND_PAGE:  # a misrouted ingress: 404, not the registry's
                    proxy.failed += 1
                    page = b"<html><body>404 Not Found</body></html>"
                    self._relay(404, page, "text/html")
                    return
                if proxy.mode is Mode.SERVICE_UNAVAILABLE:
                    proxy.failed += 1
                    self._send(503, {"error_code": 50301, "message": "stand-in: service unavailable"})
                    return
                if expected is not None and self.headers.get("Authorization") != expected:
                    proxy.failed += 1
                    self._send(401, {"error_code": 401, "message": "stand-in: unauthorized"})
                    return
                request = urllib.request.Request(
                    proxy.origin + self.path,
                    data=body,
                    method=self.command,
                    headers={
                        k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept")
                    },
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        self._relay(answer.status, answer.read(), answer.headers.get("Content-Type"))
                except urllib.error.HTTPError as err:
                    self._relay(err.code, err.read(), err.headers.get("Content-Type"))

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def _send(self, status: int, body: Any) -> None:
                self._relay(status, json.dumps(body).encode(), "application/json")

            def _relay(self, status: int, data: bytes, content_type: str | None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type or "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.scheme = "http"
        if certificate is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(certificate[0]), str(certificate[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The client URL through the proxy: the same path as the real registry's."""
        port = self._server.server_address[1]
        return f"{self.scheme}://127.0.0.1:{port}/{self.path}"

    def __enter__(self) -> FailingRegistryProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
