"""What every workflow that charges shares about gateway outages: how an infrastructure
failure is recognised in a charge activity's failure, and how long it is waited out.

A charge activity retries an unavailable gateway with its own policy first; when that
gives up on an infrastructure failure (the gateway unreachable or timing out, a 5xx, a
rate limit, the API key refused), nothing is known about the card. The workflow then
sets the ``DunwellGatewayAlert`` search attribute and charges again, same request and
same idempotency key, with ``OUTAGE_RETRY`` until the gateway answers: the outage is
never recorded as a decline, never counts as an attempt, and the customer hears nothing
of it. ``workflows/subscription/outage.py`` does this for a renewal's charge,
``dunning_outage`` for a dunning retry.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    # Shared with activities and the data converter: never re-imported in the sandbox.
    from billing.gateway import InfrastructureFailure, infrastructure_failure

# Retries through an outage: no limit on attempts, at most half an hour apart.
OUTAGE_RETRY = RetryPolicy(
    initial_interval=timedelta(minutes=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=30),
    maximum_attempts=0,
)


def failure_of(err: ActivityError) -> InfrastructureFailure | None:
    """The infrastructure failure that made the activity give up, if that is what it was."""
    cause = err.cause
    if not isinstance(cause, ApplicationError):
        return None
    return infrastructure_failure(cause.type, cause.details[0] if cause.details else None)
