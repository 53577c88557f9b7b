"""The per-subscription ordering buffer (pure; no clock, no I/O)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import permutations

from hypothesis import given, settings
from hypothesis import strategies as st
from temporalio.contrib.pydantic import pydantic_data_converter

from billing.events import (
    APPLIED_ID_WINDOW,
    EventBuffer,
    GatewayEvent,
    relay_event,
    stripe_event,
)

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def relay(sequence: int, sub: str = "sub_1") -> GatewayEvent:
    event = relay_event(
        event_id=f"rly_{sequence}",
        subscription_id=sub,
        sequence=sequence,
        event_type="payment_intent.succeeded",
        obj={"id": f"pi_{sequence}", "object": "payment_intent"},
        created=T0,
    )
    assert isinstance(event, GatewayEvent)
    return event


def continue_as_new(buffer: EventBuffer) -> EventBuffer:
    """What continue-as-new does to the buffer: encode to a payload and decode it again."""
    payloads = pydantic_data_converter.payload_converter.to_payloads([buffer])
    (restored,) = pydantic_data_converter.payload_converter.from_payloads(payloads, [EventBuffer])
    assert isinstance(restored, EventBuffer)
    return restored


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_permutation_with_duplicates_applies_each_event_once_in_order(data):
    n = data.draw(st.integers(min_value=1, max_value=40), label="n")
    arrivals = list(range(1, n + 1))
    arrivals += data.draw(st.lists(st.sampled_from(arrivals), max_size=n), label="duplicates")
    arrivals = data.draw(st.permutations(arrivals), label="order")
    cuts = set(data.draw(st.lists(st.integers(0, len(arrivals)), max_size=3), label="cuts"))

    buffer = EventBuffer()
    applied: list[int] = []
    for index, sequence in enumerate(arrivals):
        if index in cuts:
            buffer = continue_as_new(buffer)
        applied += [
            e.sequence for e in buffer.offer(relay(sequence), T0 + timedelta(seconds=index))
        ]

    assert applied == list(range(1, n + 1))
    assert buffer.buffered_count == 0
    assert buffer.gaps(T0 + timedelta(days=1), timedelta(0)) == []
    assert buffer.duplicate_count == len(arrivals) - n
    assert buffer.applied_count == n


def test_out_of_order_events_wait_until_the_gap_fills():
    buffer = EventBuffer()
    assert buffer.offer(relay(2), T0) == []
    assert buffer.offer(relay(4), T0) == []
    assert buffer.buffered_count == 2
    assert [e.sequence for e in buffer.offer(relay(1), T0)] == [1, 2]
    assert buffer.buffered_count == 1
    assert [e.sequence for e in buffer.offer(relay(3), T0)] == [3, 4]
    assert buffer.buffered_count == 0


def test_a_gap_is_reported_after_the_timeout_and_resolved_by_resync():
    timeout = timedelta(minutes=10)
    buffer = EventBuffer()
    buffer.offer(relay(1), T0)
    buffer.offer(relay(4), T0 + timedelta(minutes=1))
    buffer.offer(relay(5), T0 + timedelta(minutes=2))

    assert buffer.gaps(T0 + timedelta(minutes=10), timeout) == []
    (gap,) = buffer.gaps(T0 + timedelta(minutes=11), timeout)
    assert (gap.first, gap.last, gap.buffered) == (2, 3, 2)
    assert gap.waiting_since == T0 + timedelta(minutes=1)

    resolved_at = T0 + timedelta(minutes=12)
    ready = buffer.resolve_gap_by_resync(gap, resolved_at)

    assert [e.sequence for e in ready] == [4, 5]
    assert buffer.buffered_count == 0
    assert buffer.gaps(resolved_at + timedelta(days=1), timeout) == []
    (record,) = buffer.resolved_gaps
    assert (record.first, record.last, record.resolved_at) == (2, 3, resolved_at)
    # A skipped number arriving late is stale, never applied out of order.
    assert buffer.offer(relay(3), resolved_at) == []
    assert buffer.stale[-1].reason == "skipped_by_resync"
    assert [e.sequence for e in buffer.offer(relay(6), resolved_at)] == [6]


def test_resolving_a_later_gap_applies_the_events_between_gaps_in_order():
    buffer = EventBuffer()
    for sequence in (3, 6, 7):
        buffer.offer(relay(sequence), T0)
    gaps = buffer.gaps(T0 + timedelta(hours=1), timedelta(minutes=5))
    assert [(g.first, g.last) for g in gaps] == [(1, 2), (4, 5)]

    ready = buffer.resolve_gap_by_resync(gaps[-1], T0 + timedelta(hours=1))

    assert [e.sequence for e in ready] == [3, 6, 7]
    assert [(g.first, g.last) for g in buffer.resolved_gaps] == [(1, 2), (4, 5)]


def test_only_gaps_older_than_the_timeout_are_reported():
    buffer = EventBuffer()
    buffer.offer(relay(2), T0)
    buffer.offer(relay(5), T0 + timedelta(minutes=9))
    gaps = buffer.gaps(T0 + timedelta(minutes=10), timedelta(minutes=5))
    assert [(g.first, g.last) for g in gaps] == [(1, 1)]


def test_duplicates_are_ignored_across_continue_as_new():
    buffer = EventBuffer()
    for sequence in (1, 2, 3):
        buffer.offer(relay(sequence), T0)
    buffer.offer(relay(5), T0)
    invoice = {"id": "in_1", "object": "invoice", "metadata": {"dunwell_subscription_id": "s"}}
    paid = stripe_event(
        {
            "id": "evt_paid",
            "type": "invoice.paid",
            "created": 1_764_000_000,
            "data": {"object": invoice},
        }
    )
    assert buffer.offer(paid, T0) == [paid]

    restored = continue_as_new(buffer)

    assert restored == buffer
    assert restored.buffered_count == 1
    for sequence in (1, 2, 3, 5):
        assert restored.offer(relay(sequence), T0) == []
    assert restored.offer(paid, T0) == []
    assert restored.duplicate_count == 5
    assert [e.sequence for e in restored.offer(relay(4), T0)] == [4, 5]


def test_duplicates_beyond_the_id_window_are_still_refused():
    buffer = EventBuffer()
    total = APPLIED_ID_WINDOW + 200
    for sequence in range(1, total + 1):
        buffer.offer(relay(sequence), T0)
    restored = continue_as_new(buffer)

    assert len(restored.applied_ids) == APPLIED_ID_WINDOW
    assert "rly_1" not in restored.applied_ids
    assert restored.offer(relay(1), T0) == []
    assert restored.applied_count == total


# --- Stripe's derived order -------------------------------------------------------------

INVOICE_LIFECYCLE = [
    "invoice.created",
    "invoice.finalized",
    "invoice.payment_failed",
    "invoice.paid",
]


def invoice_events() -> list[GatewayEvent]:
    invoice = {"id": "in_9", "object": "invoice", "subscription": "sub_9"}
    events = []
    for index, event_type in enumerate(INVOICE_LIFECYCLE):
        event = stripe_event(
            {
                "id": f"evt_{index}",
                "type": event_type,
                # Same second for two of them: rank decides, not the clock.
                "created": 1_764_000_000 + min(index, 2),
                "data": {"object": invoice},
            }
        )
        assert isinstance(event, GatewayEvent)
        events.append(event)
    return events


def test_the_invoice_lifecycle_in_order_is_applied_entirely():
    buffer = EventBuffer()
    applied = [e.type for event in invoice_events() for e in buffer.offer(event, T0)]
    assert applied == INVOICE_LIFECYCLE


def test_a_shuffled_invoice_lifecycle_never_moves_the_invoice_backwards():
    events = invoice_events()
    for order in permutations(events):
        buffer = EventBuffer()
        applied = [e for event in order for e in buffer.offer(event, T0)]
        ranks = [INVOICE_LIFECYCLE.index(e.type) for e in applied]

        assert ranks == sorted(ranks), [e.type for e in order]
        assert applied[-1].type == "invoice.paid"
        assert len(applied) + buffer.stale_count == len(events)
        assert {s.reason for s in buffer.stale} <= {"older_than_applied"}
        # A replay of the whole lot changes nothing.
        for event in events:
            assert buffer.offer(event, T0) == []


def test_later_events_of_the_same_rank_apply_and_older_ones_are_stale():
    def failed(event_id: str, created: int) -> GatewayEvent:
        event = stripe_event(
            {
                "id": event_id,
                "type": "payment_intent.payment_failed",
                "created": created,
                "data": {"object": {"id": "pi_1", "object": "payment_intent", "subscription": "s"}},
            }
        )
        assert isinstance(event, GatewayEvent)
        return event

    buffer = EventBuffer()
    assert buffer.offer(failed("evt_a", 100), T0)
    assert buffer.offer(failed("evt_b", 200), T0)
    assert buffer.offer(failed("evt_c", 150), T0) == []
    assert buffer.stale[-1].event_id == "evt_c"


def test_objects_are_ordered_independently():
    rng = random.Random(7)
    buffer = EventBuffer()
    per_object = {
        object_id: [
            stripe_event(
                {
                    "id": f"evt_{object_id}_{i}",
                    "type": t,
                    "created": 1_764_000_000 + i,
                    "data": {"object": {"id": object_id, "object": "invoice", "subscription": "s"}},
                }
            )
            for i, t in enumerate(INVOICE_LIFECYCLE)
        ]
        for object_id in ("in_a", "in_b", "in_c")
    }
    arrivals = [e for events in per_object.values() for e in events]
    rng.shuffle(arrivals)
    # Keep each object's own events in lifecycle order, interleave the objects.
    arrivals.sort(key=lambda e: (e.order_key[0], rng.random()))
    applied = [e for event in arrivals for e in buffer.offer(event, T0)]
    assert len(applied) == 12
