"""Gateway events as the subscription workflow sees them, and the buffer that orders them.

Two intakes feed one model. Stripe's own webhooks (``source="stripe"``) carry no sequence
number; a webhook relay (``source="relay"``) forwards events with a per-subscription
``sequence``. Both become a ``GatewayEvent`` signalled to ``subscription-<id>``.

Routing (which subscription an event belongs to), first match wins, on the event's
object (``data.object`` for Stripe, ``object`` for the relay):

1. ``metadata.dunwell_subscription_id`` on the object itself (Dunwell stamps it on the
   PaymentIntents, SetupIntents and invoices it creates);
2. ``subscription_details.metadata.dunwell_subscription_id`` or
   ``parent.subscription_details.metadata.dunwell_subscription_id`` (Stripe copies a
   subscription's metadata onto its invoices there, by API version);
3. the object's ``subscription`` field (an id, or an expanded object's ``id``);
4. the object's own ``id`` when the object is a subscription
   (``customer.subscription.*`` events).

The relay names the subscription itself; an empty one falls back to the same rule.
An event whose subscription cannot be derived, whose derived id is not a plausible id,
or whose type is not in ``LIFECYCLE_RANKS`` is *unroutable*: the intake parks it for
ops with the reason; it is never dropped.

Customer-scoped events (``payment_method.*``, ``customer.*`` other than
``customer.subscription.*``; a card updater's ``payment_method.automatically_updated``
carries no subscription metadata) name a gateway customer instead
(``gateway_customer_of``). The Stripe intake hands such an event, when no subscription
can be derived, to each subscription of that customer: ``stripe_event_for`` makes the
copy for one subscription, under the event id ``<event id>#<subscription id>`` so each
copy is recorded and de-duplicated on its own. A customer with no subscription leaves
the event unroutable (parked).

Order. Relay events apply in strict ``sequence`` order per subscription: the next one
expected is the last applied + 1 (the first is 1); later ones wait in the buffer. A gap
that stays open longer than the workflow's timeout is reported by ``gaps``; the
workflow then re-syncs the objects from the gateway (the gateway's current state is
the truth) and calls ``resolve_gap_by_resync``, which skips the missing numbers and
keeps a record of the gap for ops. A skipped number that arrives later is stale.

Stripe events are ordered per object by ``stripe_order_key``: (lifecycle rank of the
event type, event ``created`` in Unix seconds, event id). Nothing can be waited for,
since nothing says an event is missing, so an event is applied at once when its key is
greater than the key last applied for the same object, and recorded as stale (not
applied) otherwise: a late ``invoice.finalized`` after ``invoice.paid`` would move the
invoice backwards. Events of equal rank (two ``payment_failed`` from two attempts)
order by ``created``, then id. The workflow re-fetches an object whenever its state
matters, so a stale event costs nothing but the record.

Duplicates (same event id) are ignored, also after continue-as-new: the buffer keeps
the last ``APPLIED_ID_WINDOW`` applied ids, and beyond that window the sequence
high-water mark (relay) and the per-object key (Stripe, the key contains the id) still
refuse a replay. The buffer is a plain dataclass of plain values, so Temporal's pydantic
data converter carries it through history and continue-as-new; it never reads a clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

Source = Literal["stripe", "relay"]
ParkReason = Literal["no_subscription", "invalid_subscription_id", "unsupported_type"]
StaleReason = Literal["older_than_applied", "skipped_by_resync", "sequence_already_applied"]
# (rank or sequence, created as Unix seconds, event id): compared as a tuple.
OrderKey = tuple[int, int, str]

SUBSCRIPTION_METADATA_KEY = "dunwell_subscription_id"
APPLIED_ID_WINDOW = 1_000
OBJECT_MARK_LIMIT = 500
OPS_RECORD_LIMIT = 100

_PLAUSIBLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}")

# ---------------------------------------------------------------------------------------
# Lifecycle rank of each supported event type within its object. Sources: Stripe's event
# types (https://docs.stripe.com/api/events/types), the invoice lifecycle draft -> open
# -> paid | void | uncollectible (https://docs.stripe.com/invoicing/overview), and
# PaymentIntent / SetupIntent statuses (https://docs.stripe.com/payments/paymentintents
# /lifecycle). Attempt outcomes share a rank on purpose: a retry after payment_failed can
# legitimately produce requires_action, so within a rank the later event wins.
# ---------------------------------------------------------------------------------------
LIFECYCLE_RANKS: dict[str, int] = {
    "invoice.created": 0,
    "invoice.finalized": 1,
    "invoice.finalization_failed": 1,
    "invoice.payment_failed": 2,
    "invoice.payment_action_required": 2,
    "invoice.paid": 3,
    "invoice.payment_succeeded": 3,
    "invoice.marked_uncollectible": 3,
    "invoice.voided": 3,
    "payment_intent.created": 0,
    "payment_intent.processing": 1,
    "payment_intent.requires_action": 1,
    "payment_intent.payment_failed": 1,
    "payment_intent.succeeded": 2,
    "payment_intent.canceled": 2,
    "setup_intent.created": 0,
    "setup_intent.requires_action": 1,
    "setup_intent.setup_failed": 1,
    "setup_intent.succeeded": 2,
    "setup_intent.canceled": 2,
    "customer.subscription.created": 0,
    "customer.subscription.updated": 1,
    "customer.subscription.trial_will_end": 1,
    "customer.subscription.paused": 1,
    "customer.subscription.resumed": 1,
    "customer.subscription.deleted": 2,
    "payment_method.attached": 0,
    "payment_method.updated": 1,
    "payment_method.automatically_updated": 1,
    "payment_method.detached": 2,
    "customer.created": 0,
    "customer.updated": 1,
    "customer.deleted": 2,
}

# Separates an event id from the subscription its fanned-out copy was made for.
FAN_OUT_SEPARATOR = "#"
_GATEWAY_CUSTOMER_ID = re.compile(r"cus_[A-Za-z0-9]{1,200}")


@dataclass(frozen=True)
class GatewayEvent:
    """One gateway event for one subscription; ``payload`` is the gateway object (JSON)."""

    event_id: str
    subscription_id: str
    source: Source
    type: str
    object_id: str
    object_type: str
    sequence: int | None
    order_key: OrderKey
    created: datetime
    payload: dict[str, Any]


@dataclass(frozen=True)
class SubscriptionStart:
    """Start argument of ``SubscriptionWorkflow`` when an event starts it (signal-with-start)."""

    subscription_id: str
    started_by_event: bool = True


@dataclass(frozen=True)
class Unroutable:
    """An event the intake cannot hand to a subscription; it is parked with ``reason``."""

    event_id: str
    source: Source
    type: str
    object_id: str | None
    object_type: str | None
    subscription_id: str | None
    reason: ParkReason


class MalformedEvent(ValueError):
    """The event lacks a field every gateway event has (id, type, object, created)."""


def stripe_order_key(event_type: str, created: datetime, event_id: str) -> OrderKey:
    return (LIFECYCLE_RANKS.get(event_type, -1), int(created.timestamp()), event_id)


def stripe_event(raw: Mapping[str, Any]) -> GatewayEvent | Unroutable:
    """A verified Stripe webhook body (parsed JSON) as a routable event or a parked one."""
    data = raw.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    event_id, event_type, created_at = raw.get("id"), raw.get("type"), raw.get("created")
    if not (
        isinstance(event_id, str)
        and event_id
        and isinstance(event_type, str)
        and isinstance(obj, Mapping)
        and isinstance(created_at, int)
    ):
        raise MalformedEvent("a Stripe event needs id, type, created and data.object")
    created = datetime.fromtimestamp(created_at, UTC)
    return _route(
        event_id=event_id,
        source="stripe",
        event_type=event_type,
        obj=obj,
        created=created,
        sequence=None,
        order_key=stripe_order_key(event_type, created, event_id),
        named_subscription=None,
    )


def gateway_customer_of(raw: Mapping[str, Any]) -> str | None:
    """The gateway customer (``cus_…``) a customer-scoped Stripe event is about, if it
    is one: a payment method's ``customer``, a customer object's ``id``."""
    event_type = raw.get("type")
    data = raw.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(event_type, str) or not isinstance(obj, Mapping):
        return None
    found: Any = None
    if event_type.startswith("payment_method."):
        found = obj.get("customer")
        if isinstance(found, Mapping):
            found = found.get("id")
    elif event_type.startswith("customer.") and not event_type.startswith("customer.subscription."):
        found = obj.get("id") if obj.get("object") == "customer" else None
    if isinstance(found, str) and _GATEWAY_CUSTOMER_ID.fullmatch(found):
        return found
    return None


def stripe_event_for(raw: Mapping[str, Any], subscription_id: str) -> GatewayEvent | Unroutable:
    """A customer-scoped Stripe event's copy for one of the customer's subscriptions."""
    routed = stripe_event(raw)
    event_id = f"{routed.event_id}{FAN_OUT_SEPARATOR}{subscription_id}"
    data = raw.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    assert isinstance(obj, Mapping)  # stripe_event refused the event otherwise
    created = _created(raw)
    return _route(
        event_id=event_id,
        source="stripe",
        event_type=routed.type,
        obj=obj,
        created=created,
        sequence=None,
        order_key=stripe_order_key(routed.type, created, event_id),
        named_subscription=subscription_id,
    )


def _created(raw: Mapping[str, Any]) -> datetime:
    created = raw.get("created")
    assert isinstance(created, int)
    return datetime.fromtimestamp(created, UTC)


def relay_event(
    *,
    event_id: str,
    subscription_id: str | None,
    sequence: int,
    event_type: str,
    obj: Mapping[str, Any],
    created: datetime,
) -> GatewayEvent | Unroutable:
    """A relay-forwarded event; the relay's ``sequence`` is its order."""
    if sequence < 1:
        raise MalformedEvent("relay sequences start at 1")
    if created.tzinfo is None:
        raise MalformedEvent("created must be an aware UTC datetime")
    created = created.astimezone(UTC)
    return _route(
        event_id=event_id,
        source="relay",
        event_type=event_type,
        obj=obj,
        created=created,
        sequence=sequence,
        order_key=(sequence, int(created.timestamp()), event_id),
        named_subscription=subscription_id or None,
    )


