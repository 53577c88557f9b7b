"""The subscription workflow against the gateway's truth: sequence gaps re-synced from the
gateway, duplicates across continue-as-new, the card account updater, expiring cards,
and 3-D Secure demanded on a renewal (confirmed, or left past its deadline)."""

from __future__ import annotations

import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from billing.events import GatewayEvent, relay_event, stripe_event
from billing.lifecycle import SubscriptionStatus, Trigger
from billing.money import Money
from billing.periods import period_end
from billing.sca import challenge_decision
from stores.notifications import notifications_for_customer
from tests.support.history import history_mentions
from tests.workflows.harness import (
    API_KEY,
    FAILS_WHEN_CHARGED,
    REQUIRES_3DS,
    VISA_OK,
    Billing,
    eventually,
    record_history,
)
from workflows import search_attributes as sa
from workflows.subscription import SubscriptionWorkflow
from workflows.subscription.state import (
    ConfirmPaymentRequest,
    GatewayPolicy,
    PaymentConfirmation,
    PaymentMethodInfo,
    SetPaymentMethodRequest,
    SubscriptionState,
    details_markdown,
)


def relayed(subscription_id: str, sequence: int, at: datetime) -> GatewayEvent:
    event = relay_event(
        event_id=f"rel_{uuid.uuid4().hex[:14]}",
        subscription_id=subscription_id,
        sequence=sequence,
        event_type="customer.subscription.updated",
        obj={"id": subscription_id, "object": "subscription"},
        created=at,
    )
    assert isinstance(event, GatewayEvent)
    return event


def stripe_shaped(event_type: str, obj: dict[str, Any], at: datetime) -> GatewayEvent:
    event = stripe_event(
        {
            "id": f"evt_{uuid.uuid4().hex[:14]}",
            "type": event_type,
            "created": int(at.timestamp()),
            "data": {"object": obj},
        }
    )
    assert isinstance(event, GatewayEvent)
    return event


