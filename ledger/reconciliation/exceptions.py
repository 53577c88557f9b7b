"""The reconciliation exceptions queue: opened by runs, worked by ops.

An exception is opened once per finding key (a rerun finds the same key and opens
nothing). Ops move it: ``acknowledge`` (open → acknowledged), then ``resolve`` (with
the id of the adjusting entry that corrected the ledger), ``write_off`` or ``ignore``
(from open or acknowledged). Each step is recorded in the append-only actions table
with who took it, when and why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from billing.reconciliation.model import ExceptionClass, Finding
from ledger.db import insert_or_ignore
from ledger.entries import require_aware_utc
from ledger.models import entries_table
from ledger.outbound import OutboxEvent, outbox
from ledger.reconciliation.errors import (
    ExceptionNotFound,
    ExceptionStateError,
    InvalidExceptionAction,
)
from ledger.reconciliation.tables import (
    reconciliation_exception_actions as _actions,
)
from ledger.reconciliation.tables import (
    reconciliation_exceptions as _x,
)
from ledger.unit_of_work import read, transact


class ExceptionStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    WRITTEN_OFF = "written_off"
    IGNORED = "ignored"


class ExceptionAction(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    WRITE_OFF = "write_off"
    IGNORE = "ignore"


_S = ExceptionStatus
_MOVES: dict[ExceptionAction, tuple[frozenset[ExceptionStatus], ExceptionStatus]] = {
    ExceptionAction.ACKNOWLEDGE: (frozenset({_S.OPEN}), _S.ACKNOWLEDGED),
    ExceptionAction.RESOLVE: (frozenset({_S.OPEN, _S.ACKNOWLEDGED}), _S.RESOLVED),
    ExceptionAction.WRITE_OFF: (frozenset({_S.OPEN, _S.ACKNOWLEDGED}), _S.WRITTEN_OFF),
    ExceptionAction.IGNORE: (frozenset({_S.OPEN, _S.ACKNOWLEDGED}), _S.IGNORED),
}
MAX_ACTOR_CHARS = 200
MAX_NOTE_CHARS = 2000
MAX_LIST = 500


@dataclass(frozen=True, slots=True)
class ActionView:
    action: str
    from_status: str | None
    to_status: str
    actor: str
    at: datetime
    note: str | None


@dataclass(frozen=True, slots=True)
class ExceptionView:
    id: int
    key: str
    cls: ExceptionClass
    status: ExceptionStatus
    payout_id: str | None
    gateway_ref: str | None
    currency: str | None
    amount: int | None
    evidence: dict[str, Any]
    opened_at: datetime
    opened_by: str
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    closed_at: datetime | None
    closed_by: str | None
    note: str | None
    adjusting_entry_id: int | None
    actions: tuple[ActionView, ...] = ()


def _text(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise InvalidExceptionAction(f"{what} must be 1..{limit} characters")
    return value


def open_findings(
    conn: Connection, findings: Sequence[Finding], *, actor: str, at: datetime
) -> int:
    """Open an exception per finding whose key is new; returns how many were opened."""
    if not findings:
        return 0
    at = require_aware_utc(at, "at")
    rows = {
        f.key: {
            "key": f.key,
            "class": f.cls.value,
            "status": _S.OPEN.value,
            "payout_id": f.payout_id,
            "gateway_ref": f.gateway_ref,
            "currency": f.currency,
            "amount": f.amount,
            "evidence": f.evidence,
            "opened_at": at,
            "opened_by": actor,
        }
        for f in findings
    }
    stmt = (
        insert_or_ignore(conn, _x).on_conflict_do_nothing(index_elements=["key"]).returning(_x.c.id)
    )
    new_ids = [int(row[0]) for row in conn.execute(stmt, [rows[k] for k in sorted(rows)])]
    if new_ids:
        conn.execute(
            insert(_actions),
            [
                {
                    "exception_id": id_,
                    "action": "open",
                    "from_status": None,
                    "to_status": _S.OPEN.value,
                    "actor": actor,
                    "at": at,
                    "note": None,
                }
                for id_ in new_ids
            ],
        )
        _emit_opened(conn, new_ids, at)
    return len(new_ids)


def _emit_opened(conn: Connection, ids: list[int], at: datetime) -> None:
    """``reconciliation.exception_opened`` for each new exception, in this transaction."""
    opened = conn.execute(select(_x).where(_x.c.id.in_(ids)).order_by(_x.c.id))
    outbox.record(
        conn,
        [
            OutboxEvent(
                key=f"reconciliation.exception_opened:{row.key}",
                type="reconciliation.exception_opened",
                occurred_at=at,
                data={
                    "id": int(row.id),
                    "key": row.key,
                    "class": row._mapping["class"],
                    "payout_id": row.payout_id,
                    "gateway_ref": row.gateway_ref,
                    "currency": row.currency,
                    "amount": None if row.amount is None else int(row.amount),
                },
            )
            for row in opened
        ],
        at=at,
    )


def _view(row: Any, actions: tuple[ActionView, ...] = ()) -> ExceptionView:
    return ExceptionView(
        id=int(row.id),
        key=row.key,
        cls=ExceptionClass(row._mapping["class"]),
        status=ExceptionStatus(row.status),
        payout_id=row.payout_id,
        gateway_ref=row.gateway_ref,
        currency=row.currency,
        amount=None if row.amount is None else int(row.amount),
        evidence=dict(row.evidence),
        opened_at=row.opened_at,
        opened_by=row.opened_by,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        closed_at=row.closed_at,
        closed_by=row.closed_by,
        note=row.note,
        adjusting_entry_id=None if row.adjusting_entry_id is None else int(row.adjusting_entry_id),
        actions=actions,
    )


def list_exceptions(
    conn: Connection,
    *,
    status: ExceptionStatus | None = None,
    cls: ExceptionClass | None = None,
    payout_id: str | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[ExceptionView]:
    if not 0 < limit <= MAX_LIST:
        raise InvalidExceptionAction(f"limit must be 1..{MAX_LIST}")
    stmt = select(_x).where(_x.c.id > after_id).order_by(_x.c.id).limit(limit)
    if status is not None:
        stmt = stmt.where(_x.c.status == status.value)
    if cls is not None:
        stmt = stmt.where(_x.c["class"] == cls.value)
    if payout_id is not None:
        stmt = stmt.where(_x.c.payout_id == payout_id)
    return [_view(row) for row in conn.execute(stmt)]


def get_exception(conn: Connection, exception_id: int, *, lock: bool = False) -> ExceptionView:
    stmt = select(_x).where(_x.c.id == exception_id)
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    if row is None:
        raise ExceptionNotFound(f"no reconciliation exception {exception_id}")
    actions = tuple(
        ActionView(a.action, a.from_status, a.to_status, a.actor, a.at, a.note)
        for a in conn.execute(
            select(_actions).where(_actions.c.exception_id == exception_id).order_by(_actions.c.id)
        )
    )
    return _view(row, actions)


def act(
    conn: Connection,
    exception_id: int,
    action: ExceptionAction | str,
    *,
    actor: str,
    at: datetime,
    note: str | None = None,
    adjusting_entry_id: int | None = None,
) -> ExceptionView:
    """Move the exception by ``action``; repeating the step that made its current
    status, with the same entry, is a no-op."""
    try:
        action = ExceptionAction(action)
    except ValueError:
        raise InvalidExceptionAction(
            f"unknown action {action!r}; one of {[a.value for a in ExceptionAction]}"
        ) from None
    actor = _text(actor, "actor", MAX_ACTOR_CHARS)
    if note is not None:
        note = _text(note, "note", MAX_NOTE_CHARS)
    at = require_aware_utc(at, "at")
    if action is ExceptionAction.RESOLVE:
        if type(adjusting_entry_id) is not int or adjusting_entry_id <= 0:
            raise InvalidExceptionAction("resolving needs the adjusting entry's id")
        found = conn.execute(
            select(entries_table.c.id).where(entries_table.c.id == adjusting_entry_id)
        ).first()
        if found is None:
            raise InvalidExceptionAction(f"adjusting entry {adjusting_entry_id} does not exist")
    elif adjusting_entry_id is not None:
        raise InvalidExceptionAction(f"only resolve takes an adjusting entry, not {action}")
    current = get_exception(conn, exception_id, lock=True)
    allowed, target = _MOVES[action]
    if current.status is target and current.adjusting_entry_id == adjusting_entry_id:
        return current
    if current.status not in allowed:
        raise ExceptionStateError(
            f"exception {exception_id} is {current.status}; cannot {action.value} it"
        )
    values: dict[str, Any] = {"status": target.value}
    if action is ExceptionAction.ACKNOWLEDGE:
        values.update(acknowledged_at=at, acknowledged_by=actor)
    else:
        values.update(
            closed_at=at, closed_by=actor, note=note, adjusting_entry_id=adjusting_entry_id
        )
    conn.execute(update(_x).where(_x.c.id == exception_id).values(**values))
    conn.execute(
        insert(_actions).values(
            exception_id=exception_id,
            action=action.value,
            from_status=current.status.value,
            to_status=target.value,
            actor=actor,
            at=at,
            note=note,
        )
    )
    return get_exception(conn, exception_id)


class ExceptionStore:
    """The queue through an engine: one transaction per call."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def open(self, findings: Sequence[Finding], *, actor: str, at: datetime) -> int:
        return transact(self._engine, lambda c: open_findings(c, findings, actor=actor, at=at))

    def list(
        self,
        *,
        status: ExceptionStatus | None = None,
        cls: ExceptionClass | None = None,
        payout_id: str | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[ExceptionView]:
        return read(
            self._engine,
            lambda c: list_exceptions(
                c, status=status, cls=cls, payout_id=payout_id, after_id=after_id, limit=limit
            ),
        )

    def get(self, exception_id: int) -> ExceptionView:
        return read(self._engine, lambda c: get_exception(c, exception_id))

    def act(
        self,
        exception_id: int,
        action: ExceptionAction | str,
        *,
        actor: str,
        at: datetime,
        note: str | None = None,
        adjusting_entry_id: int | None = None,
        also: Callable[[Connection, ExceptionView, ExceptionView], None] | None = None,
    ) -> ExceptionView:
        """``also`` runs in the same transaction with the exception before and after
        (the API's audit row)."""

        def work(conn: Connection) -> ExceptionView:
            before = get_exception(conn, exception_id, lock=True) if also is not None else None
            after = act(
                conn,
                exception_id,
                action,
                actor=actor,
                at=at,
                note=note,
                adjusting_entry_id=adjusting_entry_id,
            )
            if also is not None and before is not None:
                also(conn, before, after)
            return after

        return transact(self._engine, work)
