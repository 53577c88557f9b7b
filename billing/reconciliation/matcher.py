"""The matching functions: what the gateway settled against what the ledger booked.

``match_transactions`` judges a batch of a payout's balance transactions (the caller
pages through the payout and hands each page with the ledger records its sources cite);
``check_payout`` judges the payout itself from the totals of all its lines;
``check_ledger_records``, ``check_gateway_objects`` and ``clearing_drift`` are the daily
sweep's checks. Each returns findings (exceptions to open, keyed so that opening one
twice is a no-op) and postings (ledger entries keyed by the gateway transaction id).

Rules:
- a payment, refund or dispute transaction matches when the ledger holds exactly one
  record of its source with the same currency and amount (in the currency the customer
  paid, ``source_*``), the source's gateway status is what the ledger assumes, and —
  for payments — the fee is the schedule's within tolerance. A match posts its actual
  fee (and, when the gateway converted, the currency conversion); a mismatch posts
  nothing and opens one finding per class found;
- a dispute's transactions (funds withdrawn, reinstated) are booked with their fee by
  the dispute itself (``ledger.disputes``, keyed by the transaction id), so a match
  posts nothing more for them;
- a fee transaction with no source is posted (the money is gone either way) and opens
  ``unattributed_fee`` for ops to attribute;
- a transaction type the matcher does not know opens ``unknown_type``, is not posted,
  and holds back the payout's own entry: the payout fails closed until ops decide;
- a payout that is paid posts cash against clearing; a failed one also posts the
  reverse, keyed by its failure transaction, and opens ``payout_failed``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from billing.reconciliation.model import (
    ExceptionClass,
    Finding,
    GatewayObject,
    LedgerKind,
    LedgerRecord,
    Payout,
    PostingKind,
    SettlementPosting,
    SettlementTxn,
    TxnKind,
    ledger_kind_of,
)
from billing.reconciliation.tolerances import Tolerances

_C = ExceptionClass

# The gateway status of a source that the ledger's record of it assumes.
_EXPECTED_STATUS: dict[TxnKind, frozenset[str]] = {
    TxnKind.PAYMENT: frozenset({"succeeded"}),
    TxnKind.REFUND: frozenset({"succeeded", "pending"}),
}


@dataclass(frozen=True, slots=True)
class LineResult:
    txn: SettlementTxn
    matched: bool
    classes: tuple[ExceptionClass, ...] = ()


@dataclass(slots=True)
class BatchResult:
    lines: list[LineResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    postings: list[SettlementPosting] = field(default_factory=list)

    @property
    def matched(self) -> int:
        return sum(1 for line in self.lines if line.matched)


def finding_key(cls: ExceptionClass, scope: str | None, subject: str) -> str:
    return f"{cls.value}:{scope or '-'}:{subject}"


def match_transactions(
    txns: Sequence[SettlementTxn],
    ledger: Mapping[str, Sequence[LedgerRecord]],
    tolerances: Tolerances,
    *,
    settled_elsewhere: Mapping[str, str] | None = None,
) -> BatchResult:
    """Judge a batch of balance transactions. ``ledger`` maps each source's ledger ref
    to the records citing it; ``settled_elsewhere`` maps a ref to another balance
    transaction already seen for it (an earlier page or payout)."""
    elsewhere = settled_elsewhere or {}
    seen: Counter[tuple[TxnKind, str | None]] = Counter(
        (txn.kind, txn.ledger_ref) for txn in txns if ledger_kind_of(txn.kind) and txn.ledger_ref
    )
    result = BatchResult()
    for txn in txns:
        kind = txn.kind
        if kind is TxnKind.UNKNOWN:
            result.findings.append(_finding(_C.UNKNOWN_TYPE, txn, _evidence(txn)))
            result.lines.append(LineResult(txn, False, (_C.UNKNOWN_TYPE,)))
        elif kind is TxnKind.FEE:
            _fee_txn(txn, result)
        elif kind in (TxnKind.PAYOUT, TxnKind.PAYOUT_FAILURE):
            # The payout's own transactions are judged by check_payout.
            result.lines.append(LineResult(txn, True))
        else:
            _sourced_txn(txn, ledger, elsewhere, seen, tolerances, result)
    return result


def _fee_txn(txn: SettlementTxn, result: BatchResult) -> None:
    result.postings.append(_posting(PostingKind.FEE, txn, -txn.net))
    if txn.source is None:
        result.findings.append(_finding(_C.UNATTRIBUTED_FEE, txn, _evidence(txn)))
        result.lines.append(LineResult(txn, False, (_C.UNATTRIBUTED_FEE,)))
    else:
        result.lines.append(LineResult(txn, True))


def _sourced_txn(
    txn: SettlementTxn,
    ledger: Mapping[str, Sequence[LedgerRecord]],
    elsewhere: Mapping[str, str],
    seen: Counter[tuple[TxnKind, str | None]],
    tolerances: Tolerances,
    result: BatchResult,
) -> None:
    kind = txn.kind
    ledger_kind = ledger_kind_of(kind)
    records = [r for r in ledger.get(txn.ledger_ref or "", ()) if r.kind is ledger_kind]
    evidence = _evidence(txn)
    classes: list[ExceptionClass] = []
    other = elsewhere.get(txn.ledger_ref or "")
    if seen[(kind, txn.ledger_ref)] > 1 or len(records) > 1 or (other and other != txn.id):
        classes.append(_C.DUPLICATE)
        evidence["ledger_entries"] = [r.entry_id for r in records]
        if other and other != txn.id:
            evidence["other_balance_transaction"] = other
    elif not records:
        classes.append(_C.MISSING_IN_LEDGER)
    else:
        classes.extend(_compare(txn, records[0], tolerances, evidence))
    for cls in classes:
        result.findings.append(_finding(cls, txn, evidence))
    if classes:
        result.lines.append(LineResult(txn, False, tuple(classes)))
        return
    if kind is TxnKind.DISPUTE:  # booked with its fee when the dispute was recorded
        result.lines.append(LineResult(txn, True))
        return
    if txn.fee:
        result.postings.append(_posting(PostingKind.FEE, txn, txn.fee))
    source_currency = txn.source_currency or txn.currency
    if source_currency != txn.currency and txn.source_amount is not None:
        sign = 1 if txn.amount >= 0 else -1
        result.postings.append(
            SettlementPosting(
                PostingKind.FX,
                txn.id,
                txn.amount,
                txn.currency,
                txn.created,
                payout_id=txn.payout_id,
                source_amount=sign * txn.source_amount,
                source_currency=source_currency,
            )
        )
    result.lines.append(LineResult(txn, True))


def _compare(
    txn: SettlementTxn, record: LedgerRecord, tolerances: Tolerances, evidence: dict[str, object]
) -> list[ExceptionClass]:
    classes: list[ExceptionClass] = []
    amount = txn.source_amount if txn.source_amount is not None else abs(txn.amount)
    currency = txn.source_currency or txn.currency
    evidence["ledger"] = {
        "entry_id": record.entry_id,
        "amount": record.amount,
        "currency": record.currency,
    }
    if record.currency != currency:
        classes.append(_C.CURRENCY)
    elif record.amount != amount:
        classes.append(_C.AMOUNT)
    expected = _EXPECTED_STATUS.get(txn.kind)
    if expected is not None and txn.source_status is not None and txn.source_status not in expected:
        classes.append(_C.STATUS)
    if txn.kind is TxnKind.PAYMENT:
        converted = currency != txn.currency
        want = tolerances.expected_fee(txn.amount, txn.card_country, converted)
        if abs(txn.fee - want) > tolerances.fee_allowance(txn.amount):
            classes.append(_C.FEE)
            evidence["expected_fee"] = want
            evidence["tolerances_version"] = tolerances.version
    return classes


@dataclass(frozen=True, slots=True)
class PayoutTotals:
    """What the payout's lines add up to, over every page (settlement currency)."""

    net: int
    lines: int
    unknown: int


