"""The simulated world of bench/dunning_sim.py: customers, their cards, and what the
issuer answers to a charge at a given instant. It knows nothing of any retry strategy.

Sources, and what is an assumption
----------------------------------
Published (structure and rules):

- Card-network rules: Visa Excessive Reattempts (Category 1 never retry; 15 attempts
  per card in 30 days), Mastercard Merchant Advice Codes (03/21 stop, 24-30 retry after
  1 h ... 10 days) and its excessive-attempts limits (10 in 24 h, 35 in 30 days); the
  tables in ``billing/dunning/data/network_rules.json`` name their sources.
- Decline families (insufficient funds, do not honor / generic, expired card, incorrect
  CVC, authentication required, processing error / issuer unavailable, lost / stolen /
  pick-up / closed): Stripe's decline code reference (stripe.com/docs/declines/codes).
  Insufficient funds is the most common reason a recurring charge is declined (Stripe,
  Recurly and Chargebee recovery guides all say so); the exact mix below is an
  ASSUMPTION in that spirit.
- Pay frequency of US private-sector employees (BLS, "Length of pay periods in the
  Current Employment Statistics survey", Monthly Labor Review, 2014; CES 2019 update):
  biweekly about 43 %, weekly 27 %, semimonthly 20 %, monthly 10 %. Money for an
  insufficient-funds card arrives on the customer's pay dates, local time, before 08:00.
- Card updaters (Visa Account Updater, Mastercard Automatic Billing Updater) deliver
  updates in batches; Stripe sends ``payment_method.automatically_updated`` when one
  lands. The batch arrives at night, 01:00-05:00 local (ASSUMPTION for the hour).
- Stripe's recommended Smart Retries default: 8 tries within 2 weeks
  (stripe.com/docs/billing/revenue-recovery/smart-retries); the smart baseline's days
  1, 2, 3, 5, 7, 9, 11 and 14 spread 8 tries over 2 weeks (issue 16).

ASSUMPTIONS (the least certain values vary across the three settings below):

- approval falls at night (01:00-05:00 local): a charge's approval chance is multiplied
  by ``night_factor`` (issuer fraud rules and nightly batch windows; no public figure);
- ``funds_probability``: chance that money arrives on each pay date;
- ``new_card_after_hard``: share of customers whose card was lost, stolen or closed who
  add a new card within 1-10 days (their replacement card exists; they must enter it);
- ``long_outage_share``: share of issuer outages that last 12-36 h instead of 0.5-12 h;
- ``soft_base``: day-0 approval of a retried generic soft decline, decaying with an
  8-day time constant, with a bump after the 1st and 15th;
- ``updater_share``: share of expired cards the updater refreshes within 1-10 days;
- 12 % of customers have two subscriptions on one card, both renewals failing 0-3 days
  apart with the same cause; a new card or an on-session confirmation serves both.
"""

from __future__ import annotations

import calendar
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from billing.declines import DeclineInfo
from billing.dunning import CardRef

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
OFFSETS = (-480, -300, -180, 0, 60, 120, 330, 540, 600)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
NIGHT = range(1, 5)
TWO_SUBSCRIPTIONS = 0.12


@dataclass(frozen=True)
class Setting:
    name: str
    night_factor: float
    funds_probability: float
    new_card_after_hard: float
    long_outage_share: float
    soft_base: float
    updater_share: float


# Pessimistic: the values least favourable to recovery and to what Dunwell changes
# (little night penalty, few new cards after a hard decline, few long outages).
SETTINGS = (
    Setting("pessimistic", 0.90, 0.45, 0.15, 0.05, 0.16, 0.35),
    Setting("central", 0.75, 0.60, 0.30, 0.15, 0.22, 0.50),
    Setting("optimistic", 0.55, 0.75, 0.45, 0.30, 0.28, 0.65),
)

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
    DeclineInfo(decline_code="pickup_card"),
    DeclineInfo(decline_code="revocation_of_authorization"),
)
MAC_WAIT = {"24": HOUR, "25": DAY, "26": 2 * DAY, "27": 4 * DAY, "28": 6 * DAY, "29": 8 * DAY}
PAY_CYCLES = [(0.43, "biweekly"), (0.27, "weekly"), (0.20, "semimonthly"), (0.10, "monthly")]


