"""The card attempt ledger on PostgreSQL (``stores.card_attempts``): blocks and caps per
card across invoices, every charge path counted, and two runs racing for a card's last
allowed attempt get one between them."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, MetaData, func, select

from billing.declines import DeclineInfo
from stores import card_attempts as ledger
from stores.card_attempts import CardAttemptLedger, CardCharge, Refusal
from stores.tables import card_attempts, card_facts

AT = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
SOFT = DeclineInfo(decline_code="do_not_honor")


def _charge(
    customer: str,
    key: str,
    at: datetime,
    *,
    invoice: str = "in_a",
    brand: str = "visa",
    fingerprint: str | None = "fp_card",
    pm: str = "pm_card",
    path: str = "dunning",
) -> CardCharge:
    return CardCharge(key, customer, pm, brand, invoice, "sub_x", path, at, fingerprint)


def _customer() -> str:
    return f"cus_{uuid.uuid4().hex[:12]}"


def test_the_revision_makes_exactly_the_described_tables(dunning_engine: Engine) -> None:
    described = MetaData()
    for table in (card_attempts, card_facts):
        table.to_metadata(described)
    with dunning_engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), described
        )
    assert [d for d in diff if "card_" in repr(d)] == []


def test_a_hard_decline_on_one_invoice_blocks_the_card_for_the_others(
    dunning_engine: Engine,
) -> None:
    cards, customer = CardAttemptLedger(dunning_engine), _customer()
    first = _charge(customer, f"{customer}:a:1", AT, invoice="in_a")
    assert cards.reserve(first) is None
    cards.settle(first, "declined", DeclineInfo(decline_code="lost_card"))
    other = _charge(customer, f"{customer}:b:1", AT + timedelta(days=1), invoice="in_b")
    assert cards.reserve(other) == Refusal("lost_card")
    # The same card under its payment method only (a renewal knows no fingerprint).
    by_pm = _charge(customer, f"{customer}:c:1", AT + timedelta(days=1), fingerprint=None)
    assert cards.reserve(by_pm) == Refusal("lost_card")
    # Another customer's card with the same number is not this customer's block.
    stranger = _customer()
    assert cards.reserve(_charge(stranger, f"{stranger}:a:1", AT)) is None


def test_a_mastercard_mac_03_on_a_renewal_blocks_the_card_for_dunning(
    dunning_engine: Engine,
) -> None:
    cards, customer = CardAttemptLedger(dunning_engine), _customer()
    renewal = _charge(customer, f"{customer}:r:1", AT, fingerprint=None, path="renewal")
    mac_03 = DeclineInfo(decline_code="do_not_honor", network_advice_code="03")
    cards.record(renewal, "declined", mac_03)
    retry = _charge(customer, f"{customer}:d:1", AT + timedelta(days=1), brand="mastercard")
    refusal = cards.reserve(retry)
    # The renewal did not know the brand; the retry's Mastercard rules read the advice.
    assert refusal is not None and refusal.not_before is None


def test_visa_caps_count_every_invoice_and_path_on_the_card(dunning_engine: Engine) -> None:
    cards, customer = CardAttemptLedger(dunning_engine), _customer()
    for n in range(10):  # renewals and plan changes, known by payment method
        charge = _charge(
            customer, f"{customer}:r:{n}", AT + timedelta(hours=n), fingerprint=None, path="renewal"
        )
        cards.record(charge, "declined", SOFT)
    for n in range(5):  # the other invoice's dunning retries
        charge = _charge(customer, f"{customer}:a:{n}", AT + timedelta(days=1, hours=n))
        assert cards.reserve(charge) is None
        cards.settle(charge, "declined", SOFT)
    sixteenth = _charge(customer, f"{customer}:b:1", AT + timedelta(days=2), invoice="in_b")
    assert cards.reserve(sixteenth) == Refusal("network_cap", AT + timedelta(days=30))
    later = _charge(customer, f"{customer}:b:1", AT + timedelta(days=30, minutes=1))
    assert cards.reserve(later) is None


def test_a_retried_activity_keeps_its_reservation(dunning_engine: Engine) -> None:
    cards, customer = CardAttemptLedger(dunning_engine), _customer()
    charge = _charge(customer, f"{customer}:a:1", AT)
    assert cards.reserve(charge) is None
    assert cards.reserve(charge) is None  # the same key: the same attempt
    with dunning_engine.connect() as conn:
        rows = conn.execute(
            select(func.count())
            .select_from(card_attempts)
            .where(card_attempts.c.attempt_key == charge.attempt_key)
        ).scalar_one()
    assert rows == 1


def test_runs_racing_for_the_last_allowed_attempt_get_one(dunning_engine: Engine) -> None:
    cards, customer = CardAttemptLedger(dunning_engine), _customer()
    for n in range(14):
        charge = _charge(customer, f"{customer}:a:{n}", AT + timedelta(hours=n))
        assert cards.reserve(charge) is None
    now = AT + timedelta(days=1)
    racers = [_charge(customer, f"{customer}:{n}:1", now, invoice=f"in_{n}") for n in range(8)]
    start = threading.Barrier(len(racers))
    answers: list[Refusal | str | None] = ["unanswered"] * len(racers)

    def race(i: int) -> None:
        start.wait()
        answers[i] = cards.reserve(racers[i])

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(racers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [a for a in answers if a is None] == [None]  # exactly one run got the attempt
    assert all(isinstance(a, Refusal) and a.reason == "network_cap" for a in answers if a)
    with dunning_engine.connect() as conn:
        history = ledger.history(conn, racers[0])
    assert len(history) == 15
