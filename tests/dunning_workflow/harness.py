"""Helpers for the dunning workflow tests: start runs, read mail, poll state."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.gateway_errors import decline_info_from_error_object
from activities.notifications import Notifier
from activities.stripe_gateway import StripeGateway
from billing.declines import DeclineInfo
from billing.dunning import CardRef
from dunwell.settings import Settings
from ledger.invoices import CustomerTaxDetails, DraftLine, InvoiceStore, InvoiceView
from tax import Address, BuiltinTaxEngine, Registration, TaxableLine, TaxCustomer, TaxType
from tests.dunning_workflow.scripted_stripe import ScriptedStripe
from tests.gateway.recorded import load_recording
from tests.support.worker import dunwell_worker
from workflows.dunning import DunningInput, DunningResult, DunningView, DunningWorkflow

API_KEY = "sk_test_dunwell_dunning"
PUBLIC_BASE_URL = "https://billing.example.test"
MAIL_FROM = "billing@dunwell.example.test"
VISA = CardRef("fpvis0002", "visa")
MASTERCARD = CardRef("fpmas4444", "mastercard")
HISTORIES = Path(__file__).parent / "histories"
RECORD_ENV = "DUNWELL_RECORD_HISTORIES"
REGISTRATIONS = (Registration("EU", TaxType.VAT, date(2020, 1, 1), None, "EU372000041"),)
TAX = BuiltinTaxEngine(seller_country="IE")


@dataclass(frozen=True)
class Mail:
    key: str
    message_id: str
    to: str
    subject: str
    body: str


def decline_of(recording: str) -> DeclineInfo:
    """The DeclineInfo a recorded decline carries, as the adapter reads it."""
    error = load_recording(recording)["body"]["error"]
    return decline_info_from_error_object(error, error.get("payment_intent"))


@dataclass
class Dunning:
    env: WorkflowEnvironment
    engine: Engine
    store: InvoiceStore
    gateway_url: str
    scripted: ScriptedStripe | None
    smtp_port: int
    mail_dir: Path
    task_queue: str = field(default_factory=lambda: f"dun-{uuid.uuid4().hex[:10]}")
    _gateways: list[StripeGateway] = field(default_factory=list)

    @property
    def client(self) -> Any:
        return self.env.client

    def notifier(self) -> Notifier:
        return Notifier(
            self.engine,
            smtp_host="127.0.0.1",
            smtp_port=self.smtp_port,
            mail_from=MAIL_FROM,
            public_base_url=PUBLIC_BASE_URL,
        )

    def settings(self) -> Settings:
        return Settings(
            env="test",
            database_url=self.engine.url.render_as_string(hide_password=False),
            stripe_api_key=API_KEY,
            stripe_api_base=self.gateway_url,
            smtp_host="127.0.0.1",
            smtp_port=self.smtp_port,
            mail_from=MAIL_FROM,
            public_base_url=PUBLIC_BASE_URL,
            # No sticky cache: every workflow task replays from history (a determinism
            # check on each step), and a stopped worker leaves no sticky poll behind.
            worker_max_cached_workflows=0,
        )

    @contextlib.asynccontextmanager
    async def worker(self) -> AsyncIterator[Worker]:
        gateway = StripeGateway(API_KEY, self.gateway_url, timeout_seconds=60)
        self._gateways.append(gateway)
        worker = dunwell_worker(
            self.client,
            self.settings(),
            task_queue=self.task_queue,
            engine=self.engine,
            gateway=gateway,
            workflows=[DunningWorkflow],
        )
        async with worker:
            yield worker

    def close(self) -> None:
        for gateway in self._gateways:
            gateway.close()

    def invoice(self, net: int = 2500, customer_id: str | None = None) -> InvoiceView:
        """A finalized, open invoice (German customer, 19 % VAT on top of ``net``)."""
        customer = customer_id or f"cus_{uuid.uuid4().hex[:10]}"
        draft = self.store.create_draft(
            key=f"inv-{uuid.uuid4().hex[:12]}",
            customer_id=customer,
            subscription_id=f"sub_{uuid.uuid4().hex[:10]}",
            currency="EUR",
            lines=[DraftLine("base", "Pro plan", net)],
        )
        at = datetime.now(UTC)
        lines = [TaxableLine(x.line_id, x.amount, "EUR", x.tax_behavior) for x in draft.lines]
        quote = TAX.quote(lines, TaxCustomer(Address("DE")), REGISTRATIONS, at)
        details = CustomerTaxDetails("DE", None, None, "Customer GmbH", "Invalidenstr. 1")
        return self.store.finalize(draft.id, quote=quote, customer_tax=details, at=at)

    async def start(
        self,
        invoice: InvoiceView,
        *,
        first_decline: DeclineInfo | None,
        policy: tuple[str, int] = ("standard", 2),
        card: CardRef = VISA,
        payment_method_id: str = "pm_1RecVis0002",
        gateway_customer_id: str | None = None,
        utc_offset_minutes: int = 60,
    ) -> WorkflowHandle[DunningWorkflow, DunningResult]:
        now = await self.env.get_current_time()
        # A customer of its own per run unless told: the card attempt ledger counts a
        # card's attempts per gateway customer, across every test in the session.
        gateway_customer_id = gateway_customer_id or f"cus_Rec{uuid.uuid4().hex[:12]}"
        start = DunningInput(
            invoice_id=invoice.id,
            subscription_id=invoice.subscription_id or "sub_x",
            customer_id=invoice.customer_id,
            customer_email="ada@example.test",
            gateway_customer_id=gateway_customer_id,
            payment_method_id=payment_method_id,
            card=card,
            amount=invoice.amount_remaining,
            currency=invoice.currency,
            utc_offset_minutes=utc_offset_minutes,
            policy_id=policy[0],
            policy_version=policy[1],
            first_decline=first_decline,
            started_at=now,
        )
        return await self.client.start_workflow(
            DunningWorkflow.run,
            start,
            id=f"dunning-{invoice.id}",
            task_queue=self.task_queue,
            static_summary=f"Dunning {invoice.id}",
        )

    async def view(self, handle: WorkflowHandle[Any, Any]) -> DunningView:
        view: DunningView = await handle.query(DunningWorkflow.state)
        return view

    async def eventually(
        self,
        handle: WorkflowHandle[Any, Any],
        predicate: Callable[[DunningView], bool],
        timeout: float = 15.0,
    ) -> DunningView:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            view = await self.view(handle)
            if predicate(view):
                return view
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"condition never held; last view: {view}")
            await asyncio.sleep(0.05)

    async def move_clock_to_a_quiet_early_morning(self) -> None:
        """03:00 UTC on a day of month away from the standard policy's pay dates (1st,
        15th, last business day). An insufficient-funds retry leans to the customer's
        local morning and to pay dates, so from an arbitrary instant it may land less than
        ``reminder_before_retry_hours`` after the failure, and then no reminder is planned
        (the failure notice already names the retry). From this instant, for a customer
        at UTC+1 (the default), the first retry is always a later morning more than 24 h
        away, whatever the jitter: a retry reminder is always planned."""
        now = await self.env.get_current_time()
        moment = (now + timedelta(days=1)).replace(hour=3, minute=0, second=0, microsecond=0)
        while not (2 <= moment.day <= 12 or 16 <= moment.day <= 26):
            moment += timedelta(days=1)
        await self.env.sleep(moment - now)

    async def sleep_until(self, moment: datetime) -> None:
        now = await self.env.get_current_time()
        if moment > now:
            await self.env.sleep(moment - now)

    def mails(self) -> list[Mail]:
        found = []
        for path in sorted(self.mail_dir.glob("*.eml")):
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            part = msg.get_body(preferencelist=("plain",))
            found.append(
                Mail(
                    key=str(msg["X-Dunwell-Notification-Key"]).strip(),
                    message_id=str(msg["Message-ID"]).strip(),
                    to=str(msg["To"]),
                    subject=str(msg["Subject"]),
                    body=str(part.get_content()) if part is not None else "",
                )
            )
        return found

    def kinds(self) -> list[str]:
        return [m.key.split(":")[2] for m in self.mails()]


async def record_history(handle: WorkflowHandle[Any, Any], name: str) -> None:
    """With DUNWELL_RECORD_HISTORIES=1, save this run's history for the replay test."""
    if not os.environ.get(RECORD_ENV):
        return
    history = await handle.fetch_history()
    HISTORIES.mkdir(exist_ok=True)
    (HISTORIES / f"{name}.json").write_text(
        json.dumps(json.loads(history.to_json()), indent=1) + "\n"
    )
