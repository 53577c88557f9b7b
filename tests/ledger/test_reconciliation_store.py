"""The reconciliation records on both backends: settlement postings written once per
gateway transaction, the exceptions queue and its audit trail, the schema as described."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, text
from sqlalchemy.exc import DBAPIError

from billing.reconciliation.model import ExceptionClass, Finding, PostingKind, SettlementPosting
from ledger import chart
from ledger.errors import UnknownEntryError
from ledger.outbound import reads
from ledger.posting import Ledger
from ledger.reconciliation import tables
from ledger.reconciliation.errors import (
    ExceptionNotFound,
    ExceptionStateError,
    InvalidExceptionAction,
)
from ledger.reconciliation.exceptions import ExceptionStatus, ExceptionStore
from ledger.reconciliation.postings import entry_key, post_settlement
from ledger.unit_of_work import transact
from tests.ledger.conftest import T0, fresh, snapshot, transfer

AT = datetime(2026, 3, 3, 9, tzinfo=UTC)


def _balance(ledger: Ledger, code: str) -> int:
    try:
        return ledger.balance(code).amount
    except Exception:  # the chart account is created on first use
        return 0


def _post(engine: Engine, postings: list[SettlementPosting]) -> dict[str, int]:
    return transact(engine, lambda conn: post_settlement(conn, postings))


def test_fee_and_payout_net_clearing_to_zero_and_are_written_once(
    engine: Engine, ledger: Ledger
) -> None:
    po, txn = fresh("po"), fresh("txn")
    ledger.get_or_create_accounts([chart.gateway_clearing("EUR"), chart.revenue("EUR")])
    before = {
        c: _balance(ledger, c) for c in ("gateway_clearing:EUR", "gateway_fees:EUR", "cash:EUR")
    }
    # A charge of 10.00 captured into clearing, then settled with a 0.40 fee and paid out.
    ledger.post(transfer("gateway_clearing:EUR", "revenue:EUR", 1_000, currency="EUR"))
    postings = [
        SettlementPosting(PostingKind.FEE, f"{txn}_ch", 40, "EUR", T0, po),
        SettlementPosting(PostingKind.PAYOUT, f"{txn}_po", 960, "EUR", T0, po),
    ]
    first = _post(engine, postings)
    after_first = snapshot(engine)
    again = _post(engine, postings)
    assert again == first
    assert snapshot(engine) == after_first
    delta = {c: _balance(ledger, c) - before[c] for c in before}
    assert delta == {"gateway_clearing:EUR": 0, "gateway_fees:EUR": 40, "cash:EUR": 960}
    assert set(first) == {
        entry_key(PostingKind.FEE, f"{txn}_ch"),
        entry_key(PostingKind.PAYOUT, f"{txn}_po"),
    }


def test_payout_failure_reverses_the_payout_once(engine: Engine, ledger: Ledger) -> None:
    po, txn = fresh("po"), fresh("txn")
    paid = SettlementPosting(PostingKind.PAYOUT, f"{txn}_po", 500, "EUR", T0, po)
    failed = SettlementPosting(
        PostingKind.PAYOUT_FAILURE, f"{txn}_pf", 500, "EUR", AT, po, reverses_txn_id=f"{txn}_po"
    )
    ids = _post(engine, [paid])
    cash = _balance(ledger, "cash:EUR")
    both = _post(engine, [paid, failed])
    assert (
        both[entry_key(PostingKind.PAYOUT, f"{txn}_po")]
        == ids[entry_key(PostingKind.PAYOUT, f"{txn}_po")]
    )
    assert _balance(ledger, "cash:EUR") == cash - 500
    reversal = ledger.entry(both[entry_key(PostingKind.PAYOUT_FAILURE, f"{txn}_pf")])
    assert reversal.reverses_entry_id == ids[entry_key(PostingKind.PAYOUT, f"{txn}_po")]
    assert reversal.metadata["reverses_balance_transaction"] == f"{txn}_po"
    _post(engine, [failed])
    assert _balance(ledger, "cash:EUR") == cash - 500


def test_payout_failure_without_its_payout_posts_nothing(engine: Engine) -> None:
    txn = fresh("txn")
    failed = SettlementPosting(
        PostingKind.PAYOUT_FAILURE, f"{txn}_pf", 500, "EUR", AT, "po", reverses_txn_id=f"{txn}_po"
    )
    before = snapshot(engine)
    with pytest.raises(UnknownEntryError):
        _post(engine, [failed])
    assert snapshot(engine) == before


def test_conversion_balances_each_currency(engine: Engine, ledger: Ledger) -> None:
    txn = fresh("txn")
    ids = _post(
        engine,
        [SettlementPosting(PostingKind.FX, txn, 920, "EUR", T0, "po", 1_000, "USD")],
    )
    entry = ledger.entry(ids[entry_key(PostingKind.FX, txn)])
    assert sorted((p.account_code, p.amount) for p in entry.postings) == [
        ("fx_conversion:EUR", -920),
        ("fx_conversion:USD", 1_000),
        ("gateway_clearing:EUR", 920),
        ("gateway_clearing:USD", -1_000),
    ]


def _finding(key: str, cls: ExceptionClass = ExceptionClass.AMOUNT) -> Finding:
    return Finding(cls, key, "EUR", 1_234, "txn_1", {"ledger": {"amount": 1_233}}, "po_1")


def test_findings_open_once(engine: Engine) -> None:
    store = ExceptionStore(engine)
    key = fresh("amount:po_1")
    assert store.open([_finding(key), _finding(key)], actor="recon-payout-po_1", at=AT) == 1
    assert store.open([_finding(key)], actor="recon-payout-po_1", at=AT) == 0
    (row,) = [x for x in store.list(payout_id="po_1", limit=500) if x.key == key]
    assert (row.status, row.cls, row.amount, row.evidence) == (
        ExceptionStatus.OPEN,
        ExceptionClass.AMOUNT,
        1_234,
        {"ledger": {"amount": 1_233}},
    )
    assert [(a.action, a.actor) for a in store.get(row.id).actions] == [
        ("open", "recon-payout-po_1")
    ]
    opened = [
        e
        for e in reads.list_events(engine, since=AT, until=AT + timedelta(seconds=1), limit=10_000)
        if e.type == "reconciliation.exception_opened" and e.data["object"]["key"] == key
    ]
    assert [(e.data["object"]["id"], e.data["object"]["class"]) for e in opened] == [
        (row.id, "amount")
    ], "one outbound event per exception opened, in the same transaction"


def _opened(store: ExceptionStore) -> int:
    key = fresh("k")
    store.open([_finding(key)], actor="run", at=AT)
    return next(
        x.id for x in store.list(limit=500, after_id=0, status=ExceptionStatus.OPEN) if x.key == key
    )


def test_acknowledge_then_resolve_with_the_adjusting_entry(engine: Engine, ledger: Ledger) -> None:
    store = ExceptionStore(engine)
    xid = _opened(store)
    acked = store.act(xid, "acknowledge", actor="ana@ops", at=AT)
    assert (acked.status, acked.acknowledged_by) == (ExceptionStatus.ACKNOWLEDGED, "ana@ops")
    a, b = ledger.get_or_create_accounts([chart.gateway_clearing("EUR"), chart.revenue("EUR")])
    fix = ledger.post(transfer(a, b, 1, currency="EUR"))
    done = store.act(
        xid, "resolve", actor="bo@ops", at=AT, note="ledger short by 1", adjusting_entry_id=fix.id
    )
    assert (done.status, done.adjusting_entry_id, done.closed_by, done.note) == (
        ExceptionStatus.RESOLVED,
        fix.id,
        "bo@ops",
        "ledger short by 1",
    )
    assert [(x.action, x.from_status, x.to_status, x.actor) for x in done.actions] == [
        ("open", None, "open", "run"),
        ("acknowledge", "open", "acknowledged", "ana@ops"),
        ("resolve", "acknowledged", "resolved", "bo@ops"),
    ]
    # The same step again is a no-op; another step is refused.
    assert (
        store.act(xid, "resolve", actor="bo@ops", at=AT, adjusting_entry_id=fix.id).actions
        == done.actions
    )
    with pytest.raises(ExceptionStateError):
        store.act(xid, "ignore", actor="bo@ops", at=AT)


@pytest.mark.parametrize(
    ("action", "kwargs"),
    [
        ("resolve", {}),
        ("resolve", {"adjusting_entry_id": 10**12}),
        ("ignore", {"adjusting_entry_id": 1}),
        ("close", {}),
        ("ignore", {"actor": " "}),
        ("ignore", {"note": "x" * 2001}),
    ],
)
def test_bad_actions_are_refused_and_change_nothing(
    engine: Engine, action: str, kwargs: dict[str, object]
) -> None:
    store = ExceptionStore(engine)
    xid = _opened(store)
    before = store.get(xid)
    params: dict[str, object] = {"actor": "ana@ops", **kwargs}
    with pytest.raises(InvalidExceptionAction):
        store.act(xid, action, at=AT, **params)  # type: ignore[arg-type]
    assert store.get(xid) == before


def test_write_off_and_ignore_from_open(engine: Engine) -> None:
    store = ExceptionStore(engine)
    for action, status in (("write_off", "written_off"), ("ignore", "ignored")):
        xid = _opened(store)
        assert store.act(xid, action, actor="ana@ops", at=AT, note="why").status == status
        with pytest.raises(ExceptionStateError):
            store.act(xid, "acknowledge", actor="ana@ops", at=AT)


def test_unknown_exception(engine: Engine) -> None:
    store = ExceptionStore(engine)
    with pytest.raises(ExceptionNotFound):
        store.get(10**12)
    with pytest.raises(ExceptionNotFound):
        store.act(10**12, "acknowledge", actor="ana@ops", at=AT)
    with pytest.raises(InvalidExceptionAction):
        store.list(limit=0)


def test_the_database_refuses_a_resolution_without_entry_and_edits_of_the_trail(
    engine: Engine,
) -> None:
    store = ExceptionStore(engine)
    xid = _opened(store)
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(
            text("UPDATE reconciliation_exceptions SET status = 'resolved' WHERE id = :id"),
            {"id": xid},
        )
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE reconciliation_exception_actions SET actor = 'x' WHERE exception_id = :id"
            ),
            {"id": xid},
        )
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(
            text("DELETE FROM reconciliation_exception_actions WHERE exception_id = :id"),
            {"id": xid},
        )
    assert store.get(xid).status is ExceptionStatus.OPEN


def test_tables_are_as_described(engine: Engine) -> None:
    described = MetaData()
    names = {
        "reconciliation_exceptions",
        "reconciliation_exception_actions",
        "settlement_lines",
        "reconciliation_runs",
    }
    for table in tables.metadata.sorted_tables:
        if table.name in names | {"ledger_entries"}:  # the adjusting entry's table
            table.to_metadata(described)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), described
        )
    ours = [d for d in diff if any(name in repr(d) for name in names)]
    assert ours == []
