"""Customer notices: recorded in state by the step that decides them, sent once here.

A notice's key is also the notification's key, so a retried or replayed send finds the
row already sent. Continue-as-new waits until every notice has gone out: an activity
scheduled alongside continue-as-new would be lost.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.subscription.generations import PATCH_NOTICES_OUTSIDE_LOCK
from workflows.subscription.run import RETRY, Run

with workflow.unsafe.imports_passed_through():
    from activities.dunning import DunningActivities
    from activities.notifications import CustomerNoticeKind, NotificationRequest
    from billing.declines import CustomerMessage
    from workflows.subscription.state import Notice, SubscriptionState

# Keys of sent notices kept in state; notices are trimmed to RECENT_LIMIT, so this covers them.
RECENT_NOTICE_KEYS = 48


def unsent(state: SubscriptionState) -> list[Notice]:
    sent = set(state.notices_sent)
    return [n for n in state.notices if n.key not in sent]


def notification(state: SubscriptionState, notice: Notice) -> NotificationRequest | None:
    """The email a notice becomes (None when there is nobody to tell)."""
    if state.customer is None:
        return None
    card = state.payment_method
    described = (
        f"{card.brand or 'card'} •••• {card.last4}"
        if card is not None and card.id == notice.payment_method_id and card.last4
        else None
    )
    action = state.pending_action
    amount = action.amount if action is not None and notice.kind == "action_required" else 0
    return NotificationRequest(
        key=f"sub:{state.subscription_id}:{notice.key}",
        kind=CustomerNoticeKind(notice.kind),
        customer_id=state.customer.customer_id,
        recipient=state.customer.email,
        invoice_id=notice.invoice_id,
        subscription_id=state.subscription_id,
        amount=amount,
        currency=state.currency or "EUR",
        message=CustomerMessage.CONFIRM_PAYMENT if notice.kind == "action_required" else None,
        deadline=notice.due_at,
        card=described,
        portal_path=notice.portal_path,
    )


async def watch(run: Run) -> None:
    """Send each recorded notice once."""
    while True:
        await workflow.wait_condition(lambda: bool(unsent(run.state)))
        if run.patched(PATCH_NOTICES_OUTSIDE_LOCK):
            # A mail server that is down must not hold up portal actions.
            await _send_unsent(run)
        else:
            async with run.lock:
                await _send_unsent(run)


async def _send_unsent(run: Run) -> None:
    state = run.state
    for notice in unsent(state):
        request = notification(state, notice)
        if request is not None:
            await workflow.execute_activity_method(
                DunningActivities.notify,
                request,
                retry_policy=RETRY,
                start_to_close_timeout=timedelta(minutes=2),
                summary=notice.key,
            )
        state.notices_sent.append(notice.key)
        del state.notices_sent[:-RECENT_NOTICE_KEYS]