def _route(
    *,
    event_id: str,
    source: Source,
    event_type: str,
    obj: Mapping[str, Any],
    created: datetime,
    sequence: int | None,
    order_key: OrderKey,
    named_subscription: str | None,
) -> GatewayEvent | Unroutable:
    object_id = obj.get("id") if isinstance(obj.get("id"), str) else None
    object_type = obj.get("object") if isinstance(obj.get("object"), str) else None
    subscription_id = named_subscription or subscription_id_of(obj)
    reason: ParkReason | None = None
    if event_type not in LIFECYCLE_RANKS:
        reason = "unsupported_type"
    elif subscription_id is None:
        reason = "no_subscription"
    elif not _PLAUSIBLE_ID.fullmatch(subscription_id):
        reason = "invalid_subscription_id"
    elif object_id is None or object_type is None:
        raise MalformedEvent("the event object needs an id and an object type")
    if reason is not None:
        return Unroutable(
            event_id=event_id,
            source=source,
            type=event_type,
            object_id=object_id,
            object_type=object_type,
            subscription_id=subscription_id,
            reason=reason,
        )
    assert subscription_id is not None and object_id is not None and object_type is not None
    return GatewayEvent(
        event_id=event_id,
        subscription_id=subscription_id,
        source=source,
        type=event_type,
        object_id=object_id,
        object_type=object_type,
        sequence=sequence,
        order_key=order_key,
        created=created,
        payload=dict(obj),
    )


