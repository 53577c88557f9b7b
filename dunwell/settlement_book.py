"""The settlement simulator's book: how charges and refunds become balance transactions,
fees and automatic payouts. Used by ``dunwell.settlement_sim`` (the service); no I/O.

The rules, all configurable through ``SimConfig`` (``--config FILE`` of the service):

- fee schedule: ``percent_bp`` of the settled amount (basis points) plus ``fixed_minor``
  minor units of the settlement currency, the EEA rates (1.5 % + 25) for a card issued in
  an EEA country and the others (2.9 % + 30) otherwise, plus ``fx_bp`` (1 %) when the
  charge was converted; rounded half up. Refunds carry no fee;
- currency conversion: a charge or refund in a currency other than the settlement
  currency is settled at ``exchange_rates[currency]`` (settlement units per unit),
  rounded half up, and its balance transaction carries that ``exchange_rate``;
- ``available_after_seconds`` (Stripe's standard is two days) from the charge to
  availability; pending until then;
- automatic payouts every ``payout_interval_seconds`` (daily by default, at 00:00 UTC):
  everything available at the boundary and not yet paid out goes into one payout per
  currency, which has its own ``payout`` balance transaction and arrives
  ``arrival_after_seconds`` later (status ``in_transit``, then ``paid``);
- payout failures: ``fail_payout`` fails a payout (also one already paid, as banks do
  days later); its ``payout_failure`` transaction returns the money to the balance and
  goes out with the next payout;
- disputes (``open_dispute``): the card network withdraws the disputed charge's amount
  at once, with ``dispute_fee_minor`` (15.00 by default) in an ``adjustment`` /
  ``dispute`` transaction; ``close_dispute`` ends it ``won`` (the amount comes back in
  an ``adjustment`` / ``dispute_reversal`` transaction; the fee too only when
  ``dispute_fee_returned_when_won``, off by default as on Stripe today) or ``lost``;
- fees with no source (``add_fee``: e.g. a monthly account fee) and, for benchmarks,
  synthetic charges (``add_charge`` with overrides) are accepted too.

Objects are rendered the way Stripe's API renders them (amounts in minor units,
lower-case currencies, timestamps in epoch seconds).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

from billing.money import currency_exponent

EEA = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IS IE IT LV LI LT LU MT NL NO PL PT RO SK SI ES SE".split()
)


@dataclass(frozen=True)
class SimConfig:
    settlement_currency: str = "EUR"
    eea_percent_bp: int = 150
    eea_fixed_minor: int = 25
    other_percent_bp: int = 290
    other_fixed_minor: int = 30
    fx_bp: int = 100
    exchange_rates: dict[str, str] = field(default_factory=lambda: {"USD": "0.92", "GBP": "1.17"})
    available_after_seconds: int = 2 * 86_400
    payout_interval_seconds: int = 86_400
    arrival_after_seconds: int = 0
    dispute_fee_minor: int = 1_500
    dispute_fee_returned_when_won: bool = False

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SimConfig:
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _half_up(value: Fraction) -> int:
    sign = -1 if value < 0 else 1
    value = abs(value)
    return sign * int((value.numerator * 2 + value.denominator) // (value.denominator * 2))


def _short(*parts: str) -> str:
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:20]


@dataclass
class Txn:
    id: str
    type: str
    reporting_category: str
    amount: int
    fee: int
    currency: str  # upper case
    created: int
    available_on: int
    source: dict[str, Any] | str | None
    exchange_rate: str | None = None
    description: str | None = None
    payout: str | None = None  # the payout that settled it

    @property
    def net(self) -> int:
        return self.amount - self.fee

    def render(self, expand_source: bool, now: int) -> dict[str, Any]:
        source = self.source
        if not expand_source and isinstance(source, dict):
            source = source.get("id")
        fee_details = (
            [
                {
                    "amount": self.fee,
                    "currency": self.currency.lower(),
                    "type": "stripe_fee",
                    "description": "Stripe processing fees",
                    "application": None,
                }
            ]
            if self.fee
            else []
        )
        return {
            "id": self.id,
            "object": "balance_transaction",
            "amount": self.amount,
            "available_on": self.available_on,
            "created": self.created,
            "currency": self.currency.lower(),
            "description": self.description,
            "exchange_rate": None if self.exchange_rate is None else float(self.exchange_rate),
            "fee": self.fee,
            "fee_details": fee_details,
            "net": self.net,
            "reporting_category": self.reporting_category,
            "source": source,
            "status": "available" if self.available_on <= now else "pending",
            "type": self.type,
        }


@dataclass
class SimPayout:
    id: str
    amount: int
    currency: str
    created: int
    arrival_date: int
    balance_transaction: str
    status: str = "in_transit"
    failure_balance_transaction: str | None = None
    failure_code: str | None = None
    txn_ids: list[str] = field(default_factory=list)  # newest first, as listed

    def render(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "payout",
            "amount": self.amount,
            "arrival_date": self.arrival_date,
            "automatic": True,
            "balance_transaction": self.balance_transaction,
            "created": self.created,
            "currency": self.currency.lower(),
            "failure_balance_transaction": self.failure_balance_transaction,
            "failure_code": self.failure_code,
            "livemode": False,
            "method": "standard",
            "status": self.status,
            "type": "bank_account",
        }


@dataclass
class SimDispute:
    id: str
    charge: dict[str, Any]
    amount: int  # in the charge's currency
    currency: str  # upper case
    reason: str
    created: int
    status: str = "needs_response"
    txn_ids: list[str] = field(default_factory=list)

    def render(self, book: Book, now: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "dispute",
            "amount": self.amount,
            "currency": self.currency.lower(),
            "charge": self.charge["id"],
            "payment_intent": self.charge.get("payment_intent"),
            "reason": self.reason,
            "status": self.status,
            "created": self.created,
            "livemode": False,
            "is_charge_refundable": False,
            "metadata": {},
            "balance_transactions": [book.txns[t].render(False, now) for t in self.txn_ids],
        }


class Book:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.txns: dict[str, Txn] = {}
        self.disputes: dict[str, SimDispute] = {}
        self.payouts: dict[str, SimPayout] = {}
        self.unsettled: list[str] = []  # txn ids not yet in a payout, in order
        self.seen_sources: set[str] = set()
        self.last_boundary: int | None = None
        # Payouts and fees are named from this instance's salt, so two simulators (two
        # test runs against one database) never name two payouts alike.
        self.salt = uuid.uuid4().hex[:8]

    # -- money coming in -------------------------------------------------------------

    def _convert(self, amount: int, currency: str) -> tuple[int, str, str | None]:
        target = self.config.settlement_currency
        if currency == target:
            return amount, target, None
        rate = self.config.exchange_rates.get(currency)
        if rate is None:
            return amount, currency, None  # settled in its own currency
        scale = Fraction(10) ** (currency_exponent(target) - currency_exponent(currency))
        settled = _half_up(Fraction(Decimal(rate)) * amount * scale)
        return settled, target, rate

    def expected_fee(self, settled: int, card_country: str | None, converted: bool) -> int:
        c = self.config
        eea = card_country in EEA
        bp = (c.eea_percent_bp if eea else c.other_percent_bp) + (c.fx_bp if converted else 0)
        fixed = c.eea_fixed_minor if eea else c.other_fixed_minor
        return _half_up(Fraction(abs(settled) * bp, 10_000)) + fixed

    def add_charge(
        self,
        charge: dict[str, Any],
        *,
        card_country: str | None,
        fee: int | None = None,
        txn_type: str = "charge",
        reporting_category: str = "charge",
    ) -> Txn | None:
        """A captured, succeeded charge (as the gateway renders it) becomes a charge
        transaction once; ``fee`` overrides the schedule (benchmarks inject with it)."""
        if charge["id"] in self.seen_sources:
            return None
        self.seen_sources.add(charge["id"])
        currency = str(charge["currency"]).upper()
        settled, settle_currency, rate = self._convert(int(charge["amount"]), currency)
        if fee is None:
            fee = self.expected_fee(settled, card_country, rate is not None)
        source = dict(charge)
        source["payment_method_details"] = {"type": "card", "card": {"country": card_country}}
        created = int(charge["created"])
        return self._add(
            Txn(
                id=f"txn_{_short('charge', charge['id'])}",
                type=txn_type,
                reporting_category=reporting_category,
                amount=settled,
                fee=fee,
                currency=settle_currency,
                created=created,
                available_on=created + self.config.available_after_seconds,
                source=source,
                exchange_rate=rate,
            )
        )

    def add_refund(self, refund: dict[str, Any]) -> Txn | None:
        if refund["id"] in self.seen_sources or refund.get("status") not in (
            "succeeded",
            "pending",
        ):
            return None
        self.seen_sources.add(refund["id"])
        currency = str(refund["currency"]).upper()
        settled, settle_currency, rate = self._convert(-int(refund["amount"]), currency)
        created = int(refund["created"])
        return self._add(
            Txn(
                id=f"txn_{_short('refund', refund['id'])}",
                type="refund",
                reporting_category="refund",
                amount=settled,
                fee=0,
                currency=settle_currency,
                created=created,
                available_on=created,
                source=dict(refund, object="refund"),
                exchange_rate=rate,
            )
        )

    def open_dispute(self, charge: dict[str, Any], reason: str, now: int) -> SimDispute:
        """The card network disputes ``charge`` (as the gateway renders it): the amount
        and the dispute fee leave the balance at once."""
        currency = str(charge["currency"]).upper()
        dispute = SimDispute(
            id=f"dp_{_short('dispute', self.salt, charge['id'], str(len(self.disputes)))}",
            charge=dict(charge),
            amount=int(charge["amount"]),
            currency=currency,
            reason=reason,
            created=now,
        )
        self.disputes[dispute.id] = dispute
        settled, settle_currency, rate = self._convert(-dispute.amount, currency)
        self._dispute_txn(
            dispute, "dispute", settled, self.config.dispute_fee_minor, settle_currency, rate, now
        )
        return dispute

    def close_dispute(self, dispute_id: str, outcome: str, now: int) -> SimDispute:
        """End the dispute ``won`` (the funds come back) or ``lost``; once."""
        dispute = self.disputes[dispute_id]
        if dispute.status in ("won", "lost"):
            return dispute
        if outcome == "won":
            settled, settle_currency, rate = self._convert(dispute.amount, dispute.currency)
            fee = -self.config.dispute_fee_minor if self.config.dispute_fee_returned_when_won else 0
            self._dispute_txn(dispute, "dispute_reversal", settled, fee, settle_currency, rate, now)
        dispute.status = outcome
        return dispute

    def _dispute_txn(
        self,
        dispute: SimDispute,
        category: str,
        amount: int,
        fee: int,
        currency: str,
        rate: str | None,
        now: int,
    ) -> Txn:
        txn = self._add(
            Txn(
                id=f"txn_{_short(category, dispute.id)}",
                type="adjustment",
                reporting_category=category,
                amount=amount,
                fee=fee,
                currency=currency,
                created=now,
                available_on=now,
                source={"id": dispute.id, "object": "dispute", "amount": dispute.amount,
                        "currency": dispute.currency.lower(), "charge": dispute.charge["id"],
                        "payment_intent": dispute.charge.get("payment_intent")},
                exchange_rate=rate,
            )
        )  # fmt: skip
        dispute.txn_ids.append(txn.id)
        return txn

    def add_fee(self, fee_id: str, amount: int, description: str, now: int) -> Txn | None:
        """A fee with no source (a monthly account fee, say), once per ``fee_id``."""
        if fee_id in self.seen_sources:
            return None
        self.seen_sources.add(fee_id)
        return self._add(
            Txn(
                id=f"txn_{_short('fee', self.salt, fee_id)}",
                type="stripe_fee",
                reporting_category="fee",
                amount=-amount,
                fee=0,
                currency=self.config.settlement_currency,
                created=now,
                available_on=now,
                source=None,
                description=description,
            )
        )

    def add_other(self, txn_id: str, txn_type: str, category: str, amount: int, now: int) -> Txn:
        """Any other balance transaction (benchmarks inject an unknown type with it)."""
        return self._add(
            Txn(
                txn_id,
                txn_type,
                category,
                amount,
                0,
                self.config.settlement_currency,
                now,
                now,
                None,
            )
        )

    def _add(self, txn: Txn) -> Txn:
        self.txns[txn.id] = txn
        self.unsettled.append(txn.id)
        return txn

    # -- payouts -----------------------------------------------------------------------

    def run_payouts(self, now: int) -> list[SimPayout]:
        """Create the automatic payouts of every boundary up to ``now``."""
        interval = self.config.payout_interval_seconds
        boundary = now - now % interval
        if self.last_boundary is not None and boundary <= self.last_boundary:
            return []
        self.last_boundary = boundary
        due: dict[str, list[Txn]] = {}
        keep: list[str] = []
        for txn_id in self.unsettled:
            txn = self.txns[txn_id]
            if txn.available_on <= boundary:
                due.setdefault(txn.currency, []).append(txn)
            else:
                keep.append(txn_id)
        made: list[SimPayout] = []
        for currency, txns in sorted(due.items()):
            total = sum(t.net for t in txns)
            if total <= 0:
                keep.extend(t.id for t in txns)  # a negative balance waits for more money
                continue
            po_id = f"po_{_short('payout', self.salt, currency, str(boundary))}"
            own = Txn(
                id=f"txn_{_short('payout', po_id)}",
                type="payout",
                reporting_category="payout",
                amount=-total,
                fee=0,
                currency=currency,
                created=boundary,
                available_on=boundary,
                source=po_id,
                payout=po_id,
            )
            self.txns[own.id] = own
            payout = SimPayout(
                po_id,
                total,
                currency,
                boundary,
                boundary + self.config.arrival_after_seconds,
                own.id,
            )
            for txn in txns:
                txn.payout = po_id
            payout.txn_ids = [own.id, *(t.id for t in reversed(txns))]
            self.payouts[po_id] = payout
            made.append(payout)
        self.unsettled = keep
        return made

    def arrive(self, now: int) -> list[SimPayout]:
        """Payouts in transit whose arrival date has come are paid."""
        paid = []
        for payout in self.payouts.values():
            if payout.status == "in_transit" and payout.arrival_date <= now:
                payout.status = "paid"
                paid.append(payout)
        return paid

    def fail_payout(self, payout_id: str, failure_code: str, now: int) -> SimPayout:
        payout = self.payouts[payout_id]
        if payout.status == "failed":
            return payout
        failure = self._add(
            Txn(
                id=f"txn_{_short('payout_failure', payout_id)}",
                type="payout_failure",
                reporting_category="payout_reversal",
                amount=payout.amount,
                fee=0,
                currency=payout.currency,
                created=now,
                available_on=now,
                source=payout_id,
            )
        )
        payout.status = "failed"
        payout.failure_code = failure_code
        payout.failure_balance_transaction = failure.id
        return payout

    # -- reads -------------------------------------------------------------------------

    def payout_page(
        self, payout_id: str, starting_after: str | None, limit: int
    ) -> tuple[list[Txn], bool]:
        ids = self.payouts[payout_id].txn_ids
        start = ids.index(starting_after) + 1 if starting_after in ids else 0
        chunk = ids[start : start + limit]
        return [self.txns[i] for i in chunk], start + limit < len(ids)

    def balance(self, now: int) -> dict[str, dict[str, int]]:
        """{currency: {"available": …, "pending": …}}: every transaction's net, payouts'
        included (a payout leaves the balance when it is created)."""
        out: dict[str, dict[str, int]] = {}
        for txn in self.txns.values():
            part = "available" if txn.available_on <= now else "pending"
            funds = out.setdefault(txn.currency, {"available": 0, "pending": 0})
            funds[part] += txn.net
        return out
