"""A dispute of one of the subscription's payments, as the dispute's workflow reports it.

The notice carries how many of the subscription's disputes count against it (the
database's count, so a replayed or reordered notice cannot drift), which feeds the
payment history SCA decisions read (``SubscriptionState.payment_history``), and the
dispute policy in force (``billing.disputes``): under ``cancel_at_period_end`` a newly
opened dispute cancels the subscription at its period end, when the lifecycle allows a
cancellation then.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.subscription import cancellation
from workflows.subscription.refusals import check_portal_action
from workflows.subscription.run import Run

with workflow.unsafe.imports_passed_through():
    from billing.disputes import DisputePolicy
    from billing.lifecycle import PortalAction

DISPUTE_SIGNAL = "dispute_update"


@dataclass(frozen=True)
class DisputeNotice:
    dispute_id: str
    status: str
    against_subscription: int
    opened: bool
    policy: str = DisputePolicy.FLAG


async def receive(run: Run, notice: DisputeNotice) -> None:
    state = run.state
    state.disputes = notice.against_subscription
    state.last_event = f"dispute {notice.dispute_id} {notice.status}"
    if (
        notice.opened
        and notice.policy == DisputePolicy.CANCEL_AT_PERIOD_END
        and not state.cancel_at_period_end
    ):
        try:
            check_portal_action(state, PortalAction.CANCEL_AT_PERIOD_END, workflow.now())
        except ApplicationError:
            return  # not cancellable now (already ended, not started): nothing to do
        await cancellation.cancel_at_period_end(run)
        state.last_event = f"dispute {notice.dispute_id}: cancelled at the period end"
    run.publisher.publish_now()
