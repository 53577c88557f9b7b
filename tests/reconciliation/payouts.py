"""A payout built the way the gateway reports one, with the ledger that matches it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from billing.reconciliation.model import LedgerKind, LedgerRecord, Payout, SettlementTxn
from billing.reconciliation.tolerances import load_tolerances

T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)
TOL = load_tolerances(1)


def payment(
    i: int,
    amount: int = 2_000,
    *,
    country: str = "FR",
    currency: str = "EUR",
    payout: str = "po_1",
    charged: tuple[int, str] | None = None,
) -> SettlementTxn:
    source_amount, source_currency = charged or (amount, currency)
    fee = TOL.expected_fee(amount, country, source_currency != currency)
    return SettlementTxn(
        id=f"txn_{i}",
        type="charge",
        reporting_category="charge",
        amount=amount,
        fee=fee,
        net=amount - fee,
        currency=currency,
        status="available",
        created=T0,
        available_on=T0,
        payout_id=payout,
        source=f"ch_{i}",
        ledger_ref=f"pi_{i}",
        source_amount=source_amount,
        source_currency=source_currency,
        source_status="succeeded",
        card_country=country,
        exchange_rate="0.92" if charged else None,
    )


def refund(i: int, amount: int = 500, currency: str = "EUR") -> SettlementTxn:
    return SettlementTxn(
        id=f"txn_r{i}",
        type="refund",
        reporting_category="refund",
        amount=-amount,
        fee=0,
        net=-amount,
        currency=currency,
        status="available",
        created=T0,
        available_on=T0,
        payout_id="po_1",
        source=f"re_{i}",
        ledger_ref=f"re_{i}",
        source_amount=amount,
        source_currency=currency,
        source_status="succeeded",
    )


def fee_txn(txn_id: str, amount: int, *, source: str | None) -> SettlementTxn:
    return SettlementTxn(
        id=txn_id,
        type="stripe_fee",
        reporting_category="fee",
        amount=-amount,
        fee=0,
        net=-amount,
        currency="EUR",
        status="available",
        created=T0,
        available_on=T0,
        payout_id="po_1",
        source=source,
    )


def record_of(txn: SettlementTxn, kind: LedgerKind = LedgerKind.PAYMENT) -> LedgerRecord:
    assert txn.ledger_ref is not None and txn.source_amount is not None
    return LedgerRecord(
        kind, txn.ledger_ref, txn.source_amount, txn.source_currency or txn.currency, 1, T0
    )


@dataclass
class Scenario:
    txns: list[SettlementTxn]
    ledger: dict[str, list[LedgerRecord]]
    payout: Payout
    extra: dict[str, object] = field(default_factory=dict)

    def with_payout_amount_of_lines(self) -> Scenario:
        net = sum(t.net for t in self.txns if t.type not in ("payout", "payout_failure"))
        return replace(self, payout=replace(self.payout, amount=net))


def happy() -> Scenario:
    """Payments from EEA and other cards, one converted from USD, a refund, a fee with
    a source: everything matches."""
    txns = [
        payment(1, 2_000, country="FR"),
        payment(2, 4_999, country="US"),
        payment(3, 12_345, country="DE"),
        payment(4, 920, country="US", charged=(1_000, "USD")),
        refund(1),
        fee_txn("txn_f1", 40, source="ch_1"),
    ]
    ledger: dict[str, list[LedgerRecord]] = {}
    for txn in txns:
        if txn.type == "charge":
            ledger[txn.ledger_ref or ""] = [record_of(txn)]
        elif txn.type == "refund":
            ledger[txn.ledger_ref or ""] = [record_of(txn, LedgerKind.REFUND)]
    payout = Payout("po_1", 0, "EUR", "paid", T0, "txn_po_1")
    return Scenario(txns, ledger, payout).with_payout_amount_of_lines()
