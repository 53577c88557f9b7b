"""The card on file: its details, the expiring-card notice, and account-updater refreshes.

The workflow keeps the card's non-sensitive details (brand, last four digits, expiry,
fingerprint) in state, read from the gateway when a new card arrives. One notice per
card goes out ``expiring_card_notice`` before the end of its expiry month. When the
network account updater refreshes the card (``payment_method.automatically_updated``),
each unpaid invoice is retried once on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.subscription import dunning_link, payments
from workflows.subscription.run import DB_TIMEOUT, GATEWAY_READ_TIMEOUT, Run

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities, PaymentMethodRequest
    from activities.gateway_sync import GatewaySyncActivities
    from billing.events import GatewayEvent
    from billing.gateway import ChargeDeclined, ChargeSucceeded, PaymentMethodDetails
    from workflows.dunning import CardUpdaterUpdate, PaymentMethodUpdate
    from workflows.subscription.state import Notice, PaymentMethodInfo, SubscriptionState

_SET_DEFAULT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=["InvalidGatewayRequest", "IdempotencyConflict"],
)
_DESCRIBE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=["InvalidGatewayRequest"],
)


async def set_default(run: Run, payment_method_id: str, key: str) -> None:
    """Make ``payment_method_id`` the customer's default card at the gateway, and the
    card on file here; ``key`` makes the gateway call once-only."""
    state = run.state
    assert state.gateway_customer_id is not None
    details = await workflow.execute_activity_method(
        BillingActivities.set_default_payment_method,
        PaymentMethodRequest(
            gateway_customer_id=state.gateway_customer_id,
            payment_method_id=payment_method_id,
            key=f"sub:{state.subscription_id}:pm:{key}",
        ),
        retry_policy=_SET_DEFAULT_RETRY,
        start_to_close_timeout=DB_TIMEOUT,
    )
    state.payment_method_id = payment_method_id
    state.payment_method = (
        PaymentMethodInfo.of(details)
        if details is not None and details.id == payment_method_id
        else PaymentMethodInfo(payment_method_id)
    )
    state.last_event = "default payment method changed"


async def attach_initial(run: Run) -> None:
    """Attach the card the subscription was created with, before the first charge.

    The run does it rather than the API, so a create request that Temporal never
    accepted (answered 503) has changed nothing at the gateway either. A token the
    gateway refuses here leaves the card unattached; the first charge then fails and
    the subscription stays incomplete, as for any unusable card.
    """
    state = run.state
    payment_method_id = state.payment_method_to_attach
    assert payment_method_id is not None
    try:
        await set_default(run, payment_method_id, "initial")
    except ActivityError:
        state.last_event = "the card given at creation could not be attached"
    state.payment_method_to_attach = None


async def replace_by_customer(run: Run, payment_method_id: str, key: str) -> None:
    """The customer set a new default card: it becomes the card on file, and each
    dunning run retries once, at once, with it."""
    await set_default(run, payment_method_id, key)
    children = dunning_link.children(run.state)
    if children:
        ref = await dunning_link.card_ref(run, payment_method_id)
        change = PaymentMethodUpdate(payment_method_id=payment_method_id, card=ref)
        for child_id in children:
            await dunning_link.tell(run, child_id, "notify_payment_method_updated", change)


async def watch(run: Run) -> None:
    """Keep the card's details in state and record one expiring-card notice per card,
    ``expiring_card_notice`` before the end of its expiry month."""
    state = run.state
    described: str | None = None
    while True:
        await workflow.wait_condition(
            lambda: state.activated and state.payment_method_id is not None
        )
        card = state.payment_method
        if card is None or card.id != state.payment_method_id:
            card = state.payment_method = PaymentMethodInfo(str(state.payment_method_id))

        def replaced(seen: PaymentMethodInfo = card) -> bool:
            return state.payment_method != seen

        def replaced_or_renewed(
            seen: PaymentMethodInfo = card, period_end: datetime | None = state.period_end
        ) -> bool:
            return state.payment_method != seen or state.period_end != period_end

        if not card.described and described != card.id:
            described = card.id
            await _describe(run, card.id)
            continue
        expires = card.expires_at()
        noticed = state.expiring_card_noticed == card.expiry_key()
        if expires is not None and not noticed:
            notice_at = expires - state.gateway_policy.expiring_card_notice
            remaining = notice_at - workflow.now()
            period_end = state.period_end
            if run.generation.number >= 2 and period_end is not None and notice_at > period_end:
                # The run continues as new at the period end, before the notice is due:
                # no timer here (a timer is an event and a server task in every run);
                # when the period end moves on within this run, look again.
                await workflow.wait_condition(replaced_or_renewed)
                continue
            if remaining > timedelta(0):
                try:
                    await workflow.wait_condition(replaced, timeout=remaining)
                    continue
                except TimeoutError:
                    pass
            if workflow.now() < expires:
                _notice_expiring(run, card, expires)
                continue
        await workflow.wait_condition(replaced)


async def _describe(run: Run, payment_method_id: str) -> None:
    state = run.state
    try:
        details: PaymentMethodDetails = await workflow.execute_activity_method(
            GatewaySyncActivities.describe_payment_method,
            payment_method_id,
            retry_policy=_DESCRIBE_RETRY,
            start_to_close_timeout=GATEWAY_READ_TIMEOUT,
        )
    except ActivityError as exc:
        state.last_event = f"could not read payment method {payment_method_id}: {exc}"
        return
    if details.id == state.payment_method_id:
        state.payment_method = PaymentMethodInfo.of(details)
        run.publish_now()


def _notice_expiring(run: Run, card: PaymentMethodInfo, expires: datetime) -> None:
    # Recorded in state; notices.watch sends it (runs since the customer-notices patch).
    state = run.state
    state.expiring_card_noticed = card.expiry_key()
    state.notices.append(
        Notice(
            kind="expiring_card",
            key=f"expiring_card:{card.expiry_key()}",
            at=workflow.now(),
            payment_method_id=card.id,
            due_at=expires,
        )
    )
    state.last_event = f"card {card.brand or ''} •••• {card.last4 or '—'} expires soon"
    run.publish_now()


def updated_card(state: SubscriptionState, event: GatewayEvent) -> PaymentMethodInfo | None:
    """The card an account-updater event describes, if it is the card on file: Stripe
    keeps the ``pm_…`` id, and a refreshed token for the same gateway customer is
    adopted as well. None when the event is about another card."""
    owner = event.payload.get("customer")
    if event.object_id != state.payment_method_id and (
        owner is None or owner != state.gateway_customer_id
    ):
        return None
    raw = event.payload.get("card")
    fields: Mapping[str, object] = raw if isinstance(raw, dict) else {}
    return PaymentMethodInfo(
        id=event.object_id,
        brand=_str(fields.get("brand")),
        last4=_str(fields.get("last4")),
        exp_month=_int(fields.get("exp_month")),
        exp_year=_int(fields.get("exp_year")),
        fingerprint=_str(fields.get("fingerprint")),
    )


async def apply_updater_event(run: Run, event: GatewayEvent) -> None:
    """``payment_method.automatically_updated``: the network account updater refreshed
    the card on file."""
    state = run.state
    refreshed = updated_card(state, event)
    if refreshed is None:
        state.last_event = f"card update for {event.object_id} ignored: not the card on file"
        return
    state.payment_method_id = event.object_id
    state.payment_method = refreshed
    state.last_event = f"card on file updated by the account updater ({event.object_id})"
    await _retry_unpaid(run)


async def _retry_unpaid(run: Run) -> None:
    """One immediate retry of each unpaid invoice on the updated card: a dunning child
    gets the event (its own one immediate retry), other invoices are retried here."""
    state = run.state
    for unpaid in list(state.unpaid_invoices):
        if not state.payment_method_id or not state.gateway_customer_id:
            return
        if unpaid.dunning_workflow_id:
            update = CardUpdaterUpdate(
                payment_method_id=state.payment_method_id,
                card=dunning_link.card_on_file(state),
            )
            await dunning_link.tell(
                run, unpaid.dunning_workflow_id, "notify_card_updater_event", update
            )
            continue
        outcome = await payments.charge_unpaid(run, unpaid, BillingActivities.charge_invoice)
        if outcome is None:
            continue
        if isinstance(outcome, ChargeSucceeded):
            await payments.settle_unpaid(run, unpaid.invoice_id, outcome.payment_intent_id)
            continue
        unpaid.payment_intent_id = outcome.payment_intent_id or unpaid.payment_intent_id
        if isinstance(outcome, ChargeDeclined):
            unpaid.decline_family = str(outcome.classification.family)
            unpaid.decline_reason = outcome.classification.reason
        else:
            unpaid.decline_reason = outcome.kind
        state.last_event = (
            f"retry after card update for invoice {unpaid.invoice_id}: {outcome.kind}"
        )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
