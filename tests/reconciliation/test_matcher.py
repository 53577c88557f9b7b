"""The pure matcher: a happy payout matches; each mismatch class injected on its own is
found, on the transaction it was injected into, and nothing else is reported."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from billing.reconciliation.matcher import (
    PayoutTotals,
    check_gateway_objects,
    check_ledger_records,
    check_payout,
    clearing_drift,
    match_transactions,
)
from billing.reconciliation.model import (
    ExceptionClass,
    GatewayObject,
    LedgerKind,
    LedgerRecord,
    PostingKind,
    SettlementTxn,
    TxnKind,
)
from billing.reconciliation.tolerances import load_tolerances, round_half_up, tolerances_at
from tests.reconciliation.payouts import T0, TOL, Scenario, fee_txn, happy, payment

C = ExceptionClass


def run(s: Scenario) -> tuple[set[tuple[ExceptionClass, str | None]], list[object], int]:
    batch = match_transactions(s.txns, s.ledger, TOL)
    totals = PayoutTotals(
        net=sum(t.net for t in s.txns if t.kind not in (TxnKind.PAYOUT, TxnKind.PAYOUT_FAILURE)),
        lines=len(s.txns),
        unknown=sum(1 for t in s.txns if t.kind is TxnKind.UNKNOWN),
    )
    payout = check_payout(s.payout, totals)
    found = {(f.cls, f.gateway_ref) for f in [*batch.findings, *payout.findings]}
    return found, [*batch.postings, *payout.postings], batch.matched


def test_happy_payout_matches_and_posts_fees_conversion_and_payout() -> None:
    s = happy()
    found, postings, matched = run(s)
    assert found == set()
    assert matched == len(s.txns)
    fees = {p.txn_id: p.amount for p in postings if p.kind is PostingKind.FEE}  # type: ignore[attr-defined]
    assert fees == {
        **{t.id: t.fee for t in s.txns if t.type == "charge"},
        "txn_f1": 40,
    }
    (fx,) = [p for p in postings if p.kind is PostingKind.FX]  # type: ignore[attr-defined]
    assert (fx.amount, fx.currency, fx.source_amount, fx.source_currency) == (
        920,
        "EUR",
        1000,
        "USD",
    )  # type: ignore[attr-defined]
    (paid,) = [p for p in postings if p.kind is PostingKind.PAYOUT]  # type: ignore[attr-defined]
    assert (paid.amount, paid.txn_id) == (s.payout.amount, "txn_po_1")  # type: ignore[attr-defined]


def _set_ledger(s: Scenario, ref: str, **changes: object) -> Scenario:
    s.ledger[ref] = [replace(s.ledger[ref][0], **changes)]  # type: ignore[arg-type]
    return s


def _set_txn(s: Scenario, txn_id: str, **changes: object) -> Scenario:
    s.txns = [replace(t, **changes) if t.id == txn_id else t for t in s.txns]  # type: ignore[arg-type]
    return s.with_payout_amount_of_lines()


def _add(s: Scenario, txn: SettlementTxn) -> Scenario:
    s.txns.append(txn)
    return s.with_payout_amount_of_lines()


def _missing_in_ledger(s: Scenario) -> Scenario:
    del s.ledger["pi_3"]
    return s


def _fee(s: Scenario) -> Scenario:
    t = next(t for t in s.txns if t.id == "txn_3")
    return _set_txn(s, "txn_3", fee=t.fee + 50, net=t.net - 50)


def _duplicate(s: Scenario) -> Scenario:
    return _add(s, replace(payment(3, 12_345, country="DE"), id="txn_3b", source="ch_3b"))


def _unknown(s: Scenario) -> Scenario:
    base = fee_txn("txn_u", 10, source=None)
    return _add(s, replace(base, type="climate_order_purchase", reporting_category="climate"))


def _payout_total(s: Scenario) -> Scenario:
    s.payout = replace(s.payout, amount=s.payout.amount + 1)
    return s


def _payout_failed(s: Scenario) -> Scenario:
    s.payout = replace(
        s.payout, status="failed", failure_balance_transaction="txn_pf_1", failure_code="no_account"
    )
    return s


INJECTIONS: dict[ExceptionClass, tuple[Callable[[Scenario], Scenario], set[str]]] = {
    C.MISSING_IN_LEDGER: (_missing_in_ledger, {"txn_3"}),
    C.AMOUNT: (lambda s: _set_ledger(s, "pi_3", amount=12_344), {"txn_3"}),
    C.CURRENCY: (lambda s: _set_ledger(s, "pi_3", currency="USD"), {"txn_3"}),
    C.FEE: (_fee, {"txn_3"}),
    C.STATUS: (lambda s: _set_txn(s, "txn_3", source_status="pending"), {"txn_3"}),
    C.DUPLICATE: (_duplicate, {"txn_3", "txn_3b"}),
    C.PAYOUT_TOTAL: (_payout_total, {"po_1"}),
    C.PAYOUT_FAILED: (_payout_failed, {"po_1"}),
    C.UNKNOWN_TYPE: (_unknown, {"txn_u"}),
    C.UNATTRIBUTED_FEE: (lambda s: _add(s, fee_txn("txn_f2", 99, source=None)), {"txn_f2"}),
}


@pytest.mark.parametrize("cls", list(INJECTIONS), ids=lambda c: c.value)
def test_each_class_injected_alone_is_found_and_nothing_else(cls: ExceptionClass) -> None:
    inject, subjects = INJECTIONS[cls]
    found, _, _ = run(inject(happy()))
    assert found == {(cls, subject) for subject in subjects}


def test_a_mismatched_transaction_posts_nothing() -> None:
    _, postings, matched = run(_set_ledger(happy(), "pi_3", amount=1))
    assert "txn_3" not in {p.txn_id for p in postings}  # type: ignore[attr-defined]
    assert matched == len(happy().txns) - 1


def test_fee_within_tolerance_posts_the_actual_fee() -> None:
    t = payment(3, 12_345, country="DE")
    s = _set_txn(happy(), "txn_3", fee=t.fee + 1, net=t.net - 1)
    found, postings, _ = run(s)
    assert found == set()
    fee = next(p for p in postings if p.txn_id == "txn_3")  # type: ignore[attr-defined]
    assert fee.amount == t.fee + 1  # type: ignore[attr-defined]


def test_unknown_type_holds_back_the_payout_entry_fail_closed() -> None:
    _, postings, _ = run(_unknown(happy()))
    kinds = {p.kind for p in postings}  # type: ignore[attr-defined]
    assert PostingKind.PAYOUT not in kinds
    assert "txn_u" not in {p.txn_id for p in postings}  # type: ignore[attr-defined]


def test_unattributed_fee_is_still_posted() -> None:
    _, postings, _ = run(_add(happy(), fee_txn("txn_f2", 99, source=None)))
    assert any(p.txn_id == "txn_f2" and p.amount == 99 for p in postings)  # type: ignore[attr-defined]


def test_failed_payout_posts_the_payout_and_its_reversal() -> None:
    _, postings, _ = run(_payout_failed(happy()))
    out = [
        (p.kind, p.txn_id, p.reverses_txn_id)
        for p in postings
        if p.kind in (PostingKind.PAYOUT, PostingKind.PAYOUT_FAILURE)
    ]  # type: ignore[attr-defined]
    assert out == [
        (PostingKind.PAYOUT, "txn_po_1", None),
        (PostingKind.PAYOUT_FAILURE, "txn_pf_1", "txn_po_1"),
    ]


def test_a_payout_not_yet_paid_posts_no_cash() -> None:
    s = happy()
    s.payout = replace(s.payout, status="in_transit")
    found, postings, _ = run(s)
    assert found == set()
    assert PostingKind.PAYOUT not in {p.kind for p in postings}  # type: ignore[attr-defined]


def test_a_source_settled_in_an_earlier_page_is_a_duplicate() -> None:
    s = happy()
    batch = match_transactions(s.txns, s.ledger, TOL, settled_elsewhere={"pi_2": "txn_old"})
    assert {(f.cls, f.gateway_ref) for f in batch.findings} == {(C.DUPLICATE, "txn_2")}
    assert batch.findings[0].evidence["other_balance_transaction"] == "txn_old"
    again = match_transactions(s.txns, s.ledger, TOL, settled_elsewhere={"pi_2": "txn_2"})
    assert again.findings == []


def test_two_ledger_records_for_one_charge_are_a_duplicate() -> None:
    s = happy()
    s.ledger["pi_1"] = s.ledger["pi_1"] * 2
    found, _, _ = run(s)
    assert found == {(C.DUPLICATE, "txn_1")}


def test_finding_keys_are_stable_across_runs() -> None:
    a = match_transactions(
        _missing_in_ledger(happy()).txns, _missing_in_ledger(happy()).ledger, TOL
    )
    b = match_transactions(
        _missing_in_ledger(happy()).txns, _missing_in_ledger(happy()).ledger, TOL
    )
    assert (
        [f.key for f in a.findings]
        == [f.key for f in b.findings]
        == ["missing_in_ledger:po_1:txn_3"]
    )


NOW = datetime(2026, 3, 20, tzinfo=UTC)


def _rec(ref: str, days_ago: int) -> LedgerRecord:
    return LedgerRecord(LedgerKind.PAYMENT, ref, 1_000, "EUR", 7, NOW - timedelta(days=days_ago))


def _obj(ref: str, status: str = "succeeded", settled: bool = True) -> GatewayObject:
    return GatewayObject(ref, 1_000, "EUR", status, NOW - timedelta(days=9), settled)


def test_ledger_side_checks_each_class_alone() -> None:
    records = [
        _rec("pi_ok", 9),
        _rec("pi_gone", 9),
        _rec("pi_failed", 9),
        _rec("pi_old", 9),
        _rec("pi_young", 2),
        _rec("pi_unlooked", 30),
    ]
    gateway = {
        "pi_ok": _obj("pi_ok"),
        "pi_gone": None,
        "pi_failed": _obj("pi_failed", status="requires_payment_method"),
        "pi_old": _obj("pi_old", settled=False),
        "pi_young": _obj("pi_young", settled=False),
    }
    found = {(f.cls, f.gateway_ref) for f in check_ledger_records(records, gateway, TOL, NOW)}
    assert found == {
        (C.MISSING_AT_GATEWAY, "pi_gone"),
        (C.STATUS, "pi_failed"),
        (C.UNSETTLED_AGED, "pi_old"),
    }


def test_gateway_charges_with_no_ledger_record_are_found() -> None:
    ledger = {"pi_a": [_rec("pi_a", 1)]}
    objects = [_obj("pi_a"), _obj("pi_b"), _obj("pi_c", status="requires_payment_method")]
    found = {(f.cls, f.gateway_ref) for f in check_gateway_objects(objects, ledger)}
    assert found == {(C.MISSING_IN_LEDGER, "pi_b")}


def test_clearing_drift_per_currency() -> None:
    findings = clearing_drift(
        {"EUR": 1_000, "USD": 50}, {"EUR": 1_000, "USD": 40, "GBP": 5}, TOL, "2026-03-20"
    )
    assert {(f.currency, f.amount) for f in findings} == {("USD", 10), ("GBP", -5)}
    assert clearing_drift({"EUR": 3}, {"EUR": 3}, TOL, "2026-03-20") == []


def test_tolerances_are_versioned_data() -> None:
    assert tolerances_at(T0) == load_tolerances(1)
    with pytest.raises(KeyError):
        tolerances_at(datetime(2020, 1, 1, tzinfo=UTC))
    with pytest.raises(KeyError):
        load_tolerances(999)
    # 1.5 % + 25 on an EEA card; 2.9 % + 30 elsewhere; +1 % when converted.
    assert TOL.expected_fee(10_000, "IE", False) == 175
    assert TOL.expected_fee(10_000, "US", False) == 320
    assert TOL.expected_fee(10_000, "US", True) == 420
    assert TOL.expected_fee(-10_000, None, False) == 320
    assert round_half_up(5, 10) == 1 and round_half_up(4, 10) == 0


def test_unknown_kind_for_unlisted_pairs() -> None:
    assert replace(payment(1), reporting_category="other").kind is TxnKind.UNKNOWN