def subscription_id_of(obj: Mapping[str, Any]) -> str | None:
    """The Dunwell subscription an object belongs to, by the routing rule above."""
    candidates: list[Any] = [
        _dig(obj, "metadata", SUBSCRIPTION_METADATA_KEY),
        _dig(obj, "subscription_details", "metadata", SUBSCRIPTION_METADATA_KEY),
        _dig(obj, "parent", "subscription_details", "metadata", SUBSCRIPTION_METADATA_KEY),
        obj.get("subscription"),
        _dig(obj, "subscription", "id"),
        obj.get("id") if obj.get("object") == "subscription" else None,
    ]
    for candidate in candidates:
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


def _dig(obj: Mapping[str, Any], *path: str) -> Any:
    value: Any = obj
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


# --- ordering buffer -------------------------------------------------------------------


@dataclass(frozen=True)
class PendingEvent:
    event: GatewayEvent
    received_at: datetime


@dataclass(frozen=True)
class Gap:
    """Relay sequence numbers ``first..last`` are missing; events after them wait."""

    first: int
    last: int
    waiting_since: datetime
    buffered: int


@dataclass(frozen=True)
class ResolvedGap:
    first: int
    last: int
    waiting_since: datetime
    resolved_at: datetime


@dataclass(frozen=True)
class StaleEvent:
    event_id: str
    type: str
    object_id: str
    reason: StaleReason
    seen_at: datetime


