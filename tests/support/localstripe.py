"""localstripe as a test peer: start it on a free port, wait for it, stop it.

``running_localstripe()`` starts ``dunwell.fake_gateway`` (localstripe with Stripe's
idempotency and an in-memory store; see that module) as a subprocess.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

STARTUP_TIMEOUT_SECONDS = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reset(base_url: str) -> None:
    """Empty localstripe's store (and the saved idempotent responses)."""
    request = urllib.request.Request(f"{base_url}/_config/data", method="DELETE")
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


def register_webhook(base_url: str, webhook_id: str, url: str, secret: str) -> None:
    data = urllib.parse.urlencode({"url": url, "secret": secret}).encode()
    request = urllib.request.Request(
        f"{base_url}/_config/webhooks/{webhook_id}", data=data, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


def _answers(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/js.stripe.com/v3/", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@contextlib.contextmanager
def running_localstripe(
    *, startup_timeout: float = STARTUP_TIMEOUT_SECONDS, attempts: int = 3
) -> Iterator[str]:
    """Yield the base URL of a fresh localstripe; stop its process group on exit."""
    last_log = ""
    for _ in range(attempts):  # another process may take the free port before we bind it
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        with tempfile.TemporaryFile() as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dunwell.fake_gateway", "--port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                deadline = time.monotonic() + startup_timeout
                while proc.poll() is None and time.monotonic() < deadline:
                    if _answers(base_url):
                        break
                    time.sleep(0.05)
                if proc.poll() is None and _answers(base_url):
                    yield base_url
                    return
                log.seek(0)
                last_log = log.read().decode(errors="replace")[-2000:]
            finally:
                _stop(proc)
    raise RuntimeError(f"localstripe did not start:\n{last_log}")
