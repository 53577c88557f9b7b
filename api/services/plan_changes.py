"""Portal plan changes that may need the customer's 3-D Secure.

A portal upgrade is charged on-session. When the bank asks for 3-D Secure, the
workflow's ``change_plan`` update does not complete: it waits for the customer, with
the waiting change in the subscription's state (``upgrade_authentication``). So the API
starts the update, then watches both its result and the state: whichever comes first
answers the page, either the change's outcome or ``requires_action`` with the
PaymentIntent's client secret (read from the gateway, never kept in state) for Stripe.js.
The page then reports what Stripe.js said, and the workflow, having read the gateway's
record of the intent, answers with the outcome.

The update's id is chosen here, ``portal-change-<uuid>``; the workflow uses it as the
change's id, which is how the waiting change in state is known to be this request's.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateStage

from api.errors import ApiError
from api.services.subscriptions import (
    UPDATE_DEADLINE,
    UPDATE_RPC_TIMEOUT,
    query_state,
    send_update,
    update_errors,
)
from stores.customers import SubscriptionRecord
from workflows.subscription.state import (
    ChangePlanRequest,
    ChangePlanResult,
    SubscriptionState,
    UpgradeAuthentication,
    UpgradeAuthenticationReport,
)

# How often the state is read while the change's charge is in flight.
_WATCH_INTERVAL = timedelta(milliseconds=250)


@dataclass(frozen=True)
class AwaitingAuthentication:
    change_id: str
    waiting: UpgradeAuthentication
    state: SubscriptionState


def check_no_change_waiting(state: SubscriptionState) -> None:
    """One plan change at a time: a second one would wait behind the first's charge."""
    if state.upgrade_authentication is not None or state.migrating_to is not None:
        raise ApiError(
            409,
            "change_in_progress",
            "a plan change is waiting for its payment; finish or cancel it first",
        )


async def change_plan(
    *, client: Client, record: SubscriptionRecord, plan_id: str
) -> ChangePlanResult | AwaitingAuthentication:
    change_id = f"portal-change-{uuid.uuid4().hex}"
    handle: WorkflowHandle[object, object] = client.get_workflow_handle(record.workflow_id)
    deadline = asyncio.timeout(UPDATE_DEADLINE.total_seconds())
    with update_errors(deadline):
        async with deadline:
            update = await handle.start_update(
                "change_plan",
                ChangePlanRequest(plan_id=plan_id),
                id=change_id,
                wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                result_type=ChangePlanResult,
                rpc_timeout=UPDATE_RPC_TIMEOUT,
            )
            outcome = asyncio.ensure_future(update.result(rpc_timeout=UPDATE_RPC_TIMEOUT))
            try:
                while True:
                    done, _ = await asyncio.wait({outcome}, timeout=_WATCH_INTERVAL.total_seconds())
                    if done:
                        result = outcome.result()
                        assert isinstance(result, ChangePlanResult)
                        return result
                    state = await query_state(client=client, record=record)
                    waiting = state.upgrade_authentication
                    if waiting is not None and waiting.change_id == change_id:
                        return AwaitingAuthentication(change_id, waiting, state)
            finally:
                outcome.cancel()
    raise AssertionError("unreachable")  # pragma: no cover


async def report_authentication(
    *, client: Client, record: SubscriptionRecord, payment_intent_id: str, outcome: str
) -> ChangePlanResult:
    """What Stripe.js said; the workflow checks the gateway and answers with the outcome."""
    report = UpgradeAuthenticationReport(payment_intent_id, outcome)  # type: ignore[arg-type]
    result = await send_update(
        client=client,
        record=record,
        update="complete_upgrade_authentication",
        arg=report,
        result_type=ChangePlanResult,
    )
    assert isinstance(result, ChangePlanResult)
    return result
