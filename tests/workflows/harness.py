"""Helpers for the workflow tests: the Billing handle, customers, polling, recording."""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import stripe
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, WorkflowExecutionStatus
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.stripe_gateway import StripeGateway
from billing.catalog import BillingAddress, CustomerProfile
from ledger.invoices import InvoiceStore
from ledger.posting import Ledger
from tax import Registration, TaxType
from workflows.subscription import SubscriptionWorkflow
from workflows.subscription.state import SubscriptionInput, SubscriptionState

API_KEY = "sk_test_dunwell_workflows"
VISA_OK = "4242424242424242"
FAILS_WHEN_CHARGED = "4000000000000341"
REQUIRES_3DS = "4000002500003155"
HISTORIES = Path(__file__).parent / "histories"
RECORD_ENV = "DUNWELL_RECORD_HISTORIES"

_CHILD_CLOSED = (
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT,
)
_WORKFLOW_CLOSED = (
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
)

# A seller established in Ireland, registered for the EU One-Stop Shop.
REGISTRATIONS = (Registration("EU", TaxType.VAT, date(2020, 1, 1), None, "EU372000041"),)


@dataclass
class Billing:
    """One test's view of the system: Temporal client, worker queue, store, gateway."""

    env: WorkflowEnvironment
    client: Client
    task_queue: str
    store: InvoiceStore
    ledger: Ledger
    stripe: stripe.StripeClient
    gateway: StripeGateway
    # Workflows this test started; the fixture terminates those still running, because
    # a timer that fires for a queue nobody polls any more stalls the shared clock.
    started: list[str] = field(default_factory=list)

    def card(self, number: str, expiry: tuple[int, int] = (12, 2031)) -> str:
        month, year = expiry
        pm = self.stripe.v1.payment_methods.create(
            params={
                "type": "card",
                "card": {"number": number, "exp_month": month, "exp_year": year, "cvc": "123"},
            }
        )
        return pm.id

    async def customer(
        self, number: str = VISA_OK, expiry: tuple[int, int] = (12, 2031)
    ) -> tuple[str, str]:
        """A gateway customer with a default card: (cus_…, pm_…)."""
        key = uuid.uuid4().hex
        customer_id = await self.gateway.create_customer(
            idempotency_key=f"{key}:customer", email="ada@example.test"
        )
        pm_id = self.card(number, expiry)
        await self.gateway.attach_payment_method(
            payment_method_id=pm_id, customer_id=customer_id, idempotency_key=f"{key}:attach"
        )
        await self.gateway.set_default_payment_method(
            customer_id=customer_id, payment_method_id=pm_id, idempotency_key=f"{key}:default"
        )
        return customer_id, pm_id

    async def paid_intent(
        self, customer_id: str, amount: int, metadata: dict[str, str], currency: str = "eur"
    ) -> str:
        """A PaymentIntent that succeeded at the gateway on a new working card of this
        customer (what a payment made outside the workflow leaves there)."""
        card = self.card(VISA_OK)
        await self.gateway.attach_payment_method(
            payment_method_id=card, customer_id=customer_id, idempotency_key=f"{card}:attach"
        )
        created = self.stripe.v1.payment_intents.create(
            params={
                "amount": amount,
                "currency": currency,
                "customer": customer_id,
                "payment_method": card,
                "payment_method_types": ["card"],
                "confirm": True,
                "metadata": metadata,
            }
        )
        assert created.status == "succeeded", created.status
        return str(created.id)

    async def subscribe(
        self,
        *,
        plan_id: str = "pro-monthly",
        start_at: datetime | None = None,
        trial: bool = False,
        card: str = VISA_OK,
        card_expiry: tuple[int, int] = (12, 2031),
        segment: str = "default",
        **overrides: Any,
    ) -> WorkflowHandle[SubscriptionWorkflow, SubscriptionState]:
        subscription_id = f"sub_{uuid.uuid4().hex[:12]}"
        gateway_customer, pm_id = await self.customer(card, card_expiry)
        start = SubscriptionInput(
            subscription_id=subscription_id,
            customer=profile(f"cust_{uuid.uuid4().hex[:10]}", segment),
            gateway_customer_id=gateway_customer,
            default_payment_method_id=pm_id,
            plan_id=plan_id,
            currency="EUR",
            start_at=start_at or await self.env.get_current_time(),
            trial=trial,
            **overrides,
        )
        self.started.append(f"subscription-{subscription_id}")
        await self.client.start_workflow(
            SubscriptionWorkflow.run,
            start,
            id=f"subscription-{subscription_id}",
            task_queue=self.task_queue,
            static_summary=f"Subscription {subscription_id}",
        )
        return self.client.get_workflow_handle_for(
            SubscriptionWorkflow.run, f"subscription-{subscription_id}"
        )

    async def first_after_now(self, month: int, *, leap: bool | None = None) -> datetime:
        """The next first day of ``month`` (in a leap year or not) after the server's
        now: the session's time-skipping clock only moves forward, test after test."""
        now = await self.env.get_current_time()
        year = now.year
        while True:
            candidate = utc(year, month, 1)
            if candidate > now + timedelta(days=1) and leap in (None, calendar.isleap(year)):
                return candidate
            year += 1

    async def soon(self) -> datetime:
        """A whole-second instant a day from the server's now."""
        now = await self.env.get_current_time()
        return (now + timedelta(days=1)).replace(microsecond=0)

    async def terminate_started(self) -> None:
        for workflow_id in self.started:
            # Dunning children first, and the parent only once it has seen them close:
            # the time-skipping test server stops skipping time for good when a child
            # closes after its parent, or when asked to terminate an unknown workflow
            # (both observed with temporalio 1.35's test server).
            with contextlib.suppress(RPCError, WorkflowQueryFailedError):
                state = await self.client.get_workflow_handle_for(
                    SubscriptionWorkflow.run, workflow_id
                ).query(SubscriptionWorkflow.state)
                for invoice in state.invoices:
                    await self._terminate_if_running(f"dunning-{invoice.invoice_id}")
            with contextlib.suppress(RPCError):
                await self._children_closed(workflow_id)
            await self._terminate_if_running(workflow_id)

    async def _terminate_if_running(self, workflow_id: str) -> None:
        with contextlib.suppress(RPCError):
            described = await self.client.workflow_service.describe_workflow_execution(
                DescribeWorkflowExecutionRequest(
                    namespace=self.client.namespace,
                    execution=WorkflowExecution(workflow_id=workflow_id),
                )
            )
            status = described.workflow_execution_info.status
            if status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING:
                await self.client.get_workflow_handle(workflow_id).terminate("test finished")

    async def _children_closed(self, workflow_id: str, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            history = await self.client.get_workflow_handle(workflow_id).fetch_history()
            kinds = [e.event_type for e in history.events]
            if (
                kinds.count(EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED)
                <= sum(kinds.count(k) for k in _CHILD_CLOSED)
                or kinds[-1] in _WORKFLOW_CLOSED
            ):
                return
            await asyncio.sleep(0.05)

    async def sleep_until(self, moment: datetime) -> None:
        now = await self.env.get_current_time()
        if moment > now:
            await self.env.sleep(moment - now)


def profile(customer_id: str, segment: str = "default") -> CustomerProfile:
    return CustomerProfile(
        customer_id=customer_id,
        email="ada@example.test",
        name="Ada Lovelace",
        address=BillingAddress(
            country="DE", state=None, postal_code="10115", city="Berlin", line1="Invalidenstr. 1"
        ),
        segment=segment,
    )


async def eventually(
    handle: WorkflowHandle[Any, Any],
    predicate: Callable[[SubscriptionState], bool],
    *,
    timeout: float = 15.0,
) -> SubscriptionState:
    """Query the latest run until ``predicate`` holds (activities finish in real time)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            state = await handle.query(SubscriptionWorkflow.state, rpc_timeout=timedelta(seconds=3))
        except RPCError as err:
            # A query that reaches a run as it continues as new can go unanswered on the
            # time-skipping test server (the client reports its own timeout as CANCELLED,
            # "Timeout expired"); the next query goes to the new run.
            if err.status not in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
                raise
            continue
        if predicate(state):
            return state
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition never held; last state: {state}")
        await asyncio.sleep(0.05)


async def record_history(handle: WorkflowHandle[Any, Any], name: str) -> None:
    """With DUNWELL_RECORD_HISTORIES=1, save this run's history for the replay test.

    A history already recorded is kept (it is what running workflows of that version
    look like); delete the file to record it again."""
    if not os.environ.get(RECORD_ENV) or (HISTORIES / f"{name}.json").exists():
        return
    history = await handle.fetch_history()
    HISTORIES.mkdir(exist_ok=True)
    document = json.loads(history.to_json())
    (HISTORIES / f"{name}.json").write_text(json.dumps(document, indent=1) + "\n")


async def previous_run(
    client: Client, handle: WorkflowHandle[Any, Any]
) -> WorkflowHandle[Any, Any]:
    """The run that continued as new into the workflow's current run."""
    latest = await handle.fetch_history()
    started = latest.events[0].workflow_execution_started_event_attributes
    assert started.continued_execution_run_id, "the current run is the first one"
    return client.get_workflow_handle(handle.id, run_id=started.continued_execution_run_id)


async def first_run_of(
    client: Client, handle: WorkflowHandle[Any, Any]
) -> WorkflowHandle[Any, Any]:
    """The workflow's first run (the one its id was started with)."""
    described = await handle.describe()
    first = described.raw_description.workflow_execution_info.first_run_id
    assert first, "the server reports the first run"
    return client.get_workflow_handle(handle.id, run_id=first)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


ONE_SECOND = timedelta(seconds=1)
