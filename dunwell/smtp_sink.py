"""A local SMTP sink for development and tests: every message is kept as an .eml file.

Production uses a real SMTP relay; nothing here is used there. Reading the caught messages
(the dev mail view) needs nothing more; serving needs ``aiosmtpd``, from the ``local`` extra,
so it is imported only when a sink starts.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dunwell.local_stack import require_local_stack


class FolderHandler:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._counter = itertools.count(len(list(directory.glob("*.eml"))) + 1)
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            n = next(self._counter)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        (self.directory / f"{stamp}-{n:06d}.eml").write_bytes(envelope.content)
        return "250 Message accepted for delivery"


class SmtpSink:
    """An SMTP server on host:port writing each message into a folder."""

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 8025) -> None:
        self.directory = directory
        self.host = host
        self.port = port
        require_local_stack("aiosmtpd")
        from aiosmtpd.controller import Controller

        self._controller = Controller(FolderHandler(directory), hostname=host, port=port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


@dataclass(frozen=True)
class StoredMessage:
    file: str
    sender: str
    to: str
    subject: str
    date: str
    body: str


def read_messages(directory: Path) -> list[StoredMessage]:
    """Messages in the sink's folder, oldest first."""
    messages: list[StoredMessage] = []
    if not directory.exists():
        return messages
    for path in sorted(directory.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        part = msg.get_body(preferencelist=("plain", "html"))
        body = part.get_content() if part is not None else ""
        messages.append(
            StoredMessage(
                file=path.name,
                sender=str(msg.get("From", "")),
                to=str(msg.get("To", "")),
                subject=str(msg.get("Subject", "")),
                date=str(msg.get("Date", "")),
                body=str(body),
            )
        )
    return messages
