"""Gateway outages: an infrastructure failure is waited out, never taken for a decline.

A charge activity retries an unavailable gateway with ``payments.CHARGE_RETRY`` (about a
quarter of an hour). When those retries run out on an infrastructure failure (the
gateway unreachable or timing out, a 5xx, a rate limit, the API key refused), nothing
about the card is known: the run raises the ops alert (the ``DunwellGatewayAlert``
search attribute names the failure; ``GET /v1/ops/gateway-alerts`` and
``dunwell gateway alerts`` list it) and charges again under the same idempotency key
with ``OUTAGE_RETRY``: backoff up to half an hour, for as long as the outage lasts.
The invoice is not handed to dunning and the customer is told nothing. The alert is
cleared as soon as the charge gets an answer (paid, declined or refused).

Runs recorded before this behaviour replay as they were: the second charge is behind
the ``PATCH_GATEWAY_OUTAGE`` marker, which only a run that met an outage records.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.gateway_outage import OUTAGE_RETRY, failure_of
from workflows.subscription.generations import PATCH_GATEWAY_OUTAGE
from workflows.subscription.run import Run

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities
    from billing.gateway import InfrastructureFailure
    from workflows import search_attributes as sa

_Param = TypeVar("_Param")
_Result = TypeVar("_Result")


async def charge(
    run: Run,
    activity: Callable[[BillingActivities, _Param], Awaitable[_Result]],
    request: _Param,
    *,
    retry_policy: RetryPolicy,
    start_to_close_timeout: timedelta,
) -> _Result:
    """Run a charge activity; when it gives up on an infrastructure failure, alert ops and
    run it again (same request, same idempotency key) until the gateway answers."""
    try:
        return await workflow.execute_activity_method(
            activity,
            request,
            start_to_close_timeout=start_to_close_timeout,
            retry_policy=retry_policy,
        )
    except ActivityError as err:
        failure = failure_of(err)
        if failure is None or not workflow.patched(PATCH_GATEWAY_OUTAGE):
            raise
    raise_alert(run, failure)
    try:
        return await workflow.execute_activity_method(
            activity,
            request,
            start_to_close_timeout=start_to_close_timeout,
            retry_policy=OUTAGE_RETRY,
            summary=f"charge retried through a gateway outage ({failure})",
        )
    finally:
        clear_alert(run)


def raise_alert(run: Run, failure: InfrastructureFailure) -> None:
    state = run.state
    state.gateway_alert = str(failure)
    state.last_event = f"gateway unavailable ({failure}): charge retried until it answers"
    workflow.upsert_search_attributes([sa.GATEWAY_ALERT.value_set(str(failure))])
    run.publish_now()


def clear_alert(run: Run) -> None:
    if run.state.gateway_alert is None:
        return
    run.state.gateway_alert = None
    workflow.upsert_search_attributes([sa.GATEWAY_ALERT.value_unset()])
    run.publish_now()
