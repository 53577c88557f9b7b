"""A local HTTP server that answers the real Stripe SDK with recorded Stripe payloads.

For cases no peer can produce (issuer decline codes, network advice codes, 5xx, timeouts),
tests queue a recorded response from ``tests/fixtures/stripe/`` for a method and path;
the server also keeps every request it received, so a test can check what was sent.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "stripe"


def load_recording(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: str

    @property
    def form(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.body, keep_blank_values=True))


@dataclass
class _Reply:
    status: int
    body: Any
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RecordedStripe:
    url: str = ""
    received: list[ReceivedRequest] = field(default_factory=list)
    _replies: dict[tuple[str, str], deque[_Reply]] = field(
        default_factory=lambda: defaultdict(deque)
    )
    _released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reply(self, method: str, path: str, recording: str, *, delay: float = 0.0) -> None:
        """Answer the next ``method path`` with the named recording."""
        payload = load_recording(recording)
        with self._lock:
            self._replies[(method, path)].append(
                _Reply(payload["http_status"], payload["body"], delay, payload.get("headers", {}))
            )

    def _next(self, method: str, path: str) -> _Reply:
        with self._lock:
            queue = self._replies.get((method, path))
            if queue:
                return queue.popleft()
        return _Reply(
            404,
            {"error": {"type": "invalid_request_error", "message": f"no recording: {path}"}},
        )


def _handler(state: RecordedStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            path = urllib.parse.urlsplit(self.path).path
            with state._lock:
                state.received.append(
                    ReceivedRequest(self.command, path, dict(self.headers.items()), body)
                )
            reply = state._next(self.command, path)
            if reply.delay and state._released.wait(reply.delay):
                return  # server shutting down
            payload = json.dumps(reply.body).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Request-Id", "req_recorded")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class RecordedStripeServer:
    def __init__(self) -> None:
        self.state = RecordedStripe()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self._server.daemon_threads = True
        self.state.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> RecordedStripe:
        self._thread.start()
        return self.state

    def __exit__(self, *exc: object) -> None:
        self.state._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
