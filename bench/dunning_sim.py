"""Recovery simulation: Dunwell's dunning scheduler against a fixed retry schedule.

10,000 synthetic failed renewals are replayed twice on the same simulated world: once
driven by the real ``billing.dunning.decide`` (policy ``standard`` latest version) and
once by a fixed schedule (retry every 3 days, 4 times, whatever the decline). The
world is drawn up front from one seeded RNG, so both strategies meet the same
customers, issuers and events, and the run is deterministic.

The world (per invoice)
-----------------------
- Failure instant uniform over 120 days from 2026-01-01, any hour; customer UTC offset
  from {-480, -300, 0, 60, 330, 540} minutes; amount log-uniform 5.00-500.00 (integer
  minor units); card brand Visa 55 %, Mastercard 35 %, Amex 10 %.
- Decline mix of the first failure: insufficient_funds 40 %, do_not_honor /
  generic_decline 20 %, expired_card 10 %, processing_error / issuer_not_available 8 %,
  hard (lost, stolen, fraudulent, revocation, Visa R1, Mastercard MAC 03) 7 %,
  authentication_required 4 %, incorrect_cvc 3 %, card_velocity_exceeded 3 %, other
  soft 5 %. A third of Mastercard soft declines carry MAC 24-30 (retry after 1 h ... 10 d).
- insufficient_funds: on each pay date after the failure (1st, 15th, last business day
  of the month, customer's local calendar) money arrives with probability 0.6, at a
  local hour in [0, 8), and stays for 1-6 days. A charge succeeds with p 0.9 while money
  is there in the local morning (05:00-12:00), 0.75 at other hours, 0.03 otherwise.
- do_not_honor and other soft declines: p = 0.22 * exp(-days since failure / 8), plus
  0.08 in the first three local days after the 1st or the 15th.
- card_velocity_exceeded: p 0.05 within 24 h of the failure, 0.5 after.
- Issuer outage: the issuer is unreachable for 0.5-8 h (charges fail with
  processing_error), then p 0.85.
- Mastercard retry-after advice: charges before the advised instant fail with the same
  advice code, after it the underlying cause applies.
- expired_card / incorrect_cvc: the old card always fails the same way; the card
  updater refreshes an expired card with p 0.5 within 1-10 days, the customer adds a new
  card with p 0.3 (expired) / 0.4 (CVC) within 0.5-12 days. A new card succeeds with p 0.95.
- authentication_required: retries off-session fail the same way; the customer confirms
  on-session with p 0.45 within 0-5 days (an outside success, available to both).
- Hard declines never recover on that card.

Network-rule violations are counted independently of the scheduler: every charge made
is re-counted per card against ``billing/dunning/data/network_rules.json`` (rolling caps,
Visa never-retry codes, Mastercard stop and retry-after advice) and against the decline
classifier's hard family.

Figures: recovered revenue share (recovered amount / failed amount, integer sums),
retries per recovered invoice (charges after the first failure, immediate retries
included, divided by recovered invoices), violations per strategy.

Run: ``.venv/bin/python bench/dunning_sim.py`` (a few seconds on one core).
"""

from __future__ import annotations

import bisect
import calendar
import json
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from billing.declines import DeclineFamily, DeclineInfo, classify_decline
from billing.dunning import (
    AttemptFailed,
    AttemptSucceeded,
    CardRef,
    CardUpdaterEvent,
    Decision,
    DunningEvent,
    DunningState,
    Paused,
    PaymentMethodUpdated,
    Recovered,
    RetryAt,
    RetryNow,
    Started,
    Stop,
    TimerFired,
    WaitForCustomer,
    decide,
    policy_for,
)

