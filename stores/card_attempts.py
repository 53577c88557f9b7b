"""The card attempt ledger: every charge on a card, from every charge path, and the
card's block (table made by revision ``0017_card_attempts``).

Network caps are per card, across invoices and subscriptions: a customer with two
subscriptions on one card gets one card's allowance, and a hard decline (a Visa
Category 1 code, a Mastercard MAC 03/21, a lost or closed card) on one invoice blocks
the card for all of them. A dunning retry ``reserve``s its attempt before it reaches the
gateway: under the card's ``card_facts`` row lock it checks the block and the caps over
every recorded attempt on the card and, if allowed, records the attempt as pending, so
two runs racing for the card's last allowed attempt get one between them. The outcome is
``settle``d once the gateway answers. Renewal, plan-change and on-session charges are
``record``ed when their outcome is known, so the caps a retry checks count them too.

A card is known by its fingerprint when the caller has it (``fp:…``), else by its
payment method (``pm:…``), within its gateway customer; a reservation counts the
attempts under both. Scoped by customer because every subscription of a customer
charges that customer's payment methods; the same card saved by two different customers
(rare) is counted once per customer.

Repository functions take an open ``Connection`` and never commit: the caller owns the
transaction (``CardAttemptLedger`` runs one per call).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Connection, Engine, select, update

from billing.declines import DeclineFamily, DeclineInfo, classify_decline
from billing.dunning.network_rules import (
    CardAttempt,
    earliest_allowed,
    forbids_retry,
    network_rules,
)
from ledger.db import insert_or_ignore
from stores.tables import card_attempts as _a
from stores.tables import card_facts as _f

# The longest rolling cap (30 days) with a day to spare.
LOOKBACK = timedelta(days=31)
Outcome = Literal["succeeded", "declined"]
Recorded = Literal["succeeded", "declined", "pending"]  # pending: the gateway is processing


@dataclass(frozen=True)
class CardCharge:
    """One charge on a card: the key it goes to the gateway under, and whose it is."""

    attempt_key: str
    customer_id: str  # the gateway customer
    payment_method_id: str
    brand: str
    invoice_id: str
    subscription_id: str | None
    path: str  # dunning | renewal | plan_change | on_session
    at: datetime
    fingerprint: str | None = None

    @property
    def card_key(self) -> str:
        if self.fingerprint:
            return f"{self.customer_id}:fp:{self.fingerprint}"
        return self._pm_key

    @property
    def _pm_key(self) -> str:
        return f"{self.customer_id}:pm:{self.payment_method_id}"

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.card_key, self._pm_key)))


@dataclass(frozen=True)
class Refusal:
    """The charge must not reach the gateway: the card is blocked (``not_before`` None)
    or the card's caps allow the next attempt only at ``not_before``."""

    reason: str
    not_before: datetime | None = None


def reserve(conn: Connection, charge: CardCharge) -> Refusal | None:
    """Check the card's block and caps and record the attempt as pending; a Refusal
    instead when the charge must not be made. A charge that already holds its attempt
    (the same key: an activity retry) is allowed again."""
    conn.execute(
        insert_or_ignore(conn, _f)
        .values(card_key=charge.card_key, brand=charge.brand)
        .on_conflict_do_nothing(index_elements=["card_key"])
    )
    lock = select(_f.c.card_key).where(_f.c.card_key == charge.card_key)
    if conn.dialect.name == "postgresql":
        lock = lock.with_for_update()
    conn.execute(lock).one()
    held = conn.execute(select(_a.c.id).where(_a.c.attempt_key == charge.attempt_key)).first()
    if held is not None:
        return None
    block = conn.execute(
        select(_f.c.block_reason).where(
            _f.c.card_key.in_(charge.keys), _f.c.blocked_at.is_not(None)
        )
    ).first()
    if block is not None:
        return Refusal(str(block.block_reason))
    rules = network_rules().for_brand(charge.brand)
    earliest = earliest_allowed(rules, history(conn, charge), charge.at)
    if earliest is None:
        return Refusal("network_rule")
    if earliest > charge.at:
        return Refusal("network_cap", earliest)
    _insert(conn, charge, "pending", None)
    return None


