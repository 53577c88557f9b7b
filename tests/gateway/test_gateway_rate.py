"""The gateway request limit every process shares, on PostgreSQL: no second ever sees
more requests than the limit, whichever processes sent them, and the Stripe adapter
waits its turn before each request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from activities.gateway_rate import SharedRateLimit, store_take
from activities.stripe_gateway import StripeGateway
from billing.money import Money
from ledger.db import make_engine
from ledger.migrate import upgrade
from stores import gateway_rate
from tests.conftest import create_database, drop_database
from tests.gateway.conftest import TEST_API_KEY
from tests.gateway.recorded import RecordedStripe


@pytest.fixture(scope="module")
def rate_engine() -> Iterator[Engine]:
    url = create_database("dunwell_rate")
    try:
        upgrade(url)
        engine = make_engine(url)
        yield engine
        engine.dispose()
    finally:
        drop_database(url)


def taken(engine: Engine, window_start: int) -> int:
    with engine.connect() as conn:
        return gateway_rate.used(conn, window_start)


def test_a_second_grants_up_to_its_limit(rate_engine: Engine) -> None:
    take = store_take(rate_engine)
    second = 1_000_000_000
    assert [take(second, 4, 10) for _ in range(4)] == [4, 4, 2, 0]
    assert take(second + 1, 4, 10) == 4, "the next second has its own budget"
    assert taken(rate_engine, second) == 10
    with pytest.raises(ValueError):
        take(second, 0, 10)


def test_old_seconds_are_deleted_as_new_ones_are_taken(rate_engine: Engine) -> None:
    take = store_take(rate_engine)
    old = 1_100_000_000
    take(old, 1, 10)
    take(old + gateway_rate.KEEP_SECONDS + 60 - (old % 60), 1, 10)  # a whole minute later
    assert taken(rate_engine, old) == 0


async def test_two_processes_together_stay_under_the_limit(rate_engine: Engine) -> None:
    limit = 10
    processes = [SharedRateLimit(store_take(rate_engine), limit, batch=3) for _ in range(2)]
    sent: list[int] = []

    async def request(limiter: SharedRateLimit) -> None:
        await limiter.acquire()
        sent.append(int(time.time()))

    started = time.monotonic()
    await asyncio.gather(*(request(processes[n % 2]) for n in range(45)))
    elapsed = time.monotonic() - started

    assert len(sent) == 45
    per_second = {s: sent.count(s) for s in set(sent)}
    assert max(per_second.values()) <= limit, per_second
    assert all(taken(rate_engine, s) <= limit for s in per_second)
    assert elapsed >= 45 // limit - 1, "45 requests at 10 a second span at least 4 seconds"


async def test_the_adapter_waits_for_its_turn(
    rate_engine: Engine, recorded: RecordedStripe
) -> None:
    gateway = StripeGateway(
        TEST_API_KEY,
        recorded.url,
        timeout_seconds=2,
        rate_limit=SharedRateLimit(store_take(rate_engine), 2, batch=1),
    )
    try:
        for _ in range(5):
            recorded.reply("POST", "/v1/payment_intents", "payment_intent_declined_200")
        started = time.monotonic()
        for n in range(5):
            await gateway.charge_off_session(
                customer_id="cus_RecordedCustomer",
                payment_method_id="pm_1RecVis0002",
                amount=Money(2500, "EUR"),
                idempotency_key=f"inv_rate:attempt:{n}",
            )
        elapsed = time.monotonic() - started
    finally:
        gateway.close()
    assert len(recorded.received) == 5
    assert elapsed >= 1.0, "5 requests at 2 a second need at least three seconds' windows"
