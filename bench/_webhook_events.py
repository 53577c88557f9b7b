"""The webhook bench's events: Stripe-shaped bodies, their send order with duplicates
and swapped neighbours, the outcome the ordering rule predicts for that order, and the
accounting of what the workflows applied (see ``bench/webhooks.py``)."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import string
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from billing.events import GatewayEvent, stripe_event
from workflows.subscription.state import SubscriptionState

# Phase 2 uses the first --events - 1 of these, then invoice.paid.
INVOICE_TYPES = ("invoice.created", "invoice.finalized", "invoice.payment_failed")
INTENT_TYPES = ("payment_intent.created", "payment_intent.succeeded")


def letters(n: int, width: int = 6) -> str:
    """A letters-only id part: a digit run in a body could trip the API's card guard."""
    out = []
    for _ in range(width):
        n, r = divmod(n, 26)
        out.append(string.ascii_lowercase[r])
    return "".join(reversed(out))


def rand_letters(rng: random.Random, width: int = 20) -> str:
    return "".join(rng.choice(string.ascii_letters) for _ in range(width))


def signature(body: bytes, secret: str) -> str:
    """Stripe's scheme: ``t=<unix>,v1=<HMAC-SHA256 of "<t>.<body>">``."""
    t = int(time.time())
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


@dataclass(frozen=True)
class Event:
    event_id: str
    subscription_id: str
    object_id: str
    type: str
    created: int
    body: bytes

    @property
    def order_key(self) -> tuple[int, int, str]:
        parsed = stripe_event(json.loads(self.body))
        assert isinstance(parsed, GatewayEvent)
        return parsed.order_key


def make_event(
    rng: random.Random, subscription_id: str, object_id: str, event_type: str, created: int
) -> Event:
    event_id = f"evt_{rand_letters(rng)}"
    object_type = "invoice" if object_id.startswith("in_") else "payment_intent"
    body = {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {
            "object": {
                "id": object_id,
                "object": object_type,
                "amount": 2900,
                "currency": "eur",
                "status": event_type.rsplit(".", 1)[1],
                "metadata": {"dunwell_subscription_id": subscription_id},
            }
        },
    }
    return Event(
        event_id, subscription_id, object_id, event_type, created, json.dumps(body).encode()
    )


def plan_sends(
    rng: random.Random,
    subscriptions: Sequence[str],
    types: Sequence[str],
    object_prefix: str,
    created_base: int,
    out_of_order: float,
    duplicates: float,
) -> tuple[list[Event], int]:
    """Send order for one phase (see the module docstring); and how many were swapped."""
    per_sub: list[list[Event]] = []
    for sub in subscriptions:
        object_id = f"{object_prefix}_{rand_letters(rng)}"
        chain = [
            make_event(rng, sub, object_id, event_type, created_base + j)
            for j, event_type in enumerate(types)
        ]
        per_sub.append(chain)
    unique = sum(len(chain) for chain in per_sub)
    # Swap disjoint neighbour pairs until the wanted share of events is out of order.
    slots = [(s, j) for s, chain in enumerate(per_sub) for j in range(len(chain) - 1)]
    rng.shuffle(slots)
    swapped, taken = 0, set[tuple[int, int]]()
    for s, j in slots:
        if swapped >= round(unique * out_of_order):
            break
        if (s, j) in taken or (s, j + 1) in taken:
            continue
        chain = per_sub[s]
        chain[j], chain[j + 1] = chain[j + 1], chain[j]
        taken |= {(s, j), (s, j + 1)}
        swapped += 1
    order = [chain[j] for j in range(len(types)) for chain in per_sub]
    for original in rng.sample(range(len(order)), round(unique * duplicates)):
        event = order[original]
        at = rng.randrange(order.index(event) + 1, len(order) + 1)
        order.insert(at, event)
    return order, swapped


def predicted_outcomes(sends: Sequence[Event]) -> dict[str, str]:
    """What the ordering rule makes of each unique event, for this arrival order."""
    marks: dict[str, tuple[int, int, str]] = {}
    outcome: dict[str, str] = {}
    for event in sends:
        if event.event_id in outcome:
            continue  # a duplicate: the intake answers it without signalling
        key = event.order_key
        mark = marks.get(event.object_id)
        if mark is None or key > mark:
            marks[event.object_id] = key
            outcome[event.event_id] = "applied"
        else:
            outcome[event.event_id] = "stale"
    return outcome


def account(
    states: dict[str, SubscriptionState], unique: Sequence[Event]
) -> tuple[int, int, Counter[str]]:
    applied: Counter[str] = Counter()
    stale: set[str] = set()
    for state in states.values():
        applied.update(state.events.applied_ids)
        stale.update(s.event_id for s in state.events.stale)
    lost = sum(1 for e in unique if applied[e.event_id] == 0 and e.event_id not in stale)
    double = sum(1 for e in unique if applied[e.event_id] > 1)
    outcome: Counter[str] = Counter()
    for e in unique:
        outcome[
            "applied" if applied[e.event_id] else "stale" if e.event_id in stale else "lost"
        ] += 1
    return lost, double, outcome