@dataclass
class EventBuffer:
    """Per-subscription ordering state, embedded in the workflow's state dataclass."""

    next_sequence: int = 1
    pending: list[PendingEvent] = field(default_factory=list)
    applied_ids: list[str] = field(default_factory=list)
    # object id -> order key last applied for it; insertion order = least recent first.
    object_marks: dict[str, OrderKey] = field(default_factory=dict)
    stale: list[StaleEvent] = field(default_factory=list)
    resolved_gaps: list[ResolvedGap] = field(default_factory=list)
    applied_count: int = 0
    duplicate_count: int = 0
    stale_count: int = 0

    @property
    def buffered_count(self) -> int:
        return len(self.pending)

    def offer(self, event: GatewayEvent, now: datetime) -> list[GatewayEvent]:
        """Take one event; return the events that are now ready to apply, in order."""
        if event.event_id in self.applied_ids:
            self.duplicate_count += 1
            return []
        if event.sequence is None:
            return self._offer_unsequenced(event, now)
        return self._offer_sequenced(event, event.sequence, now)

    def gaps(self, now: datetime, timeout: timedelta) -> list[Gap]:
        """Holes in the relay sequence that have kept events waiting for ``timeout`` or more."""
        return [gap for gap in self._open_gaps() if now - gap.waiting_since >= timeout]

    def resolve_gap_by_resync(self, gap: Gap, now: datetime) -> list[GatewayEvent]:
        """After a re-sync from the gateway: skip every missing number up to ``gap.last``
        (earlier holes are at least as old) and return the events that are now ready."""
        for hole in self._open_gaps():
            if hole.first > gap.last:
                break
            self._record_ops(
                self.resolved_gaps,
                ResolvedGap(
                    first=hole.first,
                    last=hole.last,
                    waiting_since=hole.waiting_since,
                    resolved_at=now,
                ),
            )
        ready = self._drain()
        while self.next_sequence <= gap.last:
            # next_sequence is missing: jump to the next waiting event, never past the gap.
            waiting = self.pending[0].event.sequence if self.pending else None
            self.next_sequence = min(waiting or gap.last + 1, gap.last + 1)
            ready += self._drain()
        return ready

    def _offer_sequenced(
        self, event: GatewayEvent, sequence: int, now: datetime
    ) -> list[GatewayEvent]:
        if sequence < self.next_sequence:
            skipped = any(g.first <= sequence <= g.last for g in self.resolved_gaps)
            self._mark_stale(
                event, "skipped_by_resync" if skipped else "sequence_already_applied", now
            )
            return []
        waiting = next((p for p in self.pending if p.event.sequence == sequence), None)
        if waiting is not None:
            if waiting.event.event_id == event.event_id:
                self.duplicate_count += 1
            else:
                self._mark_stale(event, "sequence_already_applied", now)
            return []
        self.pending.append(PendingEvent(event=event, received_at=now))
        self.pending.sort(key=lambda p: p.event.sequence or 0)
        return self._drain()

    def _drain(self) -> list[GatewayEvent]:
        ready: list[GatewayEvent] = []
        while self.pending and self.pending[0].event.sequence == self.next_sequence:
            head = self.pending.pop(0).event
            self.next_sequence += 1
            self._mark_applied(head)
            ready.append(head)
        return ready

    def _offer_unsequenced(self, event: GatewayEvent, now: datetime) -> list[GatewayEvent]:
        mark = self.object_marks.get(event.object_id)
        if mark is not None and event.order_key <= mark:
            if event.order_key == mark:
                self.duplicate_count += 1
            else:
                self._mark_stale(event, "older_than_applied", now)
            return []
        self.object_marks.pop(event.object_id, None)
        self.object_marks[event.object_id] = event.order_key
        while len(self.object_marks) > OBJECT_MARK_LIMIT:
            del self.object_marks[next(iter(self.object_marks))]
        self._mark_applied(event)
        return [event]

    def _open_gaps(self) -> list[Gap]:
        gaps: list[Gap] = []
        expected = self.next_sequence
        for index, pending in enumerate(self.pending):
            sequence = pending.event.sequence or 0
            if sequence > expected:
                # The hole has existed since the earliest arrival of anything above it.
                since = min(p.received_at for p in self.pending[index:])
                gaps.append(
                    Gap(
                        first=expected,
                        last=sequence - 1,
                        waiting_since=since,
                        buffered=len(self.pending) - index,
                    )
                )
            expected = max(expected, sequence + 1)
        return gaps

    def _mark_applied(self, event: GatewayEvent) -> None:
        self.applied_ids.append(event.event_id)
        del self.applied_ids[:-APPLIED_ID_WINDOW]
        self.applied_count += 1

    def _mark_stale(self, event: GatewayEvent, reason: StaleReason, now: datetime) -> None:
        self.stale_count += 1
        self._record_ops(
            self.stale,
            StaleEvent(
                event_id=event.event_id,
                type=event.type,
                object_id=event.object_id,
                reason=reason,
                seen_at=now,
            ),
        )

    @staticmethod
    def _record_ops(records: list[Any], record: Any) -> None:
        records.append(record)
        del records[:-OPS_RECORD_LIMIT]
