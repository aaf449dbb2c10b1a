"""A stand-in for a Confluent-API-compatible Schema Registry: just the endpoints the worker calls.

Used only when no real registry can run on the machine (see docs/testing.md). It implements
``GET /schemas/ids/{id}``, ``POST /subjects/{subject}/versions`` and ``GET /subjects``, keeping schemas in
memory with ids shared across subjects, as the real registry does.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class StandInRegistry:
    def __init__(self) -> None:
        self.by_id: dict[int, str] = {}
        self.ids: dict[str, int] = {}
        self.subjects: dict[str, list[int]] = {}
        self.requests: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                registry.requests.append(f"GET {self.path}")
                match = re.match(r"^/schemas/ids/(\d+)", self.path)
                if match:
                    schema_id = int(match.group(1))
                    if schema_id in registry.by_id:
                        self._send(200, {"schema": registry.by_id[schema_id]})
                    else:
                        self._send(404, {"error_code": 40403, "message": "Schema not found"})
                    return
                if self.path.startswith("/subjects"):
                    self._send(200, sorted(registry.subjects))
                    return
                self._send(404, {"error_code": 404, "message": "not found"})

            def do_POST(self) -> None:
                registry.requests.append(f"POST {self.path}")
                match = re.match(r"^/subjects/([^/]+)/versions", self.path)
                if not match:
                    self._send(404, {"error_code": 404, "message": "not found"})
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self._send(200, {"id": registry.register(match.group(1), body["schema"])})

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def register(self, subject: str, schema: str) -> int:
        canonical = json.dumps(json.loads(schema), sort_keys=True)
        if canonical not in self.ids:
            self.ids[canonical] = len(self.ids) + 1
            self.by_id[self.ids[canonical]] = schema
        schema_id = self.ids[canonical]
        versions = self.subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        return schema_id

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> StandInRegistry:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
