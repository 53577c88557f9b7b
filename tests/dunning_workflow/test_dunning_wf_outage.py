"""A gateway outage during a dunning retry is waited out: it is not an attempt, the
customer gets no failure notice for it, and the retry goes through when the gateway
answers again (the scripted gateway answers every unscripted charge with a 500)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from billing.dunning import RetryAt
from tests.dunning_workflow.harness import Dunning, decline_of
from workflows.search_attributes import GATEWAY_ALERT


async def alert_upserts(handle: WorkflowHandle[Any, Any]) -> list[str | None]:
    """Each value the run upserted for the alert, in order (None: unset). Read from
    history: the time-skipping server cannot describe a run with an unset datetime
    attribute (the dunning run's next retry, unset while a charge is in flight)."""
    found: list[str | None] = []
    for event in (await handle.fetch_history()).events:
        if event.event_type != EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            continue
        fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
        payload = fields.indexed_fields.get(GATEWAY_ALERT.name)
        if payload is not None:
            found.append(json.loads(payload.data) if payload.data else None)
    return found


async def test_outage_during_a_retry_is_not_an_attempt_nor_a_notice(dunning: Dunning) -> None:
    scripted = dunning.scripted
    assert scripted is not None
    invoice = dunning.invoice()
    handle = await dunning.start(invoice, first_decline=decline_of("decline_insufficient_funds"))
    first = await dunning.eventually(handle, lambda v: isinstance(v.decision, RetryAt))
    assert first.next_retry_at is not None

    # Nothing scripted: the retry's charge meets a gateway that answers 500 only.
    await dunning.env.sleep(first.next_retry_at - await dunning.env.get_current_time())
    await dunning.env.sleep(timedelta(minutes=30))
    during = await dunning.eventually(handle, lambda v: v.charge_in_flight)
    assert await alert_upserts(handle) == ["server_error"]
    assert len(during.state.attempts) == 1, "the outage is not an attempt"
    assert scripted.unscripted > 6, "retried past the charge's own retries"
    assert scripted.keys and set(scripted.keys) == {f"{invoice.id}:dunning:2"}, "one key"

    scripted.succeed()
    result = await handle.result()
    assert result.outcome == "recovered"
    assert result.attempts == 2, "the renewal's decline and the retry that went through"
    assert dunning.kinds().count("failure_notice") == 1, "only the real decline's notice"
    assert await alert_upserts(handle) == ["server_error", None], "raised, then cleared"
    assert str(dunning.store.get(invoice.id).status) == "paid"