def authenticate_on_localstripe(base_url: str, payment_intent_id: str, client_secret: str) -> None:
    """What the customer's browser does through Stripe.js's 3-D Secure dialog."""
    data = urllib.parse.urlencode({"client_secret": client_secret, "success": "true"}).encode()
    request = urllib.request.Request(
        f"{base_url}/v1/payment_intents/{payment_intent_id}/_authenticate",
        data=data,
        method="POST",
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


async def buffered_attribute(handle: WorkflowHandle[Any, Any]) -> int | None:
    description = await handle.describe()
    return description.typed_search_attributes.get(sa.BUFFERED_EVENTS)


async def test_gap_timeout_resyncs_from_the_gateway(billing: Billing, localstripe_url: str) -> None:
    # The first charge needs 3-D Secure; the customer completes it, but the event that
    # would have said so (sequence 2) never arrives.
    handle = await billing.subscribe(plan_id="starter-monthly", card=REQUIRES_3DS)
    owing = await eventually(handle, lambda s: len(s.unpaid_invoices) == 1)
    assert owing.status is SubscriptionStatus.INCOMPLETE
    (unpaid,) = owing.unpaid_invoices
    assert unpaid.payment_intent_id and unpaid.decline_reason == "requires_action"
    intent = await billing.gateway.retrieve_payment_intent(unpaid.payment_intent_id)
    assert intent.client_secret is not None
    assert await history_mentions(handle, intent.client_secret) == []
    authenticate_on_localstripe(localstripe_url, intent.id, intent.client_secret)

    now = await billing.env.get_current_time()
    sid = owing.subscription_id
    for sequence in (4, 1, 3):  # shuffled, 2 missing
        await handle.signal(SubscriptionWorkflow.gateway_event, relayed(sid, sequence, now))
    waiting = await eventually(handle, lambda s: s.events.applied_count == 1)
    assert waiting.buffered_events == 2 == len(waiting.events.pending)
    assert await buffered_attribute(handle) == 2
    assert waiting.resyncs == []
    assert waiting.status is SubscriptionStatus.INCOMPLETE, "nothing applied the payment yet"

    await billing.env.sleep(waiting.gateway_policy.gap_timeout + timedelta(minutes=1))
    synced = await eventually(handle, lambda s: bool(s.resyncs))
    assert synced.events.applied_count == 3 and synced.buffered_events == 0
    assert synced.events.next_sequence == 5
    (record,) = synced.resyncs
    assert (record.gap_first, record.gap_last) == (2, 2)
    assert record.settled_invoices == [unpaid.invoice_id]
    assert [(g.first, g.last) for g in synced.events.resolved_gaps] == [(2, 2)]
    assert synced.status is SubscriptionStatus.ACTIVE
    assert str(billing.store.get(unpaid.invoice_id).status) == "paid"
    assert await buffered_attribute(handle) == 0
    assert "re-synced" in details_markdown(synced, now, "—")

    late = relayed(sid, 2, now)  # the missing event finally arrives: stale, not applied
    await handle.signal(SubscriptionWorkflow.gateway_event, late)
    stale = await eventually(handle, lambda s: s.events.stale_count == 1)
    assert stale.events.applied_count == 3
    await record_history(handle, "subscription_gateway_resync")


async def test_gap_filled_in_time_needs_no_resync(billing: Billing) -> None:
    handle = await billing.subscribe(
        plan_id="starter-monthly", gateway_policy=GatewayPolicy(gap_timeout=timedelta(hours=1))
    )
    await eventually(handle, lambda s: s.status is SubscriptionStatus.ACTIVE)
    sid = handle.id.removeprefix("subscription-")
    now = await billing.env.get_current_time()
    await handle.signal(SubscriptionWorkflow.gateway_event, relayed(sid, 2, now))
    await eventually(handle, lambda s: s.buffered_events == 1)
    await billing.env.sleep(timedelta(minutes=30))
    await handle.signal(SubscriptionWorkflow.gateway_event, relayed(sid, 1, now))
    filled = await eventually(handle, lambda s: s.events.applied_count == 2)
    await billing.env.sleep(timedelta(hours=2))
    after = await handle.query(SubscriptionWorkflow.state)
    assert filled.buffered_events == 0 and after.resyncs == []


async def test_duplicates_are_ignored_across_continue_as_new(billing: Billing) -> None:
    start = await billing.soon()
    handle = await billing.subscribe(plan_id="starter-monthly", start_at=start)
    await billing.sleep_until(start + timedelta(minutes=1))
    first_run = await eventually(handle, lambda s: s.status is SubscriptionStatus.ACTIVE)
    event = relayed(first_run.subscription_id, 1, start)
    await handle.signal(SubscriptionWorkflow.gateway_event, event)
    await eventually(handle, lambda s: s.events.applied_count == 1)

    # The period end closes the run with continue-as-new.
    await billing.sleep_until(period_end(start, start, "month") + timedelta(minutes=1))
    latest = billing.client.get_workflow_handle_for(SubscriptionWorkflow.run, handle.id)
    second_run = await eventually(latest, lambda s: s.runs == 2)
    assert second_run.events.applied_count == 1

    await latest.signal(SubscriptionWorkflow.gateway_event, event)
    replayed = await eventually(latest, lambda s: s.events.duplicate_count == 1)
    assert replayed.events.applied_count == 1 and replayed.buffered_events == 0


async def renewal_needing(
    billing: Billing, card_number: str, plan_id: str = "pro-monthly", segment: str = "default"
) -> tuple[WorkflowHandle[Any, Any], SubscriptionState, datetime]:
    """A monthly subscription paid once, then renewed on ``card_number``."""
    start = await billing.soon()
    boundary = period_end(start, start, "month")
    handle = await billing.subscribe(plan_id=plan_id, start_at=start, segment=segment)
    await billing.sleep_until(start + timedelta(minutes=1))
    await eventually(handle, lambda s: s.invoice_count == 1 and not s.unpaid_invoices)
    await handle.execute_update(
        SubscriptionWorkflow.set_default_payment_method,
        SetPaymentMethodRequest(billing.card(card_number)),
    )
    await billing.sleep_until(boundary + timedelta(minutes=1))
    latest = billing.client.get_workflow_handle_for(SubscriptionWorkflow.run, handle.id)
    past_due = await eventually(latest, lambda s: s.status is SubscriptionStatus.PAST_DUE)
    return latest, past_due, boundary


async def test_card_updater_updates_details_and_retries_once_in_daytime(billing: Billing) -> None:
    handle, past_due, boundary = await renewal_needing(billing, FAILS_WHEN_CHARGED)
    (unpaid,) = past_due.unpaid_invoices
    assert past_due.payment_method is not None and past_due.payment_method.last4 == "0341"
    # The updater's refreshed card (a working one) for the same gateway customer.
    refreshed = billing.card(VISA_OK, (3, 2034))
    await billing.gateway.attach_payment_method(
        payment_method_id=refreshed,
        customer_id=str(past_due.gateway_customer_id),
        idempotency_key=f"{refreshed}:attach",
    )
    event = stripe_shaped(
        "payment_method.automatically_updated",
        {
            "id": refreshed,
            "object": "payment_method",
            "customer": past_due.gateway_customer_id,
            "card": {"brand": "visa", "last4": "4242", "exp_month": 3, "exp_year": 2034},
            "metadata": {"dunwell_subscription_id": past_due.subscription_id},
        },
        boundary,
    )
    await handle.signal(SubscriptionWorkflow.gateway_event, event)
    # standard@v3: an updater retry waits for the customer's local daytime (08:00-20:00),
    # at most a night and its jitter away.
    await eventually(
        handle, lambda s: s.payment_method is not None and s.payment_method.id == refreshed
    )
    await billing.sleep_until(await billing.env.get_current_time() + timedelta(hours=16))
    recovered = await eventually(handle, lambda s: s.status is SubscriptionStatus.ACTIVE)
    card = recovered.payment_method
    assert card is not None
    assert (card.id, card.brand, card.last4, card.exp_month, card.exp_year) == (
        refreshed,
        "visa",
        "4242",
        3,
        2034,
    )
    assert recovered.unpaid_invoices == []
    assert recovered.transitions[-1].cause is Trigger.DUNNING_RECOVERED
    assert str(billing.store.get(unpaid.invoice_id).status) == "paid"
    # The invoice's dunning child made the one immediate retry (its attempt 2).
    assert unpaid.dunning_workflow_id == f"dunning-{unpaid.invoice_id}"
    intents = billing.stripe.v1.payment_intents.list(params={"limit": 100})
    retries = [
        pi
        for pi in intents.data
        if pi.metadata.to_dict().get("invoice_id") == unpaid.invoice_id
        and "dunning_attempt" in pi.metadata.to_dict()
    ]
    assert [(pi.metadata["dunning_attempt"], pi.status) for pi in retries] == [("2", "succeeded")]

    await handle.signal(SubscriptionWorkflow.gateway_event, event)  # redelivered: no effect
    again = await eventually(handle, lambda s: s.events.duplicate_count == 1)
    assert again.successful_payments == recovered.successful_payments
    await record_history(handle, "subscription_card_updater_dunning")


async def test_card_update_for_someone_elses_card_is_ignored(billing: Billing) -> None:
    handle = await billing.subscribe(plan_id="starter-monthly")
    active = await eventually(handle, lambda s: s.status is SubscriptionStatus.ACTIVE)
    stranger = billing.card(VISA_OK)
    event = stripe_shaped(
        "payment_method.automatically_updated",
        {
            "id": stranger,
            "object": "payment_method",
            "customer": "cus_someone_else",
            "card": {"brand": "visa", "last4": "4242", "exp_month": 1, "exp_year": 2040},
            "metadata": {"dunwell_subscription_id": active.subscription_id},
        },
        await billing.env.get_current_time(),
    )
    await handle.signal(SubscriptionWorkflow.gateway_event, event)
    after = await eventually(handle, lambda s: s.events.applied_count == 1)
    assert after.payment_method_id == active.payment_method_id != stranger


async def card_expiring_in(
    billing: Billing, handle: WorkflowHandle[Any, SubscriptionState], days: int
) -> tuple[SubscriptionState, PaymentMethodInfo, GatewayEvent]:
    """The account updater moves the card's expiry ``days`` from the server's clock (which
    the session's time skipping may have carried past what a test card accepts). Returns
    the state before, the card before, and the update event (to redeliver)."""
    described = await eventually(
        handle, lambda s: s.payment_method is not None and s.payment_method.last4 is not None
    )
    card = described.payment_method
    assert card is not None
    now = await billing.env.get_current_time()
    later = now + timedelta(days=days)
    update = stripe_shaped(
        "payment_method.automatically_updated",
        {
            "id": card.id,
            "object": "payment_method",
            "customer": described.gateway_customer_id,
            "card": {
                "brand": "visa",
                "last4": "4242",
                "exp_month": later.month,
                "exp_year": later.year,
            },
            "metadata": {"dunwell_subscription_id": described.subscription_id},
        },
        now,
    )
    await handle.signal(SubscriptionWorkflow.gateway_event, update)
    await eventually(
        handle, lambda s: s.payment_method is not None and s.payment_method.exp_year == later.year
    )
    return described, card, update


async def test_expiring_card_is_noticed_once_ahead_of_expiry(
    billing: Billing, billing_engine: Engine
) -> None:
    handle = await billing.subscribe(plan_id="pro-yearly")
    soon = await billing.env.get_current_time() + timedelta(days=45)
    described, card, update = await card_expiring_in(billing, handle, 45)
    assert (card.brand, card.last4) == ("visa", "4242")
    assert described.notices == []
    updated = await handle.query(SubscriptionWorkflow.state)
    assert updated.payment_method is not None
    expires = updated.payment_method.expires_at()
    assert expires is not None and expires.day == 1 and expires > soon
    notice_at = expires - updated.gateway_policy.expiring_card_notice

    await billing.sleep_until(notice_at - timedelta(hours=1))
    early = await handle.query(SubscriptionWorkflow.state)
    assert early.notices == [], "not before the notice period"

    await billing.sleep_until(notice_at + timedelta(hours=1))
    noticed = await eventually(handle, lambda s: bool(s.notices))
    (notice,) = noticed.notices
    assert (notice.kind, notice.payment_method_id, notice.due_at) == (
        "expiring_card",
        card.id,
        expires,
    )
    await handle.signal(SubscriptionWorkflow.gateway_event, update)  # redelivered
    await billing.sleep_until(expires + timedelta(days=2))
    later = await handle.query(SubscriptionWorkflow.state)
    assert [n.kind for n in later.notices] == ["expiring_card"], "once per card"
    # ... and emailed once, recorded for the portal.
    assert later.notices_sent == [notice.key]
    assert later.customer is not None
    rows = notifications_for_customer(billing_engine, later.customer.customer_id)
    assert [(r.kind, r.status, r.send_attempts) for r in rows] == [("expiring_card", "sent", 1)]
    assert rows[0].subject == "Your card on file expires soon"
    assert f"visa •••• 4242) expires on {expires:%Y-%m-%d}" in rows[0].body


async def test_expiring_card_notice_due_after_the_period_end_comes_from_a_later_run(
    billing: Billing,
) -> None:
    """A monthly run does not wait for a notice due after its period end; the run that
    holds the notice time sends it on time."""
    handle = await billing.subscribe(plan_id="pro-monthly")
    await card_expiring_in(billing, handle, 100)
    updated = await handle.query(SubscriptionWorkflow.state)
    assert updated.payment_method is not None and updated.period_end is not None
    expires = updated.payment_method.expires_at()
    assert expires is not None
    notice_at = expires - updated.gateway_policy.expiring_card_notice
    assert notice_at > updated.period_end + timedelta(days=28), "due two periods on at least"

    await billing.sleep_until(notice_at - timedelta(hours=1))
    early = await handle.query(SubscriptionWorkflow.state)
    assert early.notices == [], "not before the notice period"
    assert early.runs >= 3, "the notice time is in a later run"

    await billing.sleep_until(notice_at + timedelta(hours=1))
    noticed = await eventually(handle, lambda s: bool(s.notices))
    assert [(n.kind, n.due_at) for n in noticed.notices] == [("expiring_card", expires)]


async def test_action_required_then_confirmed_on_session(
    billing: Billing, localstripe_url: str
) -> None:
    handle, past_due, _ = await renewal_needing(billing, REQUIRES_3DS)
    (unpaid,) = past_due.unpaid_invoices
    action = past_due.pending_action
    assert action is not None and action.status == "waiting"
    assert action.invoice_id == unpaid.invoice_id == unpaid.invoice_id
    assert action.deadline == action.requested_at + timedelta(hours=72)
    assert past_due.transitions[-1].cause is Trigger.RENEWAL_FAILED
    (notice,) = [n for n in past_due.notices if n.kind == "action_required"]
    assert notice.payment_intent_id == action.payment_intent_id and notice.due_at == action.deadline
    assert "action required" in details_markdown(past_due, action.requested_at, "—")
    shown = (await handle.describe()).typed_search_attributes
    assert (shown.get(sa.STATUS), shown.get(sa.PERIOD_END)) == ("past_due", past_due.period_end)
    # The friction decision is billing.sca's for this subscription's own payment history.
    assert past_due.customer is not None
    expected = challenge_decision(
        past_due.customer.address.country,
        Money(action.amount, action.currency),
        past_due.payment_history(),
        action.requested_at,
    )
    assert (action.challenge, action.exemption, action.challenge_reason) == (
        expected.challenge,
        expected.exemption,
        expected.reason,
    )

    with pytest.raises(WorkflowUpdateFailedError) as mismatch:
        await handle.execute_update(
            SubscriptionWorkflow.confirm_payment_completed, ConfirmPaymentRequest("pi_other")
        )
    assert isinstance(mismatch.value.cause, ApplicationError)
    assert mismatch.value.cause.type == "payment_intent_mismatch"
    with pytest.raises(WorkflowUpdateFailedError) as early:
        await handle.execute_update(
            SubscriptionWorkflow.confirm_payment_completed,
            ConfirmPaymentRequest(action.payment_intent_id),
        )
    assert isinstance(early.value.cause, ApplicationError)
    assert early.value.cause.type == "payment_not_completed"

    intent = await billing.gateway.retrieve_payment_intent(action.payment_intent_id)
    assert intent.client_secret is not None
    # The history names the intent; its secret is read from the gateway when needed.
    assert await history_mentions(handle, intent.id)
    assert await history_mentions(handle, intent.client_secret) == []
    authenticate_on_localstripe(localstripe_url, intent.id, intent.client_secret)
    confirmed = await handle.execute_update(
        SubscriptionWorkflow.confirm_payment_completed,
        ConfirmPaymentRequest(action.payment_intent_id),
    )
    assert confirmed.status == "confirmed"
    active = await handle.query(SubscriptionWorkflow.state)
    assert active.status is SubscriptionStatus.ACTIVE and active.unpaid_invoices == []
    assert active.transitions[-1].cause is Trigger.DUNNING_RECOVERED
    assert str(billing.store.get(unpaid.invoice_id).status) == "paid"
    await record_history(handle, "subscription_action_confirmed")


async def test_action_required_settled_by_the_gateway_event(
    billing: Billing, localstripe_url: str
) -> None:
    handle, past_due, boundary = await renewal_needing(billing, REQUIRES_3DS)
    action = past_due.pending_action
    assert action is not None
    # The customer authenticates; the event about it is verified at the gateway first.
    intent = await billing.gateway.retrieve_payment_intent(action.payment_intent_id)
    assert intent.client_secret is not None
    authenticate_on_localstripe(localstripe_url, intent.id, intent.client_secret)
    event = stripe_shaped(
        "payment_intent.succeeded",
        {
            "id": action.payment_intent_id,
            "object": "payment_intent",
            "metadata": {
                "dunwell_subscription_id": past_due.subscription_id,
                "dunwell_invoice_id": action.invoice_id,
            },
        },
        boundary,
    )
    await handle.signal(SubscriptionWorkflow.gateway_event, event)
    active = await eventually(handle, lambda s: s.status is SubscriptionStatus.ACTIVE)
    assert active.pending_action is not None and active.pending_action.status == "confirmed"


async def test_action_required_past_its_deadline_goes_to_dunning(billing: Billing) -> None:
    handle, past_due, _ = await renewal_needing(billing, REQUIRES_3DS)
    action = past_due.pending_action
    assert action is not None
    await billing.sleep_until(action.deadline + timedelta(minutes=1))
    expired = await eventually(
        handle, lambda s: s.pending_action is not None and s.pending_action.status == "expired"
    )
    assert expired.status is SubscriptionStatus.PAST_DUE
    assert [u.invoice_id for u in expired.unpaid_invoices] == [action.invoice_id]
    with pytest.raises(WorkflowUpdateFailedError) as late:
        await handle.execute_update(
            SubscriptionWorkflow.confirm_payment_completed,
            ConfirmPaymentRequest(action.payment_intent_id),
        )
    assert isinstance(late.value.cause, ApplicationError)
    assert late.value.cause.type == "no_pending_action"
    await record_history(handle, "subscription_action_expired")


def intents_for(billing: Billing, invoice_id: str) -> list[Any]:
    listing = billing.stripe.v1.payment_intents.list(params={"limit": 100})
    return [
        pi for pi in listing.data if pi.metadata.to_dict().get("dunwell_invoice_id") == invoice_id
    ]


async def test_low_value_confirmation_is_tried_without_a_challenge(billing: Billing) -> None:
    handle, past_due, _ = await renewal_needing(billing, REQUIRES_3DS, "starter-monthly")
    action = past_due.pending_action
    assert action is not None
    assert (action.challenge, action.exemption) == (False, "low_value")
    # The customer, in the portal, also switched to a card the issuer approves as is.
    await handle.execute_update(
        SubscriptionWorkflow.set_default_payment_method,
        SetPaymentMethodRequest(billing.card(VISA_OK)),
    )
    confirmation = await handle.execute_update(SubscriptionWorkflow.begin_payment_confirmation)
    assert isinstance(confirmation, PaymentConfirmation)
    assert confirmation.outcome == "paid" and confirmation.challenge is False
    active = await handle.query(SubscriptionWorkflow.state)
    assert active.status is SubscriptionStatus.ACTIVE and active.unpaid_invoices == []
    assert active.pending_action is not None and active.pending_action.status == "confirmed"
    on_session = [
        pi
        for pi in intents_for(billing, action.invoice_id)
        if pi.metadata.to_dict().get("dunwell_attempt") == "2"
    ]
    assert [pi.status for pi in on_session] == ["succeeded"]


async def test_low_value_confirmation_still_challenged_by_the_issuer(
    billing: Billing, localstripe_url: str
) -> None:
    handle, past_due, _ = await renewal_needing(billing, REQUIRES_3DS, "starter-monthly")
    action = past_due.pending_action
    assert action is not None and action.challenge is False
    confirmation = await handle.execute_update(SubscriptionWorkflow.begin_payment_confirmation)
    assert confirmation.outcome == "requires_action"
    assert confirmation.payment_intent_id != action.payment_intent_id, "a new on-session intent"
    again = await handle.execute_update(SubscriptionWorkflow.begin_payment_confirmation)
    assert again.payment_intent_id == confirmation.payment_intent_id, "one attempt, not two"
    assert len(intents_for(billing, action.invoice_id)) == 2

    intent = await billing.gateway.retrieve_payment_intent(confirmation.payment_intent_id)
    assert intent.client_secret is not None
    authenticate_on_localstripe(localstripe_url, intent.id, intent.client_secret)
    with pytest.raises(WorkflowUpdateFailedError):  # the superseded intent is refused
        await handle.execute_update(
            SubscriptionWorkflow.confirm_payment_completed,
            ConfirmPaymentRequest(action.payment_intent_id),
        )
    await handle.execute_update(
        SubscriptionWorkflow.confirm_payment_completed,
        ConfirmPaymentRequest(confirmation.payment_intent_id),
    )
    paid = await handle.query(SubscriptionWorkflow.state)
    assert paid.status is SubscriptionStatus.ACTIVE
    await record_history(handle, "subscription_action_on_session")


async def test_challenge_required_hands_back_the_pending_intent(billing: Billing) -> None:
    handle, past_due, _ = await renewal_needing(billing, REQUIRES_3DS, "pro-monthly")
    action = past_due.pending_action
    assert action is not None
    assert (action.challenge, action.challenge_reason) == (True, "sca_required")
    confirmation = await handle.execute_update(SubscriptionWorkflow.begin_payment_confirmation)
    assert (confirmation.outcome, confirmation.payment_intent_id) == (
        "requires_action",
        action.payment_intent_id,
    )
    assert len(intents_for(billing, action.invoice_id)) == 1, "no extra charge attempt"
