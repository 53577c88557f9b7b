"""Outbound events of a subscription: decided with the change, written to the outbox once.

The step that changes the subscription decides its events in the same workflow task
(``observe`` after every transition and every change ops see; ``emit`` for payment
failures and dunning runs) and records them in state with a key made of the
subscription id and the run's event count. ``watch`` hands them to
``outbound.record_events``, which keeps each event id once: a retried activity or a
replayed task writes nothing twice, and no event exists for a change that did not
happen. Continue-as-new waits until every event is in the outbox.

``observe`` compares the subscription with what its events last told the product
(``state.told``): a new subscription is ``subscription.created``, a change of status,
plan or pending cancellation is ``subscription.updated`` (``subscription.canceled``
when it ends), and a change of ``billing.entitlements.access`` is ``access.granted`` or
``access.revoked``. Access can also change with no message at all (the end of a grace
period), so each instant the access function names as its next change gets a timer
that observes again when it fires. These timers are never cancelled: one that fires
after the change moved elsewhere observes nothing new. (Starting and cancelling a timer
in one workflow task is what the time-skipping server refused in full runs.)
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

from workflows.subscription.run import DB_TIMEOUT, RETRY, Run

with workflow.unsafe.imports_passed_through():
    from activities.outbound import EventToRecord, OutboundActivities, RecordEventsRequest
    from billing.lifecycle import SubscriptionStatus
    from workflows.subscription.state import (
        EventValue,
        OutboundEvent,
        SubscriptionState,
        ToldState,
    )

# Events handed to the outbox in one activity.
BATCH = 50


def emit(run: Run, event_type: str, data: dict[str, EventValue], at: datetime) -> None:
    """Record an event of this subscription, decided now (generation 5 on)."""
    if not run.generation.emits_events:
        return
    state = run.state
    state.outbound_count += 1
    key = f"sub:{state.subscription_id}:event:{state.outbound_count}"
    state.outbound_pending.append(OutboundEvent(key, event_type, at, data))


def subscription_data(state: SubscriptionState, at: datetime) -> dict[str, EventValue]:
    access = state.access(at)
    return {
        "id": state.subscription_id,
        "customer_id": state.customer.customer_id if state.customer else None,
        "status": state.status.value,
        "plan_id": state.plan_id,
        "cancel_at_period_end": state.cancel_at_period_end,
        "current_period_end": state.period_end.isoformat() if state.period_end else None,
        "has_access": access.has_access,
        "access_reason": access.reason.value,
        "grace_until": access.grace_until.isoformat() if access.grace_until else None,
        "access_changes_at": (access.next_change_at.isoformat() if access.next_change_at else None),
    }


def observe(run: Run, at: datetime) -> None:
    """Emit what changed by ``at`` (the instant of the change, or of the access timer)
    since the product was last told, and arm the access timer."""
    state = run.state
    if not run.generation.emits_events or not state.activated:
        return
    access = state.access(at)
    now = ToldState(state.status, state.plan_id, state.cancel_at_period_end, access.has_access)
    told = state.told
    if told != now:
        data = subscription_data(state, at)
        if told is None:
            emit(run, "subscription.created", data, at)
        elif (told.status, told.plan_id, told.cancel_at_period_end) != (
            now.status,
            now.plan_id,
            now.cancel_at_period_end,
        ):
            ended = now.status is SubscriptionStatus.CANCELED
            emit(run, "subscription.canceled" if ended else "subscription.updated", data, at)
        was_allowed = told.has_access if told is not None else False
        if now.has_access != was_allowed:
            emit(run, "access.granted" if now.has_access else "access.revoked", data, at)
        state.told = now
    if access.next_change_at is not None and access.next_change_at > at:
        _arm(run, access.next_change_at)


def _arm(run: Run, at: datetime) -> None:
    if at in run.access_timers:
        return
    run.access_timers.add(at)
    run.watch(_observe_at(run, at))


async def _observe_at(run: Run, at: datetime) -> None:
    await workflow.sleep(at - workflow.now(), summary="access changes")
    observe(run, at)


def unrecorded(state: SubscriptionState) -> bool:
    return bool(state.outbound_pending)


async def watch(run: Run) -> None:
    """Write recorded events to the outbox, in the order they were decided."""
    state = run.state
    observe(run, workflow.now())  # a run continued as new, or activated before this code
    while True:
        await workflow.wait_condition(lambda: unrecorded(state))
        batch = state.outbound_pending[:BATCH]
        customer_id = state.customer.customer_id if state.customer else None
        await workflow.execute_activity_method(
            OutboundActivities.record_events,
            RecordEventsRequest(
                events=[
                    EventToRecord(
                        key=e.key,
                        type=e.type,
                        occurred_at=e.at,
                        data=e.data,
                        subscription_id=state.subscription_id,
                        customer_id=customer_id,
                    )
                    for e in batch
                ]
            ),
            retry_policy=RETRY,
            start_to_close_timeout=DB_TIMEOUT,
            summary=", ".join(e.type for e in batch),
        )
        del state.outbound_pending[: len(batch)]


def payment_failed(run: Run, invoice_id: str, amount: int, currency: str, code: str) -> None:
    emit(
        run,
        "invoice.payment_failed",
        {
            "id": invoice_id,
            "subscription_id": run.state.subscription_id,
            "amount": amount,
            "currency": currency,
            "decline_code": code,
        },
        workflow.now(),
    )


def dunning_event(run: Run, event_type: str, invoice_id: str, **extra: EventValue) -> None:
    emit(
        run,
        event_type,
        {"invoice_id": invoice_id, "subscription_id": run.state.subscription_id, **extra},
        workflow.now(),
    )
