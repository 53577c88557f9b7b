"""What the gateway and the ledger each say about settled money, as plain values.

Amounts are signed integer minor units as the gateway reports them (a charge is
positive, a refund, a fee or a payout negative); currencies are upper-case ISO 4217.
A balance transaction's ``source_*`` fields describe the object it settles (the charge,
refund or dispute) in the currency the customer paid in; ``currency`` is the settlement
currency, which differs when the gateway converted at ``exchange_rate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class TxnKind(StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"
    DISPUTE = "dispute"
    FEE = "fee"
    PAYOUT = "payout"
    PAYOUT_FAILURE = "payout_failure"
    UNKNOWN = "unknown"


# (type, reporting_category) the matcher knows; anything else is UNKNOWN and fails
# closed. Sources: Stripe's balance transaction ``type`` and ``reporting_category`` lists.
_KINDS: dict[tuple[str, str], TxnKind] = {
    ("charge", "charge"): TxnKind.PAYMENT,
    ("payment", "charge"): TxnKind.PAYMENT,
    ("refund", "refund"): TxnKind.REFUND,
    ("payment_refund", "refund"): TxnKind.REFUND,
    ("adjustment", "dispute"): TxnKind.DISPUTE,
    ("adjustment", "dispute_reversal"): TxnKind.DISPUTE,
    ("stripe_fee", "fee"): TxnKind.FEE,
    ("payout", "payout"): TxnKind.PAYOUT,
    ("payout_failure", "payout_reversal"): TxnKind.PAYOUT_FAILURE,
}


def kind_of(type_: str, reporting_category: str) -> TxnKind:
    return _KINDS.get((type_, reporting_category), TxnKind.UNKNOWN)


class ExceptionClass(StrEnum):
    MISSING_IN_LEDGER = "missing_in_ledger"
    MISSING_AT_GATEWAY = "missing_at_gateway"
    AMOUNT = "amount"
    CURRENCY = "currency"
    FEE = "fee"
    STATUS = "status"
    UNSETTLED_AGED = "unsettled_aged"
    DUPLICATE = "duplicate"
    PAYOUT_TOTAL = "payout_total"
    PAYOUT_FAILED = "payout_failed"
    UNKNOWN_TYPE = "unknown_type"
    UNATTRIBUTED_FEE = "unattributed_fee"
    CLEARING_DRIFT = "clearing_drift"
    # The gateway's payment belongs to another customer or invoice than announced.
    ATTRIBUTION = "attribution"


class LedgerKind(StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"
    DISPUTE = "dispute"


_LEDGER_KIND = {
    TxnKind.PAYMENT: LedgerKind.PAYMENT,
    TxnKind.REFUND: LedgerKind.REFUND,
    TxnKind.DISPUTE: LedgerKind.DISPUTE,
}


def ledger_kind_of(kind: TxnKind) -> LedgerKind | None:
    return _LEDGER_KIND.get(kind)


@dataclass(frozen=True, slots=True)
class SettlementTxn:
    """One gateway balance transaction, with what the matcher needs of its source."""

    id: str
    type: str
    reporting_category: str
    amount: int
    fee: int
    net: int
    currency: str
    status: str  # pending | available
    created: datetime
    available_on: datetime
    payout_id: str | None = None
    source: str | None = None  # ch_…, re_…, dp_…, po_…
    # The id the ledger knows the source by: the payment intent of a charge, the refund
    # or the dispute id. None when the source carries none.
    ledger_ref: str | None = None
    source_amount: int | None = None  # in source_currency, unsigned
    source_currency: str | None = None
    source_status: str | None = None
    card_country: str | None = None
    exchange_rate: str | None = None  # decimal text, when the gateway converted
    fee_details: tuple[tuple[str, int], ...] = ()

    @property
    def kind(self) -> TxnKind:
        return kind_of(self.type, self.reporting_category)


@dataclass(frozen=True, slots=True)
class Payout:
    id: str
    amount: int  # unsigned, what the bank receives
    currency: str
    status: str  # pending | in_transit | paid | failed | canceled
    arrival_date: datetime
    balance_transaction: str | None  # the payout's own balance transaction
    failure_balance_transaction: str | None = None
    failure_code: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """A payment, refund or dispute the ledger booked, by the gateway id it cites."""

    kind: LedgerKind
    ref: str
    amount: int  # unsigned
    currency: str
    entry_id: int
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class GatewayObject:
    """A charge (by its payment intent), refund or dispute as the gateway holds it."""

    ref: str
    amount: int
    currency: str
    status: str
    created: datetime
    settled: bool  # the gateway has a balance transaction for it


@dataclass(frozen=True, slots=True)
class Finding:
    """One exception to open; ``key`` makes opening it idempotent."""

    cls: ExceptionClass
    key: str
    currency: str | None
    amount: int | None
    gateway_ref: str | None
    evidence: dict[str, Any] = field(default_factory=dict)
    payout_id: str | None = None


class PostingKind(StrEnum):
    FEE = "fee"
    FX = "fx"
    PAYOUT = "payout"
    PAYOUT_FAILURE = "payout_failure"


@dataclass(frozen=True, slots=True)
class SettlementPosting:
    """A ledger entry the settlement calls for, written once per (kind, txn_id).

    FEE: gateway fees +amount, clearing -amount. FX: clearing in ``currency``
    +amount against clearing in ``source_currency`` -source_amount, through the
    conversion account. PAYOUT: cash +amount, clearing -amount. PAYOUT_FAILURE: the
    reverse of the payout named by ``reverses_txn_id``."""

    kind: PostingKind
    txn_id: str
    amount: int  # unsigned
    currency: str
    at: datetime
    payout_id: str | None = None
    source_amount: int | None = None
    source_currency: str | None = None
    reverses_txn_id: str | None = None
