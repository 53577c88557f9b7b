"""A recorded-payload Stripe server that answers charges from a script, in order.

Each ``POST /v1/payment_intents`` takes the next scripted reply: a recorded decline from
``tests/fixtures/stripe/`` or a success echoing the requested amount. A reply can be
gated: the server holds the HTTP response until the test opens the gate, so a charge
activity is provably in flight. An unscripted charge is answered with a 500 and counted,
so a test sees any charge it did not expect. ``GET /v1/payment_intents?customer=…``
lists the intents that succeeded for that customer, as Stripe would (a charge looks for
a payment of its invoice the gateway already holds before it charges).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.gateway.recorded import ReceivedRequest, load_recording

CHARGE_PATH = "/v1/payment_intents"


@dataclass
class _Reply:
    recording: str | None  # None: success
    gate: threading.Event | None = None


@dataclass
class ScriptedStripe:
    url: str = ""
    charges: list[ReceivedRequest] = field(default_factory=list)
    unscripted: int = 0
    succeeded: list[dict[str, Any]] = field(default_factory=list)
    _script: deque[_Reply] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closing: threading.Event = field(default_factory=threading.Event)

    def decline(self, recording: str, *, gate: threading.Event | None = None) -> None:
        with self._lock:
            self._script.append(_Reply(recording, gate))

    def succeed(self, *, gate: threading.Event | None = None) -> None:
        with self._lock:
            self._script.append(_Reply(None, gate))

    @property
    def keys(self) -> list[str]:
        with self._lock:
            return [c.headers.get("Idempotency-Key", "") for c in self.charges]

    def charge_count(self) -> int:
        with self._lock:
            return len(self.charges)

    def wait_for_charges(self, n: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while self.charge_count() < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {n} charges, saw {self.charge_count()}")
            time.sleep(0.02)

    def _answer(self, form: dict[str, str]) -> tuple[int, Any, threading.Event | None]:
        with self._lock:
            reply = self._script.popleft() if self._script else None
            if reply is None:
                self.unscripted += 1
        if reply is None:
            return 500, {"error": {"type": "api_error", "message": "unscripted charge"}}, None
        if reply.recording is not None:
            payload = load_recording(reply.recording)
            return payload["http_status"], payload["body"], reply.gate
        paid = _succeeded(form)
        with self._lock:
            self.succeeded.append(paid)
        return 200, paid, reply.gate

    def listing(self, customer: str | None) -> dict[str, Any]:
        with self._lock:
            found = [p for p in reversed(self.succeeded) if p["customer"] == customer]
        return {"object": "list", "data": found, "has_more": False, "url": CHARGE_PATH}


def _succeeded(form: dict[str, str]) -> dict[str, Any]:
    invoice = form.get("metadata[invoice_id]", "x")
    attempt = form.get("metadata[dunning_attempt]", "0")
    return {
        "id": f"pi_scripted_{invoice}_{attempt}",
        "object": "payment_intent",
        "amount": int(form["amount"]),
        "currency": form["currency"],
        "customer": form.get("customer"),
        "payment_method": form.get("payment_method"),
        "status": "succeeded",
        "latest_charge": "ch_scripted",
        "last_payment_error": None,
        "client_secret": "pi_scripted_secret",
        "metadata": {
            key[len("metadata[") : -1]: value
            for key, value in form.items()
            if key.startswith("metadata[") and key.endswith("]")
        },
        "livemode": False,
        "created": 1767225600,
    }


def _handler(state: ScriptedStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            path = urllib.parse.urlsplit(self.path).path
            request = ReceivedRequest(self.command, path, dict(self.headers.items()), body)
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
            if (self.command, path) == ("GET", CHARGE_PATH):
                status, payload, gate = 200, state.listing(query.get("customer")), None
            elif (self.command, path) != ("POST", CHARGE_PATH):
                status, payload, gate = 404, {"error": {"type": "invalid_request_error"}}, None
            else:
                with state._lock:
                    state.charges.append(request)
                status, payload, gate = state._answer(request.form)
            if gate is not None:
                while not gate.wait(0.05):
                    if state._closing.is_set():
                        return
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", "req_scripted")
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class ScriptedStripeServer:
    def __init__(self) -> None:
        self.state = ScriptedStripe()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self._server.daemon_threads = True
        self.state.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> ScriptedStripe:
        self._thread.start()
        return self.state

    def __exit__(self, *exc: object) -> None:
        self.state._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
