"""Searching a workflow's recorded history for text that must never be there."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from temporalio.client import WorkflowHandle


def _decoded_texts(node: Any) -> list[str]:
    """Every payload's data in the history, decoded from base64, plus the rest as JSON."""
    found: list[str] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "data" and isinstance(value, str):
                    try:
                        found.append(base64.b64decode(value).decode("utf-8", "replace"))
                    except binascii.Error:
                        found.append(value)
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            found.append(item)
    return found


async def history_mentions(handle: WorkflowHandle[Any, Any], text: str) -> list[str]:
    """The decoded pieces of the workflow's history that contain ``text``."""
    history = await handle.fetch_history()
    document = json.loads(history.to_json())
    return [piece for piece in _decoded_texts(document) if text in piece]
