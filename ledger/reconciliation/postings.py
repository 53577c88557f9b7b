"""Settlement postings: fees, currency conversions, payouts and payout failures.

Each entry's idempotency key is ``settlement:<kind>:<gateway transaction id>``, so a
transaction is booked once however often its payout is reconciled. Entries (positive =
debit):

- fee: gateway_fees +fee, gateway_clearing -fee (a negative fee, a fee refunded by the
  gateway, the other way round);
- fx: gateway_clearing[settled] +settled, fx_conversion[settled] -settled,
  fx_conversion[charged] +charged, gateway_clearing[charged] -charged;
- payout: cash +amount, gateway_clearing -amount;
- payout failure: the reverse of the payout's entry (``reverses_entry_id``), keyed by
  the failure transaction, which its metadata names.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence

from sqlalchemy import Connection, select

from billing.reconciliation.model import PostingKind, SettlementPosting
from ledger import chart
from ledger.accounts import AccountRow, AccountSpec, get_or_create_accounts
from ledger.entries import AccountRef, EntryRequest, PostingRequest
from ledger.errors import UnknownEntryError
from ledger.journal import post_entries
from ledger.models import entries_table

_e = entries_table


def entry_key(kind: PostingKind, txn_id: str) -> str:
    return f"settlement:{kind.value}:{txn_id}"


def post_settlement(
    conn: Connection,
    postings: Sequence[SettlementPosting],
    *,
    account_cache: MutableMapping[AccountRef, AccountRow] | None = None,
) -> dict[str, int]:
    """Post the entries in the caller's transaction; returns entry key -> entry id, for
    new entries and for those posted before alike. A payout failure's payout must be
    posted earlier or in the same call."""
    postings = [p for p in postings if p.amount or p.source_amount]
    if not postings:
        return {}
    specs: dict[str, AccountSpec] = {}
    for posting in postings:
        for spec in _specs(posting):
            specs[spec.code] = spec
    if account_cache is None or any(code not in account_cache for code in specs):
        get_or_create_accounts(conn, specs.values())
    first = [p for p in postings if p.kind is not PostingKind.PAYOUT_FAILURE]
    then = [p for p in postings if p.kind is PostingKind.PAYOUT_FAILURE]
    posted = post_entries(conn, [_entry(p) for p in first], account_cache=account_cache)
    ids = {entry.idempotency_key: entry.id for entry in posted}
    if then:
        payouts = _entry_ids(conn, [entry_key(PostingKind.PAYOUT, _reversed(p)) for p in then])
        payouts.update(ids)
        requests = []
        for posting in then:
            key = entry_key(PostingKind.PAYOUT, _reversed(posting))
            if key not in payouts:
                raise UnknownEntryError(f"payout entry {key!r} is not posted; cannot reverse it")
            requests.append(_entry(posting, reverses=payouts[key]))
        for entry in post_entries(conn, requests, account_cache=account_cache):
            ids[entry.idempotency_key] = entry.id
    return ids


def _reversed(posting: SettlementPosting) -> str:
    if posting.reverses_txn_id is None:
        raise ValueError(f"payout failure {posting.txn_id} names no payout transaction")
    return posting.reverses_txn_id


def _entry_ids(conn: Connection, keys: Sequence[str]) -> dict[str, int]:
    rows = conn.execute(select(_e.c.idempotency_key, _e.c.id).where(_e.c.idempotency_key.in_(keys)))
    return {str(key): int(id_) for key, id_ in rows}


def _specs(posting: SettlementPosting) -> list[AccountSpec]:
    c = posting.currency
    if posting.kind is PostingKind.FEE:
        return [chart.gateway_fees(c), chart.gateway_clearing(c)]
    if posting.kind is PostingKind.FX:
        source = _source_currency(posting)
        return [
            chart.gateway_clearing(c),
            chart.fx_conversion(c),
            chart.fx_conversion(source),
            chart.gateway_clearing(source),
        ]
    return [chart.cash(c), chart.gateway_clearing(c)]


def _source_currency(posting: SettlementPosting) -> str:
    if posting.source_currency is None or posting.source_amount is None:
        raise ValueError(f"fx posting for {posting.txn_id} lacks the charged amount")
    return posting.source_currency


def _entry(posting: SettlementPosting, *, reverses: int | None = None) -> EntryRequest:
    c, amount = posting.currency, posting.amount
    meta: dict[str, object] = {"balance_transaction": posting.txn_id}
    if posting.payout_id:
        meta["payout_id"] = posting.payout_id
    kind = posting.kind
    if kind is PostingKind.FEE:
        moves = [(chart.gateway_fees(c), amount), (chart.gateway_clearing(c), -amount)]
        description = f"gateway fee {posting.txn_id}"
    elif kind is PostingKind.FX:
        source = _source_currency(posting)
        charged = posting.source_amount or 0
        moves = [
            (chart.gateway_clearing(c), amount),
            (chart.fx_conversion(c), -amount),
            (chart.fx_conversion(source), charged),
            (chart.gateway_clearing(source), -charged),
        ]
        meta["charged"] = {"amount": charged, "currency": source}
        description = f"gateway conversion {posting.txn_id}"
    elif kind is PostingKind.PAYOUT:
        moves = [(chart.cash(c), amount), (chart.gateway_clearing(c), -amount)]
        description = f"payout {posting.payout_id or posting.txn_id}"
    else:
        moves = [(chart.cash(c), -amount), (chart.gateway_clearing(c), amount)]
        meta["reverses_balance_transaction"] = posting.reverses_txn_id
        description = f"payout {posting.payout_id or posting.txn_id} failed"
    return EntryRequest(
        idempotency_key=entry_key(kind, posting.txn_id),
        effective_at=posting.at,
        description=description,
        postings=tuple(
            PostingRequest(spec.code, value, spec.currency) for spec, value in moves if value
        ),
        metadata=meta,
        reverses_entry_id=reverses,
    )
