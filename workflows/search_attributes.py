"""Typed custom search attributes that Dunwell workflows upsert.

They must be registered on the Temporal namespace before a workflow upserts them:
``dunwell dev`` passes them to ``temporal server start-dev --search-attribute``; tests
register them through the operator service (see ``register_search_attributes``).
"""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType as IndexType
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

STATUS = SearchAttributeKey.for_keyword("DunwellStatus")
CUSTOMER_ID = SearchAttributeKey.for_keyword("DunwellCustomerId")
PLAN = SearchAttributeKey.for_keyword("DunwellPlan")
PERIOD_END = SearchAttributeKey.for_datetime("DunwellPeriodEnd")
CANCEL_AT_PERIOD_END = SearchAttributeKey.for_bool("DunwellCancelAtPeriodEnd")
BUFFERED_EVENTS = SearchAttributeKey.for_int("DunwellBufferedEvents")
DUNNING_ATTEMPT = SearchAttributeKey.for_int("DunwellDunningAttempt")
NEXT_RETRY_AT = SearchAttributeKey.for_datetime("DunwellNextRetryAt")
LAST_DECLINE_CODE = SearchAttributeKey.for_keyword("DunwellLastDeclineCode")
POLICY_VERSION = SearchAttributeKey.for_keyword("DunwellPolicyVersion")
REVIEW_REASON = SearchAttributeKey.for_keyword("DunwellReviewReason")
PAYOUT_ID = SearchAttributeKey.for_keyword("DunwellPayoutId")
RECON_STATUS = SearchAttributeKey.for_keyword("DunwellReconStatus")
# Set while a charge is retried through a gateway outage: the infrastructure failure
# (authentication, permission, connection, rate_limit, server_error); unset once it ends.
GATEWAY_ALERT = SearchAttributeKey.for_keyword("DunwellGatewayAlert")
# ``failing`` while an endpoint's deliveries are given up on (workflows/outbound_delivery.py).
OUTBOUND_ALERT = SearchAttributeKey.for_keyword("DunwellOutboundAlert")

ALL: tuple[SearchAttributeKey[Any], ...] = (
    STATUS,
    CUSTOMER_ID,
    PLAN,
    PERIOD_END,
    CANCEL_AT_PERIOD_END,
    BUFFERED_EVENTS,
    DUNNING_ATTEMPT,
    NEXT_RETRY_AT,
    LAST_DECLINE_CODE,
    POLICY_VERSION,
    REVIEW_REASON,
    GATEWAY_ALERT,
    PAYOUT_ID,
    RECON_STATUS,
    OUTBOUND_ALERT,
)

# Names used by `temporal server start-dev --search-attribute Name=Type`.
_CLI_TYPES = {
    IndexType.KEYWORD: "Keyword",
    IndexType.DATETIME: "Datetime",
    IndexType.BOOL: "Bool",
    IndexType.INT: "Int",
}


def cli_flags() -> list[str]:
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={_CLI_TYPES[key.indexed_value_type]}"]
    return flags


async def register_search_attributes(client: Client) -> None:
    """Register every Dunwell search attribute on the client's namespace (idempotent)."""
    request = AddSearchAttributesRequest(
        namespace=client.namespace,
        search_attributes={
            key.name: IndexedValueType.ValueType(int(key.indexed_value_type)) for key in ALL
        },
    )
    try:
        await client.operator_service.add_search_attributes(request)
    except RPCError as err:
        if err.status != RPCStatusCode.ALREADY_EXISTS:
            raise