SEED = 20261125
INVOICES = 10_000
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
OFFSETS = (-480, -300, 0, 60, 330, 540)
RULES_PATH = Path(__file__).resolve().parent.parent / "billing/dunning/data/network_rules.json"
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass
class Invoice:
    invoice_id: str
    amount: int
    failed_at: datetime
    offset: int
    card: CardRef
    cause: str  # insufficient_funds | soft | velocity | outage | expired | cvc | auth | hard
    first: DeclineInfo
    mac_until: datetime | None = None
    mac_code: str | None = None
    outage_until: datetime | None = None
    funds: list[tuple[datetime, datetime]] = field(default_factory=list)
    updater_at: datetime | None = None
    new_card_at: datetime | None = None
    confirm_at: datetime | None = None
    draws: list[float] = field(default_factory=list)  # per-attempt success draws


@dataclass
class Charge:
    at: datetime
    card: CardRef
    decline: DeclineInfo | None


@dataclass
class Outcome:
    recovered: bool
    charges: list[Charge]
    retries: int  # charges after the first failure, outside successes excluded


# --- the world --------------------------------------------------------------------------


def _pay_dates(first: date, last: date) -> list[date]:
    days: list[date] = []
    year, month = first.year, first.month
    while date(year, month, 1) <= last:
        candidates = [date(year, month, 1), date(year, month, 15)]
        candidates.append(date(year, month, calendar.monthrange(year, month)[1]))
        for day in candidates:
            while day.weekday() >= 5:
                day -= timedelta(days=1)
            if first <= day <= last:
                days.append(day)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return sorted(set(days))


def _pick(rng: random.Random, table: list[tuple[float, str]]) -> str:
    roll = rng.random()
    for weight, name in table:
        if roll < weight:
            return name
        roll -= weight
    return table[-1][1]


CAUSES = [
    (0.40, "insufficient_funds"),
    (0.20, "soft"),
    (0.10, "expired"),
    (0.08, "outage"),
    (0.07, "hard"),
    (0.04, "auth"),
    (0.03, "cvc"),
    (0.03, "velocity"),
    (0.05, "other_soft"),
]
HARD = (
    DeclineInfo(decline_code="lost_card"),
    DeclineInfo(decline_code="stolen_card"),
    DeclineInfo(decline_code="fraudulent"),
    DeclineInfo(decline_code="revocation_of_authorization"),
)
MAC_WAIT = {"24": HOUR, "25": DAY, "26": 2 * DAY, "27": 4 * DAY, "28": 6 * DAY, "29": 8 * DAY}


