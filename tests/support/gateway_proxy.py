"""A switchable proxy in front of localstripe: the gateway as an outage shows it.

``mode`` decides how each request is answered:

    pass          forwarded to localstripe, its answer relayed as it came
    unauthorized  401 with Stripe's error object, as when the API key is refused
    disconnect    the connection is closed without an answer (an outage)

The proxy counts what it refused, so a test can tell that the gateway really was
unavailable while the workflow retried.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Mode = Literal["pass", "unauthorized", "disconnect"]

_FORWARDED_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "Stripe-Version")
_UNAUTHORIZED = {
    "error": {
        "message": "Invalid API Key provided: sk_test_********************oked",
        "type": "invalid_request_error",
    }
}


class GatewayProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.mode: Mode = "pass"
        self.refused: Counter[str] = Counter()  # "METHOD /path" -> requests not forwarded
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> GatewayProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def refused_count(self, method: str, path_prefix: str) -> int:
        with self._lock:
            return sum(
                n for key, n in self.refused.items() if key.startswith(f"{method} {path_prefix}")
            )

    def _refuse(self, method: str, path: str) -> None:
        with self._lock:
            self.refused[f"{method} {path.split('?', 1)[0]}"] += 1


def _handler(proxy: GatewayProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            mode = proxy.mode
            if mode == "disconnect":
                proxy._refuse(self.command, self.path)
                self.close_connection = True
                return
            if mode == "unauthorized":
                proxy._refuse(self.command, self.path)
                self._answer(401, json.dumps(_UNAUTHORIZED).encode(), {})
                return
            request = urllib.request.Request(
                proxy.upstream + self.path,
                data=body,
                method=self.command,
                headers={k: v for k in _FORWARDED_HEADERS if (v := self.headers.get(k))},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    self._answer(response.status, response.read(), dict(response.headers))
            except urllib.error.HTTPError as err:
                self._answer(err.code, err.read(), dict(err.headers))

        def _answer(self, status: int, payload: bytes, headers: dict[str, Any]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name in ("Idempotent-Replayed", "Request-Id", "Stripe-Should-Retry"):
                if name in headers:
                    self.send_header(name, headers[name])
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
