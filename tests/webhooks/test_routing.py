"""Which subscription a gateway event belongs to, and what is parked instead."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing.events import (
    LIFECYCLE_RANKS,
    GatewayEvent,
    MalformedEvent,
    Unroutable,
    relay_event,
    stripe_event,
    subscription_id_of,
)


def event(obj, event_type="invoice.paid"):
    return {"id": "evt_1", "type": event_type, "created": 1_764_000_000, "data": {"object": obj}}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            {
                "id": "pi_1",
                "object": "payment_intent",
                "metadata": {"dunwell_subscription_id": "d1"},
            },
            "d1",
        ),
        (
            {
                "id": "in_1",
                "object": "invoice",
                "subscription": "sub_stripe",
                "subscription_details": {"metadata": {"dunwell_subscription_id": "d2"}},
            },
            "d2",
        ),
        (
            {
                "id": "in_1",
                "object": "invoice",
                "parent": {"subscription_details": {"metadata": {"dunwell_subscription_id": "d3"}}},
            },
            "d3",
        ),
        ({"id": "in_1", "object": "invoice", "subscription": "sub_4"}, "sub_4"),
        ({"id": "in_1", "object": "invoice", "subscription": {"id": "sub_5"}}, "sub_5"),
        ({"id": "sub_6", "object": "subscription", "metadata": {}}, "sub_6"),
        ({"id": "pm_1", "object": "payment_method", "metadata": {}}, None),
        ({"id": "in_1", "object": "invoice", "metadata": {"dunwell_subscription_id": ""}}, None),
    ],
)
def test_subscription_is_derived_by_the_documented_rule(obj, expected):
    assert subscription_id_of(obj) == expected


def test_a_routable_stripe_event_carries_its_derived_order():
    routed = stripe_event(
        event({"id": "in_1", "object": "invoice", "metadata": {"dunwell_subscription_id": "d1"}})
    )
    assert isinstance(routed, GatewayEvent)
    assert routed.order_key == (LIFECYCLE_RANKS["invoice.paid"], 1_764_000_000, "evt_1")
    assert routed.created == datetime(2025, 11, 24, 16, 0, tzinfo=UTC)
    assert (routed.sequence, routed.source, routed.object_type) == (None, "stripe", "invoice")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (event({"id": "in_1", "object": "invoice"}), "no_subscription"),
        (
            event({"id": "ch_1", "object": "charge", "subscription": "s"}, "charge.refunded"),
            "unsupported_type",
        ),
        (
            event(
                {
                    "id": "in_1",
                    "object": "invoice",
                    "metadata": {"dunwell_subscription_id": "a b/../c"},
                }
            ),
            "invalid_subscription_id",
        ),
    ],
)
def test_unroutable_stripe_events_say_why(raw, reason):
    parked = stripe_event(raw)
    assert isinstance(parked, Unroutable)
    assert parked.reason == reason
    assert parked.event_id == "evt_1"


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "invoice.paid", "created": 1, "data": {"object": {"id": "in_1"}}},
        {"id": "evt_1", "type": "invoice.paid", "created": 1, "data": {}},
        {"id": "evt_1", "type": "invoice.paid", "created": "yesterday", "data": {"object": {}}},
        event({"object": "invoice", "subscription": "s"}),
    ],
)
def test_malformed_stripe_events_are_refused(raw):
    with pytest.raises(MalformedEvent):
        stripe_event(raw)


def test_relay_names_the_subscription_and_falls_back_to_the_object():
    created = datetime(2026, 1, 1, tzinfo=UTC)
    named = relay_event(
        event_id="r1",
        subscription_id="sub_named",
        sequence=3,
        event_type="invoice.paid",
        obj={"id": "in_1", "object": "invoice", "subscription": "sub_other"},
        created=created,
    )
    fallback = relay_event(
        event_id="r2",
        subscription_id=None,
        sequence=4,
        event_type="invoice.paid",
        obj={"id": "in_1", "object": "invoice", "subscription": "sub_other"},
        created=created,
    )
    assert isinstance(named, GatewayEvent) and named.subscription_id == "sub_named"
    assert named.sequence == 3
    assert isinstance(fallback, GatewayEvent) and fallback.subscription_id == "sub_other"
    with pytest.raises(MalformedEvent):
        relay_event(
            event_id="r3",
            subscription_id="s",
            sequence=1,
            event_type="invoice.paid",
            obj={"id": "in_1", "object": "invoice"},
            created=datetime(2026, 1, 1),
        )
