"""Payload encryption: the codec itself, its keys, and a real Temporal history sealed by it."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from dunwell import temporal
from dunwell.codec import (
    ENCODING,
    KEY_ID_METADATA,
    EncryptionCodec,
    PayloadDecryptionError,
    PayloadKeyError,
    PayloadKeys,
    ensure_dev_keys,
)
from dunwell.converter import data_converter
from dunwell.settings import Environment, Settings

OLD = PayloadKeys.generate("old")
NEW = PayloadKeys.generate("new")
PERSONAL = "Ada Lovelace, Invalidenstr. 1"


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


async def test_a_payload_round_trips_and_its_ciphertext_hides_the_text() -> None:
    codec = EncryptionCodec(PayloadKeys.parse(NEW))
    (sealed,) = await codec.encode([plain(PERSONAL)])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID_METADATA] == b"new"
    assert PERSONAL.encode() not in sealed.data and b"Lovelace" not in sealed.SerializeToString()
    (opened,) = await codec.decode([sealed])
    assert opened == plain(PERSONAL)
    (again,) = await codec.encode([plain(PERSONAL)])
    assert again.data != sealed.data, "a fresh nonce every time"


async def test_rotation_seals_with_the_first_key_and_opens_with_any() -> None:
    before = EncryptionCodec(PayloadKeys.parse(OLD))
    (sealed_before,) = await before.encode([plain("before")])
    rotated = EncryptionCodec(PayloadKeys.parse(f"{NEW},{OLD}"))
    (sealed_after,) = await rotated.encode([plain("after")])
    assert sealed_after.metadata[KEY_ID_METADATA] == b"new"
    assert await rotated.decode([sealed_before, sealed_after]) == [plain("before"), plain("after")]
    with pytest.raises(PayloadDecryptionError, match=r"'new'.*not in DUNWELL_PAYLOAD_KEYS"):
        await before.decode([sealed_after])


async def test_an_altered_or_relabelled_payload_is_refused() -> None:
    codec = EncryptionCodec(PayloadKeys.parse(f"{NEW},{OLD}"))
    (sealed,) = await codec.encode([plain("amount 2900")])
    flipped = bytearray(sealed.data)
    flipped[-1] ^= 1
    altered = Payload(metadata=dict(sealed.metadata), data=bytes(flipped))
    with pytest.raises(PayloadDecryptionError, match="failed authentication"):
        await codec.decode([altered])
    relabelled = Payload(metadata={**sealed.metadata, KEY_ID_METADATA: b"old"}, data=sealed.data)
    with pytest.raises(PayloadDecryptionError, match="failed authentication"):
        await codec.decode([relabelled])


async def test_payloads_written_before_encryption_pass_through() -> None:
    codec = EncryptionCodec(PayloadKeys.parse(NEW))
    assert await codec.decode([plain("old history")]) == [plain("old history")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no key"),
        ("nokey", "id:base64key"),
        ("bad id:" + NEW.partition(":")[2], "id:base64key"),
        ("k1:%%%", "not base64"),
        ("k1:" + base64.urlsafe_b64encode(b"short").decode(), "is 5 bytes; AES-256 needs 32"),
        (f"{NEW},{NEW}", "appears twice"),
    ],
)
def test_unusable_keys_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(PayloadKeyError, match=message):
        PayloadKeys.parse(text)
    if text:  # an empty setting means "not set"
        with pytest.raises(ValidationError, match=message):
            Settings(env=Environment.TEST, payload_keys=text)


def test_dev_makes_its_key_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = ensure_dev_keys(tmp_path / "state")
    first = path.read_text()
    assert ensure_dev_keys(tmp_path / "state").read_text() == first
    assert path.stat().st_mode & 0o777 == 0o600
    settings = Settings(env=Environment.DEV, state_dir=tmp_path / "state")
    keys = settings.payload_key_set()
    assert keys is not None and keys.active == "dev1"
    # The dev key file is a dev convenience only: test and production never read it.
    assert Settings(env=Environment.TEST, state_dir=tmp_path / "state").payload_key_set() is None


@workflow.defn(name="CodecEcho")
class CodecEcho:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(
            "codec_echo_upper", text, start_to_close_timeout=timedelta(seconds=10)
        )


async def test_a_real_history_holds_only_ciphertext(temporal_dev_env: WorkflowEnvironment) -> None:
    from temporalio import activity

    @activity.defn(name="codec_echo_upper")
    async def upper(text: str) -> str:
        return text.upper()

    address = temporal_dev_env.client.service_client.config.target_host
    settings = Settings(env=Environment.TEST, temporal_address=address, payload_keys=NEW)
    client = await temporal.connect(settings)
    queue = f"codec-{uuid.uuid4().hex}"
    handle_id = f"codec-{uuid.uuid4().hex}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[CodecEcho],
        activities=[upper],
        workflow_runner=UnsandboxedWorkflowRunner(),  # plumbing only; no Dunwell workflow
    ):
        result = await client.execute_workflow(
            CodecEcho.run, PERSONAL, id=handle_id, task_queue=queue
        )
    assert result == PERSONAL.upper()

    # Read without the key, as the Temporal server and its UI see it.
    bare = await Client.connect(address, data_converter=data_converter)
    history = await bare.get_workflow_handle(handle_id).fetch_history()
    text = history.to_json()
    assert "Lovelace" not in text and "LOVELACE" not in text
    encodings = {
        base64.b64decode(value) for value in _metadata_values(json.loads(text), "encoding")
    }
    assert encodings == {ENCODING}
    # With the key, the same history reads back.
    decoded = await client.get_workflow_handle(handle_id).result()
    assert decoded == PERSONAL.upper()


def _metadata_values(node: object, name: str) -> list[str]:
    found: list[str] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            metadata = item.get("metadata")
            if isinstance(metadata, dict) and isinstance(metadata.get(name), str):
                found.append(metadata[name])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found
