"""Encryption of Temporal payloads: AES-256-GCM, with key ids for rotation.

Workflow inputs, results, signals, updates and activity results pass through this
codec before they reach the Temporal server, so its history holds ciphertext: customer
names and addresses in a subscription's input, invoice lines, gateway ids. Each encrypted
payload names the key that sealed it (``encryption-key-id``); the first configured key
seals, every configured key opens, so a key is rotated by putting a new one first and
dropping the old one once no open history needs it. Payloads that were never encrypted
(histories written before encryption was turned on) pass through unchanged.

Keys come from ``DUNWELL_PAYLOAD_KEYS`` as ``id:base64key[,id:base64key…]`` (32-byte keys).
``dunwell dev`` makes one under the state directory when none is set, and serves the
codec endpoint the Temporal UI uses to show decoded payloads (``api.routes.codec``).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEY_BYTES = 32
NONCE_BYTES = 12
DEV_KEY_FILE = "payload-keys"
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class PayloadKeyError(ValueError):
    """The configured payload keys cannot be used."""


class PayloadDecryptionError(ValueError):
    """An encrypted payload names a key this process does not hold, or was altered."""


@dataclass(frozen=True)
class PayloadKeys:
    """Keys by id; ``active`` seals new payloads."""

    active: str
    keys: dict[str, bytes]

    @classmethod
    def parse(cls, text: str) -> PayloadKeys:
        entries = [entry.strip() for entry in text.split(",") if entry.strip()]
        if not entries:
            raise PayloadKeyError("DUNWELL_PAYLOAD_KEYS holds no key")
        keys: dict[str, bytes] = {}
        for entry in entries:
            key_id, sep, encoded = entry.partition(":")
            if not sep or not _KEY_ID.match(key_id):
                raise PayloadKeyError(
                    "DUNWELL_PAYLOAD_KEYS entries are id:base64key with an id of letters, "
                    "digits, '.', '_' or '-'"
                )
            try:
                padded = encoded + "=" * (-len(encoded) % 4)
                key = base64.b64decode(padded, altchars=b"-_", validate=True)
            except (binascii.Error, ValueError):
                raise PayloadKeyError(f"payload key {key_id!r} is not base64") from None
            if len(key) != KEY_BYTES:
                raise PayloadKeyError(
                    f"payload key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}"
                )
            if key_id in keys:
                raise PayloadKeyError(f"payload key id {key_id!r} appears twice")
            keys[key_id] = key
        return cls(active=entries[0].partition(":")[0], keys=keys)

    @staticmethod
    def generate(key_id: str) -> str:
        """A new ``id:base64key`` entry."""
        key = base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode().rstrip("=")
        return f"{key_id}:{key}"


def ensure_dev_keys(state_dir: Path) -> Path:
    """The dev stack's key file, made (readable by its owner only) on first use."""
    path = state_dir / DEV_KEY_FILE
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(PayloadKeys.generate("dev1") + "\n")
    return path


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: PayloadKeys) -> None:
        self._keys = keys
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self._keys.active
        nonce = os.urandom(NONCE_BYTES)
        # The key id is authenticated too: a payload cannot be relabelled to another key.
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before encryption was on
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadDecryptionError(
                f"payload sealed with key {key_id!r}, which is not in DUNWELL_PAYLOAD_KEYS"
            )
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, key_id.encode())
        except InvalidTag:
            raise PayloadDecryptionError(
                f"payload sealed with key {key_id!r} failed authentication"
            ) from None
        return Payload.FromString(plain)
