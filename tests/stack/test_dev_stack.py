"""`dunwell dev` starts every component for real and Ctrl-C leaves no process behind."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from activities.outbound_http import event_body, signature
from billing.outbound import EVENT_TYPES
from dunwell.codec import EncryptionCodec, PayloadKeys
from dunwell.settings import PLACEHOLDER_API_KEY, PLACEHOLDER_OPS_API_KEY, Settings

DUNWELL = str(Path(sys.executable).parent / "dunwell")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purpose once reaped or defunct.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    names = ("temporal", "ui", "stripe", "sim", "smtp", "api", "demo")
    ports = {name: free_port() for name in names}
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUNWELL_")}
    env.update(
        DUNWELL_ENV="dev",
        DUNWELL_STATE_DIR=str(tmp_path / "state"),
        DUNWELL_DATABASE_URL=f"sqlite+pysqlite:///{tmp_path}/state/dunwell.db",
        DUNWELL_TEMPORAL_ADDRESS=f"127.0.0.1:{ports['temporal']}",
        DUNWELL_TEMPORAL_UI_PORT=str(ports["ui"]),
        DUNWELL_STRIPE_API_BASE=f"http://127.0.0.1:{ports['stripe']}",
        DUNWELL_SETTLEMENT_API_BASE=f"http://127.0.0.1:{ports['sim']}",
        DUNWELL_SMTP_PORT=str(ports["smtp"]),
        DUNWELL_API_PORT=str(ports["api"]),
        DUNWELL_DEMO_RECEIVER_PORT=str(ports["demo"]),
        DUNWELL_PUBLIC_BASE_URL=f"http://127.0.0.1:{ports['api']}",
    )
    return env


@pytest.fixture
def running_stack(
    stack_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    proc = subprocess.Popen(
        [DUNWELL, "dev"],
        env=stack_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        lines.append(line.rstrip())
        if "stack is up" in line or time.monotonic() > deadline:
            break
    try:
        assert any("stack is up" in line for line in lines), "\n".join(lines)
        yield proc, lines
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_dev_stack_starts_everything_and_stops_cleanly(
    running_stack: tuple[subprocess.Popen[str], list[str]],
    stack_env: dict[str, str],
    tmp_path: Path,
) -> None:
    proc, lines = running_stack
    output = "\n".join(lines)
    pids = [int(p) for p in re.findall(r"started \S+\s+pid (\d+)", output)]
    assert len(pids) == 7, output
    for label in (
        "Temporal UI",
        "API docs",
        "localstripe API",
        "Settlement simulator",
        "SMTP sink",
        "Demo receiver log",
        "Database",
    ):
        assert label in output

    api = stack_env["DUNWELL_PUBLIC_BASE_URL"]
    ui_port = stack_env["DUNWELL_TEMPORAL_UI_PORT"]
    # Both development keys are printed, and each opens what its role may.
    assert f"Server API key       {PLACEHOLDER_API_KEY}  (key id server)" in output
    assert f"Ops API key          {PLACEHOLDER_OPS_API_KEY}  (key id ops)" in output
    ops_auth = {"Authorization": f"Bearer {PLACEHOLDER_OPS_API_KEY}"}
    audit = httpx.get(f"{api}/v1/ops/audit", headers=ops_auth, timeout=10)
    assert audit.status_code == 200, audit.text
    server_auth = {"Authorization": f"Bearer {PLACEHOLDER_API_KEY}"}
    refused = httpx.get(f"{api}/v1/ops/audit", headers=server_auth, timeout=10)
    assert refused.status_code == 403
    assert httpx.get(f"http://127.0.0.1:{ui_port}/", timeout=10).status_code == 200
    assert httpx.get(f"{api}/healthz", timeout=10).json() == {"status": "ok"}
    ready = httpx.get(f"{api}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    stripe = stack_env["DUNWELL_STRIPE_API_BASE"]
    assert httpx.get(f"{stripe}/js.stripe.com/v3/", timeout=10).status_code == 200
    sim = stack_env["DUNWELL_SETTLEMENT_API_BASE"]
    assert httpx.get(f"{sim}/v1/balance", timeout=10).json()["object"] == "balance"

    # Payloads are sealed with the dev key, and the UI decodes them through the API.
    keys = PayloadKeys.parse((tmp_path / "state" / "payload-keys").read_text())
    assert "workflow payloads encrypted" in output
    ui_settings = httpx.get(f"http://127.0.0.1:{ui_port}/api/v1/settings", timeout=10).json()
    assert ui_settings["Codec"]["Endpoint"] == f"{api}/codec"
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'"hello codec"')
    (sealed,) = asyncio.run(EncryptionCodec(keys).encode([plain]))
    decoded = httpx.post(
        f"{api}/codec/decode",
        content=json_format.MessageToJson(Payloads(payloads=[sealed])),
        headers={"Origin": f"http://127.0.0.1:{ui_port}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert decoded.status_code == 200, decoded.text
    assert list(json_format.Parse(decoded.text, Payloads()).payloads) == [plain]

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.test", "b@example.test", "hello sink"
    msg.set_content("body")
    with smtplib.SMTP("127.0.0.1", int(stack_env["DUNWELL_SMTP_PORT"]), timeout=10) as smtp:
        smtp.send_message(msg)
    assert "hello sink" in httpx.get(f"{api}/dev/mail", timeout=10).text

    # The demo receiver's endpoint takes every event type; the receiver verifies with
    # the secret the stack saved for it, and logs what it verified.
    endpoints = httpx.get(
        f"{api}/v1/webhook-endpoints",
        headers={"Authorization": f"Bearer {Settings(env='dev').api_key.get_secret_value()}"},
        timeout=10,
    ).json()["items"]
    demo_url = f"http://127.0.0.1:{stack_env['DUNWELL_DEMO_RECEIVER_PORT']}/events"
    (demo,) = [e for e in endpoints if e["url"] == demo_url]
    assert set(demo["event_types"]) == set(EVENT_TYPES)
    secret = (tmp_path / "state" / "demo-receiver.secret").read_text().strip()
    at = datetime.now(UTC).replace(microsecond=0)
    body = event_body("evt_stack", "access.granted", at, {"object": {"id": "sub_stack"}})
    posted = httpx.post(
        demo_url,
        content=body,
        headers={
            "webhook-id": "evt_stack",
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature([secret], "evt_stack", at, body),
        },
        timeout=10,
    )
    assert posted.status_code == 200, posted.text
    receiver_log = tmp_path / "state" / "logs" / "demo-receiver.log"
    assert "verified access.granted evt_stack" in receiver_log.read_text()

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in pids if alive(pid)], "orphan processes left behind"


def test_dev_stack_refuses_a_taken_port(stack_env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", int(stack_env["DUNWELL_API_PORT"])))
        busy.listen()
        result = subprocess.run(
            [DUNWELL, "dev"],
            env=stack_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "ports already in use" in result.stderr and "api" in result.stderr