def settle(
    conn: Connection, charge: CardCharge, outcome: Outcome, decline: DeclineInfo | None
) -> None:
    """The gateway's answer to a reserved attempt (recorded now if it was never reserved)."""
    found = conn.execute(select(_a.c.id).where(_a.c.attempt_key == charge.attempt_key)).first()
    if found is None:
        _insert(conn, charge, outcome, decline)
    else:
        conn.execute(
            update(_a)
            .where(_a.c.attempt_key == charge.attempt_key)
            .values(outcome=outcome, **_codes(decline))
        )
    if decline is not None and _blocks(decline, charge.brand):
        block(conn, charge, reason=decline.decline_code or decline.code or "hard_decline")


def record(
    conn: Connection, charge: CardCharge, outcome: Recorded, decline: DeclineInfo | None
) -> None:
    """A charge made by another path, recorded once under its key."""
    conn.execute(
        insert_or_ignore(conn, _a)
        .values(**_row(charge, outcome, decline))
        .on_conflict_do_nothing(index_elements=["attempt_key"])
    )
    if decline is not None and _blocks(decline, charge.brand):
        block(conn, charge, reason=decline.decline_code or decline.code or "hard_decline")


def block(conn: Connection, charge: CardCharge, *, reason: str) -> None:
    """Block the card for every invoice (the first block's facts stay)."""
    for key in charge.keys:
        conn.execute(
            insert_or_ignore(conn, _f)
            .values(card_key=key, brand=charge.brand)
            .on_conflict_do_nothing(index_elements=["card_key"])
        )
        conn.execute(
            update(_f)
            .where(_f.c.card_key == key, _f.c.blocked_at.is_(None))
            .values(blocked_at=charge.at, block_reason=reason, blocked_by_invoice=charge.invoice_id)
        )


def history(conn: Connection, charge: CardCharge) -> list[CardAttempt]:
    """The card's attempts within the longest cap window before the charge, any path:
    those under its fingerprint and those under its payment method."""
    rows = conn.execute(
        select(_a.c.at, _a.c.network_decline_code, _a.c.network_advice_code).where(
            _a.c.card_key.in_(charge.keys), _a.c.at > charge.at - LOOKBACK
        )
    ).all()
    return [CardAttempt(r.at, r.network_decline_code, r.network_advice_code) for r in rows]


def is_blocked(conn: Connection, charge: CardCharge) -> bool:
    found = conn.execute(
        select(_f.c.card_key).where(_f.c.card_key.in_(charge.keys), _f.c.blocked_at.is_not(None))
    ).first()
    return found is not None


def _blocks(decline: DeclineInfo, brand: str) -> bool:
    info = decline if decline.card_brand else replace(decline, card_brand=brand)
    attempt = CardAttempt(datetime.min, info.network_decline_code, info.network_advice_code)
    return classify_decline(info).family is DeclineFamily.HARD or forbids_retry(
        network_rules().for_brand(brand), attempt
    )


def _codes(decline: DeclineInfo | None) -> dict[str, str | None]:
    if decline is None:
        return {"decline_code": None, "network_decline_code": None, "network_advice_code": None}
    return {
        "decline_code": decline.decline_code or decline.code,
        "network_decline_code": decline.network_decline_code,
        "network_advice_code": decline.network_advice_code,
    }


def _row(charge: CardCharge, outcome: str, decline: DeclineInfo | None) -> dict[str, object]:
    return {
        "attempt_key": charge.attempt_key,
        "card_key": charge.card_key,
        "payment_method_id": charge.payment_method_id,
        "brand": charge.brand,
        "invoice_id": charge.invoice_id,
        "subscription_id": charge.subscription_id,
        "path": charge.path,
        "at": charge.at,
        "outcome": outcome,
        **_codes(decline),
    }


def _insert(
    conn: Connection, charge: CardCharge, outcome: str, decline: DeclineInfo | None
) -> None:
    conn.execute(_a.insert().values(**_row(charge, outcome, decline)))


class CardAttemptLedger:
    """The ledger with one transaction per call, for activities (run in a thread)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def reserve(self, charge: CardCharge) -> Refusal | None:
        with self._engine.begin() as conn:
            return reserve(conn, charge)

    def settle(self, charge: CardCharge, outcome: Outcome, decline: DeclineInfo | None) -> None:
        with self._engine.begin() as conn:
            settle(conn, charge, outcome, decline)

    def record(
        self,
        charge: CardCharge,
        outcome: Recorded,
        decline: DeclineInfo | None,
    ) -> None:
        with self._engine.begin() as conn:
            record(conn, charge, outcome, decline)
