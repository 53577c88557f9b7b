"""``dunwell audit``: the audit log, oldest first, filtered (database only).

Reads what the API wrote (``stores.audit``): who (an API key's id) did what to what,
with the outcome. ``--after`` continues a page; ``--json`` prints the ops API's shape.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer

from api.routes.audit_ops import audit_entry_out
from dunwell.settings import get_settings
from ledger.db import make_engine
from ledger.unit_of_work import read
from stores import audit


def _utc(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=option) from None
    if parsed.tzinfo is None:
        raise typer.BadParameter("give the offset, e.g. 2026-12-01T00:00:00Z", param_hint=option)
    return parsed


def audit_command(
    actor: Annotated[str | None, typer.Option(help="Only this API key's id")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. dunning.end")] = None,
    target: Annotated[str | None, typer.Option(help="Only this target, e.g. invoice:in_1")] = None,
    since: Annotated[str | None, typer.Option(help="At or after (ISO 8601 with offset)")] = None,
    until: Annotated[str | None, typer.Option(help="Before (ISO 8601 with offset)")] = None,
    after: Annotated[int, typer.Option(min=0, help="Continue after this entry's id")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=audit.MAX_PAGE)] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Who did what to what: every ops action and portal-session mint, oldest first."""
    start, end = _utc(since, "--since"), _utc(until, "--until")
    engine = make_engine(get_settings().database_url)
    try:
        rows = read(
            engine,
            lambda c: audit.list_entries(
                c,
                actor=actor,
                action=action,
                target=target,
                since=start,
                until=end,
                after_id=after,
                limit=limit,
            ),
        )
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps([audit_entry_out(r).model_dump(mode="json") for r in rows], indent=2))
        return
    for r in rows:
        typer.echo(
            f"{r.id:>6}  {r.at.isoformat()}  {r.actor:<16} {r.action:<28} {r.target}  "
            f"{r.outcome}" + (f"  request {r.request_id}" if r.request_id else "")
        )
    if not rows:
        typer.echo("(no audit entries)")
