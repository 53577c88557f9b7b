"""Cancellation at the period end, and its undo.

Access ends exactly at the period boundary (``renewal.close_period``). Each dunning run
is told before the update returns, so no dunning charge starts after a cancellation; an
undo resumes the runs that paused for it.
"""

from __future__ import annotations

from workflows.subscription import dunning_link
from workflows.subscription.generations import PATCH_UNDO_RESUMES_DUNNING
from workflows.subscription.run import Run


async def cancel_at_period_end(run: Run) -> None:
    state = run.state
    state.cancel_at_period_end = True
    state.last_event = "cancellation requested for the period end"
    # Delivered before the update returns: no dunning charge starts after this.
    for child_id in dunning_link.children(state):
        await dunning_link.tell(run, child_id, "notify_customer_cancelled")


async def undo(run: Run) -> None:
    state = run.state
    state.cancel_at_period_end = False
    state.last_event = "cancellation undone"
    children = dunning_link.children(state)
    if children and run.patched(PATCH_UNDO_RESUMES_DUNNING):
        # Each paused dunning run picks up its schedule again; one that has already
        # stopped for the cancellation ignores this.
        for child_id in children:
            await dunning_link.tell(run, child_id, "notify_cancellation_undone")