@dataclass(slots=True)
class PayoutResult:
    findings: list[Finding] = field(default_factory=list)
    postings: list[SettlementPosting] = field(default_factory=list)


def check_payout(payout: Payout, totals: PayoutTotals) -> PayoutResult:
    """The payout against the sum of its lines, and its own entries."""
    result = PayoutResult()
    evidence: dict[str, object] = {
        "payout_amount": payout.amount,
        "lines_net": totals.net,
        "lines": totals.lines,
        "status": payout.status,
    }
    if totals.net != payout.amount:
        result.findings.append(
            Finding(
                _C.PAYOUT_TOTAL,
                finding_key(_C.PAYOUT_TOTAL, payout.id, payout.id),
                payout.currency,
                totals.net - payout.amount,
                payout.id,
                evidence,
                payout.id,
            )
        )
    if payout.status == "failed":
        result.findings.append(
            Finding(
                _C.PAYOUT_FAILED,
                finding_key(_C.PAYOUT_FAILED, payout.id, payout.id),
                payout.currency,
                payout.amount,
                payout.id,
                {**evidence, "failure_code": payout.failure_code},
                payout.id,
            )
        )
    if totals.unknown or payout.balance_transaction is None:
        return result  # fail closed: cash is not booked past a transaction not understood
    if payout.status in ("paid", "failed"):
        result.postings.append(
            SettlementPosting(
                PostingKind.PAYOUT,
                payout.balance_transaction,
                payout.amount,
                payout.currency,
                payout.arrival_date,
                payout_id=payout.id,
            )
        )
    if payout.status == "failed" and payout.failure_balance_transaction:
        result.postings.append(
            SettlementPosting(
                PostingKind.PAYOUT_FAILURE,
                payout.failure_balance_transaction,
                payout.amount,
                payout.currency,
                payout.arrival_date,
                payout_id=payout.id,
                reverses_txn_id=payout.balance_transaction,
            )
        )
    return result