@dataclass(frozen=True)
class Renewal:
    invoice_id: str
    amount: int  # minor units
    failed_at: datetime


@dataclass
class Account:
    """One customer and card; one or two renewals failed on it."""

    account_id: str
    card: CardRef
    offset: int  # minutes east of UTC
    cause: str
    first: DeclineInfo
    renewals: list[Renewal]
    mac_until: datetime | None = None
    outage_until: datetime | None = None
    funds: list[tuple[datetime, datetime]] = field(default_factory=list)
    updater_at: datetime | None = None
    new_card_at: datetime | None = None
    confirm_at: datetime | None = None
    draws: list[float] = field(default_factory=list)

    def customer_events(self) -> list[tuple[datetime, str]]:
        events = [
            (self.updater_at, "updater"),
            (self.new_card_at, "new_card"),
            (self.confirm_at, "confirm"),
        ]
        return sorted((at, kind) for at, kind in events if at is not None)


def _pick(rng: random.Random, table: list[tuple[float, str]]) -> str:
    roll = rng.random()
    for weight, name in table:
        if roll < weight:
            return name
        roll -= weight
    return table[-1][1]


def pay_dates(cycle: str, first: date, last: date, rng: random.Random) -> list[date]:
    if cycle in ("weekly", "biweekly"):
        step = 7 if cycle == "weekly" else 14
        friday = first + timedelta(days=(4 - first.weekday()) % 7)
        friday += timedelta(days=7 * rng.randrange(step // 7))  # which biweekly Friday
        days = []
        while friday <= last:
            days.append(friday)
            friday += timedelta(days=step)
        return days
    found: list[date] = []
    year, month = first.year, first.month
    while date(year, month, 1) <= last:
        end = date(year, month, calendar.monthrange(year, month)[1])
        candidates = [date(year, month, 15), end] if cycle == "semimonthly" else [end]
        for day in candidates:
            while day.weekday() >= 5:
                day -= timedelta(days=1)
            if first <= day <= last:
                found.append(day)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def make_account(rng: random.Random, index: int, setting: Setting) -> Account:
    failed_at = EPOCH + timedelta(minutes=rng.randrange(120 * 24 * 60))
    offset = rng.choice(OFFSETS)
    brand = _pick(rng, [(0.55, "visa"), (0.35, "mastercard"), (0.10, "amex")])
    card = CardRef(f"fp_{index}", brand)
    renewals = [Renewal(f"in_{index}_a", _amount(rng), failed_at)]
    if rng.random() < TWO_SUBSCRIPTIONS:
        later = failed_at + timedelta(minutes=rng.randrange(3 * 24 * 60))
        renewals.append(Renewal(f"in_{index}_b", _amount(rng), later))
    cause = _pick(rng, CAUSES)
    account = Account(f"acct_{index}", card, offset, cause, DeclineInfo(), renewals)
    if cause == "insufficient_funds":
        account.first = DeclineInfo(decline_code="insufficient_funds")
        local = (failed_at + timedelta(minutes=offset)).date()
        cycle = _pick(rng, PAY_CYCLES)
        for day in pay_dates(cycle, local + DAY, local + timedelta(days=40), rng):
            if rng.random() < setting.funds_probability:
                arrive = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
                    hours=rng.uniform(0, 8), minutes=-offset
                )
                account.funds.append((arrive, arrive + timedelta(days=rng.uniform(1, 6))))
    elif cause in ("soft", "other_soft"):
        code = "do_not_honor" if rng.random() < 0.5 else "generic_decline"
        account.first = DeclineInfo(decline_code=code if cause == "soft" else "call_issuer")
    elif cause == "velocity":
        account.first = DeclineInfo(decline_code="card_velocity_exceeded")
    elif cause == "outage":
        code = "processing_error" if rng.random() < 0.5 else "issuer_not_available"
        account.first = DeclineInfo(decline_code=code)
        hours = (
            rng.uniform(12, 36)
            if rng.random() < setting.long_outage_share
            else rng.uniform(0.5, 12)
        )
        account.outage_until = failed_at + timedelta(hours=hours)
    elif cause == "expired":
        account.first = DeclineInfo(decline_code="expired_card")
        if rng.random() < setting.updater_share:
            account.updater_at = _nightly(
                failed_at + timedelta(days=rng.uniform(1, 10)), offset, rng
            )
        if rng.random() < 0.3:
            account.new_card_at = failed_at + timedelta(days=rng.uniform(0.5, 12))
    elif cause == "cvc":
        account.first = DeclineInfo(decline_code="incorrect_cvc")
        if rng.random() < 0.4:
            account.new_card_at = failed_at + timedelta(days=rng.uniform(0.5, 12))
    elif cause == "auth":
        account.first = DeclineInfo(code="authentication_required")
        if rng.random() < 0.45:
            account.confirm_at = failed_at + timedelta(days=rng.uniform(0, 5))
    else:
        roll = rng.random()
        if brand == "visa" and roll < 0.2:
            account.first = DeclineInfo(decline_code="do_not_honor", network_decline_code="R1")
        elif brand == "mastercard" and roll < 0.2:
            account.first = DeclineInfo(decline_code="do_not_honor", network_advice_code="03")
        else:
            account.first = rng.choice(HARD)
        if rng.random() < setting.new_card_after_hard:
            account.new_card_at = failed_at + timedelta(days=rng.uniform(1, 10))
    if brand == "mastercard" and cause in ("insufficient_funds", "soft") and rng.random() < 1 / 3:
        mac = rng.choice(sorted(MAC_WAIT))
        account.mac_until = failed_at + MAC_WAIT[mac]
        account.first = DeclineInfo(
            decline_code=account.first.decline_code, network_advice_code=mac
        )
    account.draws = [rng.random() for _ in range(96)]
    return account


def _amount(rng: random.Random) -> int:
    return round(math.exp(rng.uniform(math.log(500), math.log(50_000))))


def _nightly(around: datetime, offset: int, rng: random.Random) -> datetime:
    """The updater's nightly batch: 01:00-05:00 local on the night before ``around``."""
    local = around + timedelta(minutes=offset)
    night = datetime(local.year, local.month, local.day, tzinfo=UTC) + timedelta(
        hours=rng.uniform(1, 5)
    )
    return night - timedelta(minutes=offset)


def refreshed(card: CardRef, kind: str) -> CardRef:
    return CardRef(f"{card.fingerprint}_{kind}", card.brand)


class World:
    """Answers charges on one account's cards; the n-th charge uses the n-th draw."""

    def __init__(self, account: Account, setting: Setting) -> None:
        self.account = account
        self.setting = setting
        self.charges = 0

    def charge(self, card: CardRef, at: datetime) -> DeclineInfo | None:
        acct = self.account
        draw = acct.draws[self.charges % len(acct.draws)]
        self.charges += 1
        local = at + timedelta(minutes=acct.offset)
        night = self.setting.night_factor if local.hour in NIGHT else 1.0
        if card.fingerprint != acct.card.fingerprint:  # a new or refreshed card
            return None if draw < 0.95 * night else DeclineInfo(decline_code="do_not_honor")
        if acct.cause in ("expired", "cvc", "auth", "hard"):
            return acct.first
        if acct.mac_until is not None and at < acct.mac_until:
            return acct.first
        days = (at - acct.renewals[0].failed_at) / DAY
        if acct.cause == "insufficient_funds":
            funded = any(start <= at < end for start, end in acct.funds)
            p = 0.85 if funded else 0.03
        elif acct.cause == "velocity":
            p = 0.5 if days >= 1 else 0.05
        elif acct.cause == "outage":
            assert acct.outage_until is not None
            if at < acct.outage_until:
                return acct.first
            p = 0.85
        else:
            p = self.setting.soft_base * math.exp(-days / 8)
            if local.day in (1, 2, 3, 15, 16, 17):
                p += 0.08
        if draw < p * night:
            return None
        return DeclineInfo(decline_code=acct.first.decline_code or "do_not_honor")
