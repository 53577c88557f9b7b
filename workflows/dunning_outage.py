"""A dunning retry that meets a gateway outage waits it out (``workflows.gateway_outage``).

When the retry's charge activity gives up on an infrastructure failure, the run sets the
``DunwellGatewayAlert`` search attribute and charges again under the same idempotency
key until the gateway answers. The outage is not an attempt: the scheduler is fed only
the answer (paid or declined), so it neither counts against the network caps nor sends
the customer a failure notice. Behind ``PATCH_DUNNING_OUTAGE``, which only runs that met
an outage record.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows.gateway_outage import OUTAGE_RETRY, failure_of
from workflows.search_attributes import GATEWAY_ALERT

with workflow.unsafe.imports_passed_through():
    from activities.dunning import DunningActivities, DunningChargeRequest, DunningChargeResult
    from billing.declines import DeclineInfo

PATCH_DUNNING_OUTAGE = "dunning-gateway-outage"
# An attempt whose charge activity gave up for another reason (a wrong request past its
# retries) is recorded as an issuer outage: the scheduler then retries soon, within caps.
GATEWAY_GAVE_UP = DeclineInfo(code="processing_error")


async def outcome(
    charge: workflow.ActivityHandle[DunningChargeResult],
    request: DunningChargeRequest | None,
    start_to_close: timedelta,
) -> DunningChargeResult:
    """The charge's result; an outage is waited out (with the alert) when ``request``
    is the charge's own request, else a charge that failed outright is an outage decline."""
    try:
        return await charge
    except ActivityError as err:
        failure = failure_of(err)
        if failure is None or request is None or not workflow.patched(PATCH_DUNNING_OUTAGE):
            return DunningChargeResult("declined", decline=GATEWAY_GAVE_UP)
    workflow.upsert_search_attributes([GATEWAY_ALERT.value_set(str(failure))])
    try:
        return await workflow.execute_activity_method(
            DunningActivities.charge,
            request,
            start_to_close_timeout=start_to_close,
            retry_policy=OUTAGE_RETRY,
            summary=f"charge attempt {request.attempt} through a gateway outage ({failure})",
        )
    except ActivityError:
        return DunningChargeResult("declined", decline=GATEWAY_GAVE_UP)
    finally:
        workflow.upsert_search_attributes([GATEWAY_ALERT.value_unset()])