def check_ledger_records(
    records: Iterable[LedgerRecord],
    gateway: Mapping[str, GatewayObject | None],
    tolerances: Tolerances,
    now: datetime,
) -> list[Finding]:
    """Ledger payments against the gateway's record of them: unknown to the gateway
    (``missing_at_gateway``), not in the state the ledger assumes (``status``), or still
    unsettled after ``unsettled_after_days`` (``unsettled_aged``). Records absent from
    ``gateway`` were not looked up and are not judged."""
    findings: list[Finding] = []
    aged = now - timedelta(days=tolerances.unsettled_after_days)
    for record in records:
        if record.ref not in gateway:
            continue
        found = gateway[record.ref]
        evidence: dict[str, object] = {
            "kind": record.kind.value,
            "entry_id": record.entry_id,
            "recorded_at": record.recorded_at.isoformat(),
        }
        cls: ExceptionClass | None = None
        if found is None:
            cls = _C.MISSING_AT_GATEWAY
        else:
            evidence["gateway"] = {"status": found.status, "settled": found.settled}
            expected = _EXPECTED_STATUS.get(TxnKind(record.kind.value))
            if expected is not None and found.status not in expected:
                cls = _C.STATUS
            elif not found.settled and record.recorded_at < aged:
                cls = _C.UNSETTLED_AGED
                evidence["unsettled_after_days"] = tolerances.unsettled_after_days
        if cls is not None:
            findings.append(
                Finding(
                    cls,
                    finding_key(cls, None, record.ref),
                    record.currency,
                    record.amount,
                    record.ref,
                    evidence,
                )
            )
    return findings


def check_gateway_objects(
    objects: Iterable[GatewayObject], ledger: Mapping[str, Sequence[LedgerRecord]]
) -> list[Finding]:
    """Succeeded gateway payments the ledger has no record of, webhook or not."""
    findings: list[Finding] = []
    for obj in objects:
        if obj.status != "succeeded":
            continue
        if any(r.kind is LedgerKind.PAYMENT for r in ledger.get(obj.ref, ())):
            continue
        findings.append(
            Finding(
                _C.MISSING_IN_LEDGER,
                finding_key(_C.MISSING_IN_LEDGER, None, obj.ref),
                obj.currency,
                obj.amount,
                obj.ref,
                {"gateway": {"status": obj.status, "created": obj.created.isoformat()}},
            )
        )
    return findings


def clearing_drift(
    clearing: Mapping[str, int],
    gateway_balance: Mapping[str, int],
    tolerances: Tolerances,
    as_of: str,
) -> list[Finding]:
    """Clearing per currency against the gateway's pending plus available balance."""
    findings: list[Finding] = []
    for currency in sorted(set(clearing) | set(gateway_balance)):
        ours, theirs = clearing.get(currency, 0), gateway_balance.get(currency, 0)
        if abs(ours - theirs) > tolerances.drift_tolerance_minor:
            findings.append(
                Finding(
                    _C.CLEARING_DRIFT,
                    finding_key(_C.CLEARING_DRIFT, as_of, currency),
                    currency,
                    ours - theirs,
                    None,
                    {"clearing": ours, "gateway_balance": theirs, "as_of": as_of},
                )
            )
    return findings


def _finding(cls: ExceptionClass, txn: SettlementTxn, evidence: dict[str, object]) -> Finding:
    amount = txn.source_amount if txn.source_amount is not None else txn.amount
    return Finding(
        cls,
        finding_key(cls, txn.payout_id, txn.id),
        txn.source_currency or txn.currency,
        amount,
        txn.id,
        dict(evidence),
        txn.payout_id,
    )


def _evidence(txn: SettlementTxn) -> dict[str, object]:
    return {
        "balance_transaction": txn.id,
        "type": txn.type,
        "reporting_category": txn.reporting_category,
        "amount": txn.amount,
        "fee": txn.fee,
        "net": txn.net,
        "currency": txn.currency,
        "source": txn.source,
        "ledger_ref": txn.ledger_ref,
        "source_amount": txn.source_amount,
        "source_currency": txn.source_currency,
        "source_status": txn.source_status,
        "exchange_rate": txn.exchange_rate,
    }


def _posting(kind: PostingKind, txn: SettlementTxn, amount: int) -> SettlementPosting:
    return SettlementPosting(kind, txn.id, amount, txn.currency, txn.created, txn.payout_id)