def make_invoice(rng: random.Random, index: int) -> Invoice:
    failed_at = EPOCH + timedelta(minutes=rng.randrange(120 * 24 * 60))
    offset = rng.choice(OFFSETS)
    amount = round(math.exp(rng.uniform(math.log(500), math.log(50_000))))
    brand = _pick(rng, [(0.55, "visa"), (0.35, "mastercard"), (0.10, "amex")])
    card = CardRef(f"fp_{index}", brand)
    cause = _pick(rng, CAUSES)
    invoice = Invoice(f"in_{index}", amount, failed_at, offset, card, cause, DeclineInfo())
    if cause == "insufficient_funds":
        invoice.first = DeclineInfo(decline_code="insufficient_funds")
        local = (failed_at + timedelta(minutes=offset)).date()
        for day in _pay_dates(local + DAY, local + timedelta(days=40)):
            if rng.random() < 0.6:
                arrive = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
                    hours=rng.uniform(0, 8), minutes=-offset
                )
                invoice.funds.append((arrive, arrive + timedelta(days=rng.uniform(1, 6))))
    elif cause in ("soft", "other_soft"):
        code = "do_not_honor" if rng.random() < 0.5 else "generic_decline"
        invoice.first = DeclineInfo(decline_code=code if cause == "soft" else "call_issuer")
    elif cause == "velocity":
        invoice.first = DeclineInfo(decline_code="card_velocity_exceeded")
    elif cause == "outage":
        code = "processing_error" if rng.random() < 0.5 else "issuer_not_available"
        invoice.first = DeclineInfo(decline_code=code)
        invoice.outage_until = failed_at + timedelta(hours=rng.uniform(0.5, 8))
    elif cause == "expired":
        invoice.first = DeclineInfo(decline_code="expired_card")
        if rng.random() < 0.5:
            invoice.updater_at = failed_at + timedelta(days=rng.uniform(1, 10))
        if rng.random() < 0.3:
            invoice.new_card_at = failed_at + timedelta(days=rng.uniform(0.5, 12))
    elif cause == "cvc":
        invoice.first = DeclineInfo(decline_code="incorrect_cvc")
        if rng.random() < 0.4:
            invoice.new_card_at = failed_at + timedelta(days=rng.uniform(0.5, 12))
    elif cause == "auth":
        invoice.first = DeclineInfo(code="authentication_required")
        if rng.random() < 0.45:
            invoice.confirm_at = failed_at + timedelta(days=rng.uniform(0, 5))
    else:
        roll = rng.random()
        if brand == "visa" and roll < 0.2:
            invoice.first = DeclineInfo(decline_code="do_not_honor", network_decline_code="R1")
        elif brand == "mastercard" and roll < 0.2:
            invoice.first = DeclineInfo(decline_code="do_not_honor", network_advice_code="03")
        else:
            invoice.first = rng.choice(HARD)
    if brand == "mastercard" and cause in ("insufficient_funds", "soft") and rng.random() < 1 / 3:
        invoice.mac_code = rng.choice(sorted(MAC_WAIT))
        invoice.mac_until = failed_at + MAC_WAIT[invoice.mac_code]
        invoice.first = DeclineInfo(
            decline_code=invoice.first.decline_code, network_advice_code=invoice.mac_code
        )
    invoice.draws = [rng.random() for _ in range(64)]
    return invoice


class World:
    """Answers charges for one invoice; the n-th charge uses the n-th pre-drawn number."""

    def __init__(self, invoice: Invoice) -> None:
        self.invoice = invoice
        self.charges = 0

    def charge(self, card: CardRef, at: datetime) -> DeclineInfo | None:
        inv = self.invoice
        draw = inv.draws[self.charges % len(inv.draws)]
        self.charges += 1
        if card.fingerprint != inv.card.fingerprint:  # a new or refreshed card
            return None if draw < 0.95 else DeclineInfo(decline_code="do_not_honor")
        if inv.cause in ("expired", "cvc", "auth", "hard"):
            return inv.first
        if inv.mac_until is not None and at < inv.mac_until:
            return inv.first
        days = (at - inv.failed_at) / DAY
        local = at + timedelta(minutes=inv.offset)
        if inv.cause == "insufficient_funds":
            funded = any(start <= at < end for start, end in inv.funds)
            morning = 5 <= local.hour < 12
            p = (0.9 if morning else 0.75) if funded else 0.03
        elif inv.cause == "velocity":
            p = 0.5 if days >= 1 else 0.05
        elif inv.cause == "outage":
            assert inv.outage_until is not None
            if at < inv.outage_until:
                return inv.first
            p = 0.85
        else:
            p = 0.22 * math.exp(-days / 8)
            if local.day in (1, 2, 3, 15, 16, 17):
                p += 0.08
        if draw < p:
            return None
        return DeclineInfo(decline_code=inv.first.decline_code or "do_not_honor")

    def customer_events(self) -> list[tuple[datetime, str]]:
        inv = self.invoice
        events = [
            (inv.updater_at, "updater"),
            (inv.new_card_at, "new_card"),
            (inv.confirm_at, "confirm"),
        ]
        return sorted((at, kind) for at, kind in events if at is not None)


def _refreshed(card: CardRef, kind: str) -> CardRef:
    return CardRef(f"{card.fingerprint}_{kind}", card.brand)


# --- strategies ---------------------------------------------------------------------------


