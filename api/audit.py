"""The audit trail a route writes to: who (the key's id), the request's id, the time.

``OpsAudit`` is the ops guard (``api.deps.require_ops_key``) plus the trail; the
portal-session mint takes ``ServerAudit``. Two ways to write (``stores.audit`` holds
the rows):

- ``record(conn, ...)``: a change that is a database write records its row on the
  change's own connection, so both commit or neither does;
- ``outcome(...)``: an action that goes to a workflow (a Temporal update or start) is
  recorded once the workflow answered, with its outcome: ``done`` and the state after,
  or the refusal's code. A request refused before it reached anything (a bad key, a
  malformed body) writes no row.

A caller may send ``X-Request-Id`` (a proxy's or its own); it is kept on the row.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header
from sqlalchemy import Connection, Engine

from api.deps import EngineDep, require_ops_key, require_server_key
from api.errors import ApiError
from dunwell.api_keys import Principal
from stores import audit

T = TypeVar("T")

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


class AuditTrail:
    def __init__(self, engine: Engine, principal: Principal, request_id: str | None) -> None:
        self.engine = engine
        self.actor = principal.key_id
        self.request_id = request_id

    def entry(
        self,
        action: str,
        target: str,
        *,
        outcome: str = "done",
        before: Any = None,
        after: Any = None,
    ) -> audit.AuditEntry:
        return audit.AuditEntry(
            actor=self.actor,
            action=action,
            target=target,
            outcome=outcome,
            before=before,
            after=after,
            request_id=self.request_id,
        )

    def record(
        self, conn: Connection, action: str, target: str, *, before: Any = None, after: Any = None
    ) -> None:
        """Append a ``done`` row on ``conn``, inside the caller's transaction."""
        audit.record(
            conn, self.entry(action, target, before=before, after=after), at=datetime.now(UTC)
        )

    async def append(self, entry: audit.AuditEntry) -> None:
        """Append ``entry`` in a transaction of its own."""

        def write() -> None:
            with self.engine.begin() as conn:
                audit.record(conn, entry, at=datetime.now(UTC))

        await asyncio.to_thread(write)

    async def outcome(
        self,
        action: str,
        target: str,
        work: Awaitable[T],
        *,
        after: Callable[[T], Any],
        request: Any = None,
    ) -> T:
        """Await ``work`` (a workflow's answer) and record how it ended: ``after`` of
        its result, or the refusal's code with what was asked (``request``)."""
        try:
            result = await work
        except ApiError as err:
            refused = None if request is None else {"request": request}
            await self.append(self.entry(action, target, outcome=err.code, after=refused))
            raise
        await self.append(self.entry(action, target, after=after(result)))
        return result


async def _request_id(
    request_id: Annotated[
        str | None,
        Header(
            alias="X-Request-Id",
            description="Kept on the audit row this request writes",
            # Stated for clients; checked below, so that a bad one keeps its own code.
            json_schema_extra={"pattern": REQUEST_ID.pattern},
        ),
    ] = None,
) -> str | None:
    if request_id is not None and not REQUEST_ID.match(request_id):
        raise ApiError(
            400,
            "invalid_request_id",
            "X-Request-Id is 1 to 128 letters, digits or . _ : / + = -",
        )
    return request_id


async def _ops_audit(
    engine: EngineDep,
    principal: Annotated[Principal, Depends(require_ops_key)],
    request_id: Annotated[str | None, Depends(_request_id)],
) -> AuditTrail:
    return AuditTrail(engine, principal, request_id)


async def _server_audit(
    engine: EngineDep,
    principal: Annotated[Principal, Depends(require_server_key)],
    request_id: Annotated[str | None, Depends(_request_id)],
) -> AuditTrail:
    return AuditTrail(engine, principal, request_id)


OpsAudit = Annotated[AuditTrail, Depends(_ops_audit)]
ServerAudit = Annotated[AuditTrail, Depends(_server_audit)]
