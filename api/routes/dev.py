"""Development-only views (mounted when DUNWELL_ENV=dev)."""

from __future__ import annotations

import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api.deps import SettingsDep
from dunwell.smtp_sink import read_messages

router = APIRouter(prefix="/dev", tags=["dev"], include_in_schema=False)


@router.get("/mail", response_class=HTMLResponse)
async def mail(settings: SettingsDep) -> HTMLResponse:
    """Messages caught by the local SMTP sink, newest first."""
    rows = []
    for m in reversed(read_messages(settings.state_dir / "mail")):
        rows.append(
            f"<article><h3>{html.escape(m.subject)}</h3><p><b>To:</b> {html.escape(m.to)} &middot; <b>Date:</b> {html.escape(m.date)}</p>"
            f"<pre>{html.escape(m.body)}</pre></article>"
        )
    body = "".join(rows) or "<p>No messages yet.</p>"
    return HTMLResponse(f"<!doctype html><title>Dunwell mail sink</title><h1>Mail sink</h1>{body}")