def run_dunwell(invoice: Invoice, rng: random.Random) -> Outcome:
    world = World(invoice)
    policy = policy_for("pro_monthly", "smb")
    now = invoice.failed_at
    charges = [Charge(now, invoice.card, invoice.first)]
    started = Started(
        invoice.invoice_id, invoice.amount, "USD", invoice.card, invoice.offset, now, policy,
        invoice.first,
    )  # fmt: skip
    state, decision = decide(None, started, now, rng.random())
    pending = world.customer_events()
    retries = 0
    while True:
        if isinstance(decision, Recovered):
            return Outcome(True, charges, retries)
        if isinstance(decision, Stop):
            return Outcome(False, charges, retries)
        event: DunningEvent
        if isinstance(decision, RetryNow):
            card = state.card
            result = world.charge(card, now)
            charges.append(Charge(now, card, result))
            retries += 1
            event = AttemptSucceeded(now) if result is None else AttemptFailed(now, result)
        else:
            due = _due(decision)
            if pending and (due is None or pending[0][0] < due):
                now, kind = pending.pop(0)
                event = _customer_event(state, kind, now)
                if isinstance(event, AttemptSucceeded):
                    charges.append(Charge(now, state.card, None))
            elif due is not None:
                now = max(now, due)
                event = TimerFired(now)
            else:
                return Outcome(False, charges, retries)
        state, decision = decide(state, event, now, rng.random())


def _customer_event(state: DunningState, kind: str, at: datetime) -> DunningEvent:
    if kind == "confirm":  # on-session 3-D Secure confirmation by the customer
        return AttemptSucceeded(at)
    card = _refreshed(state.card, kind)
    return CardUpdaterEvent(at, card) if kind == "updater" else PaymentMethodUpdated(card, at)


def _due(decision: Decision) -> datetime | None:
    if isinstance(decision, RetryAt):
        return decision.when
    if isinstance(decision, WaitForCustomer):
        return decision.deadline
    if isinstance(decision, Paused):
        return decision.until
    return None


def run_fixed(invoice: Invoice, _rng: random.Random) -> Outcome:
    """Retry every 3 days, 4 times, on whatever card is on file; no other logic."""
    world = World(invoice)
    card = invoice.card
    charges = [Charge(invoice.failed_at, card, invoice.first)]
    pending = world.customer_events()
    retries = 0
    for k in range(1, 5):
        at = invoice.failed_at + timedelta(days=3 * k)
        while pending and pending[0][0] <= at:
            when, kind = pending.pop(0)
            if kind == "confirm":
                charges.append(Charge(when, card, None))
                return Outcome(True, charges, retries)
            card = _refreshed(card, kind)
        result = world.charge(card, at)
        charges.append(Charge(at, card, result))
        retries += 1
        if result is None:
            return Outcome(True, charges, retries)
    return Outcome(False, charges, retries)


# --- independent rule check ---------------------------------------------------------------


def load_rule_tables() -> dict[str, dict[str, object]]:
    raw = json.loads(RULES_PATH.read_text("utf-8"))
    return dict(raw["brands"])


def count_violations(charges: list[Charge], tables: dict[str, dict[str, object]]) -> int:
    """Re-count one invoice's charges per card against the network rule tables."""
    violations = 0
    by_card: dict[str, list[Charge]] = {}
    for charge in charges:
        by_card.setdefault(charge.card.fingerprint, []).append(charge)
    for card_charges in by_card.values():
        brand = card_charges[0].card.brand
        table = tables.get(brand, tables["default"])
        never = set(table["never_retry_network_decline_codes"])  # type: ignore[call-overload]
        stop = set(table["stop_advice_codes"])  # type: ignore[call-overload]
        waits = table["retry_after_advice_codes_minutes"]
        blocked_at: datetime | None = None
        not_before: datetime | None = None
        for charge in card_charges:
            if blocked_at is not None or (not_before is not None and charge.at < not_before):
                violations += 1
            decline = charge.decline
            if decline is None:
                continue
            family = classify_decline(replace(decline, card_brand=brand)).family
            hard = (
                family is DeclineFamily.HARD
                or (decline.network_decline_code or "") in never
                or decline.network_advice_code in stop
            )
            if hard and blocked_at is None:
                blocked_at = charge.at
            wait = waits.get(decline.network_advice_code or "")  # type: ignore[attr-defined]
            if wait is not None:
                not_before = charge.at + timedelta(minutes=wait)
        times = sorted(c.at for c in card_charges)
        for cap in table["rolling_caps"]:  # type: ignore[attr-defined]
            window = timedelta(minutes=cap["window_minutes"])
            violations += _excess_in_windows(times, window, cap["max_attempts"])
    return violations


