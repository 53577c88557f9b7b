"""The settlement simulator as a test peer: started beside a localstripe, driven by its
control endpoints, its webhook events caught by a small receiver."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.localstripe import _stop, free_port

WEBHOOK_SECRET = "whsec_settlement_sim_test"


def call(base_url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{base_url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def _answers(base_url: str) -> bool:
    try:
        call(base_url, "GET", "/_sim/health")
        return True
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running_settlement_sim(
    localstripe: str | None,
    *,
    webhook_url: str | None = None,
    config: dict[str, Any] | None = None,
) -> Iterator[str]:
    """Yield the base URL of a simulator with its loop off (tests tick it)."""
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile() as log:
        config_path = Path(tmp) / "sim.json"
        config_path.write_text(json.dumps(config or {}))
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        argv = [
            sys.executable, "-m", "dunwell.settlement_sim", "--port", str(port),
            "--localstripe", localstripe or "", "--tick-seconds", "0",
            "--webhook-secret", WEBHOOK_SECRET, "--config", str(config_path),
        ]  # fmt: skip
        if webhook_url:
            argv += ["--webhook-url", webhook_url]
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 20
            while proc.poll() is None and time.monotonic() < deadline and not _answers(base_url):
                time.sleep(0.05)
            if proc.poll() is not None or not _answers(base_url):
                log.seek(0)
                raise RuntimeError(f"settlement simulator did not start:\n{log.read()[-2000:]!r}")
            yield base_url
        finally:
            _stop(proc)


class Caught:
    """Webhook deliveries a receiver caught: (raw body, Stripe-Signature header)."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[bytes, str]] = []
        self.lock = threading.Lock()

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(body) for body, _ in self.deliveries]


@contextlib.contextmanager
def webhook_receiver() -> Iterator[tuple[str, Caught]]:
    caught = Caught()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with caught.lock:
                caught.deliveries.append((body, self.headers.get("Stripe-Signature", "")))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/webhooks/stripe", caught
    finally:
        server.shutdown()
        server.server_close()
