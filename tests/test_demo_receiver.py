"""The demo receiver verifies every delivery with the secrets in its file (read on each
request, so a rotation needs no restart), logs each event once and refuses the rest."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from starlette.testclient import TestClient

from activities.outbound_http import event_body, signature
from dunwell.demo_receiver import PATH, create_app
from ledger.outbound.endpoints import new_secret


def signed(secrets: list[str], event_id: str) -> tuple[bytes, dict[str, str]]:
    at = datetime.now(UTC).replace(microsecond=0)
    data = {"object": {"id": "sub_1", "status": "active", "has_access": True}}
    body = event_body(event_id, "access.granted", at, data)
    return body, {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature(secrets, event_id, at, body),
    }


def test_verifies_logs_once_and_refuses_a_bad_signature(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    first, second = new_secret(), new_secret()
    secret_file.write_text(first + "\n")
    lines: list[str] = []
    client = TestClient(create_app(secret_file, out=lines.append))

    body, headers = signed([first], "evt_1")
    assert client.post(PATH, content=body, headers=headers).status_code == 200
    assert client.post(PATH, content=body, headers=headers).status_code == 200
    assert "verified access.granted evt_1 id=sub_1 status=active access=yes" in lines[0]
    assert "duplicate evt_1 dropped" in lines[1]

    body, headers = signed([second], "evt_2")
    assert client.post(PATH, content=body, headers=headers).status_code == 400
    assert "refused" in lines[2]
    secret_file.write_text(f"{second}\n")  # rotated: no restart needed
    assert client.post(PATH, content=body, headers=headers).status_code == 200
    tampered = body.replace(b"active", b"paused")
    assert client.post(PATH, content=tampered, headers=headers).status_code == 400
    assert [line.split(" ", 1)[1].split(" ")[0] for line in lines] == [
        "verified",
        "duplicate",
        "refused:",
        "verified",
        "refused:",
    ]