def _excess_in_windows(times: list[datetime], window: timedelta, cap: int) -> int:
    # Charges that were the (cap+1)-th or later inside some window [s, s + window).
    excess = 0
    for end, t in enumerate(times):
        start = bisect.bisect_right(times, t - window)
        if end - start + 1 > cap:
            excess += 1
    return excess


# --- report -------------------------------------------------------------------------------


@dataclass
class Totals:
    amount: int = 0
    recovered_amount: int = 0
    recovered: int = 0
    retries: int = 0
    violations: int = 0
    by_cause: dict[str, list[int]] = field(default_factory=dict)  # cause -> [recovered, total]

    def add(self, invoice: Invoice, outcome: Outcome, violations: int) -> None:
        counts = self.by_cause.setdefault(invoice.cause, [0, 0])
        counts[0] += outcome.recovered
        counts[1] += 1
        self.amount += invoice.amount
        self.retries += outcome.retries
        self.violations += violations
        if outcome.recovered:
            self.recovered += 1
            self.recovered_amount += invoice.amount

    @property
    def share(self) -> float:
        return self.recovered_amount / self.amount

    @property
    def retries_per_recovery(self) -> float:
        return self.retries / max(1, self.recovered)


def simulate(
    strategy: Callable[[Invoice, random.Random], Outcome],
    invoices: list[Invoice],
    tables: dict[str, dict[str, object]],
) -> Totals:
    totals = Totals()
    jitter = random.Random(SEED + 1)
    for invoice in invoices:
        outcome = strategy(invoice, jitter)
        totals.add(invoice, outcome, count_violations(outcome.charges, tables))
    return totals


def main() -> None:
    began = time.perf_counter()
    rng = random.Random(SEED)
    invoices = [make_invoice(rng, i) for i in range(INVOICES)]
    tables = load_rule_tables()
    ours = simulate(run_dunwell, invoices, tables)
    fixed = simulate(run_fixed, invoices, tables)
    print(f"invoices: {INVOICES}, seed {SEED}, policy {policy_for('pro_monthly', 'smb').key}")
    for name, totals in (("dunwell", ours), ("fixed 4x3d", fixed)):
        print(
            f"{name:>11}: recovered {totals.recovered:5d} invoices, "
            f"revenue share {totals.share:.4f}, retries/recovery {totals.retries_per_recovery:.2f}, "
            f"network-rule violations {totals.violations}"
        )
    print("recovered invoices by first-decline cause (dunwell / fixed of total):")
    for cause in sorted(ours.by_cause):
        (won, total), (base, _) = ours.by_cause[cause], fixed.by_cause[cause]
        print(f"  {cause:>18}: {won:5d} / {base:5d} of {total:5d}")
    print(f"elapsed: {time.perf_counter() - began:.1f} s")
    print(
        json.dumps(
            {
                "recovered_share": round(ours.share, 4),
                "baseline_recovered_share": round(fixed.share, 4),
                "attempts_per_recovery": round(ours.retries_per_recovery, 3),
                "violations": ours.violations,
                "baseline_violations": fixed.violations,
            }
        )
    )


if __name__ == "__main__":
    main()
