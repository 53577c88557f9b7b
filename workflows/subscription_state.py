"""The subscription workflow's state and the pure arithmetic it needs.

``SubscriptionState`` is the one value carried through continue-as-new; it holds only
plain values (dataclasses, enums, UTC datetimes, ints), so the pydantic data converter
carries it through history. Nothing here reads a clock: ``now`` is always an argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from billing.catalog import Catalog, CustomerProfile, Price
from billing.events import EventBuffer
from billing.lifecycle import SubscriptionSnapshot, SubscriptionStatus, TransitionRecord
from billing.periods import period_end
from billing.proration import DEFAULT_CHANGE_POLICY, ChangePolicy

# Finished records kept in state; older ones live in the ledger and in past runs' history.
RECENT_LIMIT = 24

InvoicePurpose = Literal["first", "renewal", "proration"]
ChangeOutcome = Literal["applied", "scheduled", "withdrawn", "swapped_in_trial", "reverted"]


@dataclass(frozen=True)
class SubscriptionInput:
    """Start argument of a new subscription workflow."""

    subscription_id: str
    customer: CustomerProfile
    gateway_customer_id: str
    default_payment_method_id: str | None
    plan_id: str
    currency: str
    start_at: datetime  # UTC; a future start waits for it on a durable timer
    trial: bool = False  # start with the plan's trial_days
    catalog_version: int = 1
    change_policy: ChangePolicy = DEFAULT_CHANGE_POLICY
    # Tells the run argument's shapes apart (see SubscriptionWorkflow.run).
    shape: Literal["input"] = "input"


@dataclass(frozen=True)
class InvoiceRecord:
    invoice_id: str
    number: str | None
    purpose: InvoicePurpose
    currency: str
    period_start: datetime
    period_end: datetime
    total: int
    tax_total: int
    status: str  # open | paid | void


@dataclass
class UnpaidInvoice:
    """An invoice whose charge failed; the seam where dunning takes over."""

    invoice_id: str
    amount: int
    currency: str
    attempts: int
    decline_family: str | None
    decline_reason: str | None
    payment_intent_id: str | None
    recorded_at: datetime
    dunning_workflow_id: str | None = None


@dataclass(frozen=True)
class PlanChangeRecord:
    change_id: str
    from_plan: str
    to_plan: str
    kind: str  # upgrade | downgrade | lateral
    requested_at: datetime
    effective_at: datetime
    outcome: ChangeOutcome
    invoice_id: str | None = None
    credit_note_id: str | None = None
    review_workflow_id: str | None = None


@dataclass
class SubscriptionState:
    subscription_id: str
    shape: Literal["state"] = "state"
    activated: bool = False
    customer: CustomerProfile | None = None
    gateway_customer_id: str | None = None
    payment_method_id: str | None = None
    plan_id: str | None = None
    currency: str | None = None
    start_at: datetime | None = None
    trial: bool = False
    catalog_version: int = 1
    change_policy: ChangePolicy = DEFAULT_CHANGE_POLICY
    catalog: Catalog | None = None
    status: SubscriptionStatus = SubscriptionStatus.INCOMPLETE
    anchor: datetime | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    cancel_at_period_end: bool = False
    pending_plan_id: str | None = None
    migrating_to: str | None = None  # an immediate plan change waiting for its charge
    transitions: list[TransitionRecord] = field(default_factory=list)
    invoices: list[InvoiceRecord] = field(default_factory=list)
    invoice_count: int = 0
    unpaid_invoices: list[UnpaidInvoice] = field(default_factory=list)
    plan_changes: list[PlanChangeRecord] = field(default_factory=list)
    events: EventBuffer = field(default_factory=EventBuffer)
    last_event: str | None = None
    runs: int = 1

    @classmethod
    def from_input(cls, start: SubscriptionInput) -> SubscriptionState:
        state = cls(subscription_id=start.subscription_id)
        state.activate(start)
        return state

    def activate(self, start: SubscriptionInput) -> None:
        self.activated = True
        self.customer = start.customer
        self.gateway_customer_id = start.gateway_customer_id
        self.payment_method_id = start.default_payment_method_id
        self.plan_id = start.plan_id
        self.currency = start.currency
        self.start_at = start.start_at
        self.trial = start.trial
        self.catalog_version = start.catalog_version
        self.change_policy = start.change_policy

    def price(self, plan_id: str | None = None) -> Price:
        assert self.catalog is not None and self.currency is not None and self.plan_id
        return self.catalog.price(plan_id or self.plan_id, self.currency)

    def snapshot(self) -> SubscriptionSnapshot:
        return SubscriptionSnapshot(
            status=self.status,
            cancel_at_period_end=self.cancel_at_period_end,
            plan_id=self.plan_id or "",
            current_period_end=self.period_end,
            pending_plan_id=self.pending_plan_id,
        )

    def remember_invoice(self, record: InvoiceRecord) -> None:
        self.invoices.append(record)
        self.invoice_count += 1
        del self.invoices[:-RECENT_LIMIT]

    def set_invoice_status(self, invoice_id: str, status: str) -> None:
        for i, record in enumerate(self.invoices):
            if record.invoice_id == invoice_id:
                self.invoices[i] = InvoiceRecord(**{**record.__dict__, "status": status})

    def remember_change(self, record: PlanChangeRecord) -> None:
        self.plan_changes.append(record)
        del self.plan_changes[:-RECENT_LIMIT]

    def trim(self) -> None:
        """Bound what continue-as-new carries forward."""
        del self.transitions[:-RECENT_LIMIT]


def next_period(price: Price, anchor: datetime, start: datetime) -> tuple[datetime, datetime]:
    """The billing period that begins at ``start`` on the anchor's grid."""
    return start, period_end(anchor, start, price.interval, price.interval_count)


def trial_end(start: datetime, trial_days: int) -> datetime:
    return start + timedelta(days=trial_days)


def details_markdown(state: SubscriptionState, now: datetime, next_timer: str) -> str:
    """The workflow's current details in the Temporal UI."""
    rows = [
        f"**{state.status}** on `{state.plan_id}` ({state.currency})",
        "",
        f"- period: {_stamp(state.period_start)} → {_stamp(state.period_end)}",
        f"- next timer: {next_timer}",
        f"- cancel at period end: {'yes' if state.cancel_at_period_end else 'no'}",
    ]
    if state.pending_plan_id:
        rows.append(f"- scheduled plan change: `{state.pending_plan_id}` at period end")
    if state.unpaid_invoices:
        ids = ", ".join(u.invoice_id for u in state.unpaid_invoices)
        rows.append(f"- unpaid invoices: {ids}")
    if state.events.buffered_count:
        rows.append(f"- buffered gateway events: {state.events.buffered_count}")
    rows.append(f"- last event: {state.last_event or '—'} (as of {_stamp(now)})")
    return "\n".join(rows)


def _stamp(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


# --- portal messages (Temporal update arguments and results) --------------------------


@dataclass(frozen=True)
class ChangePlanRequest:
    plan_id: str


@dataclass(frozen=True)
class ChangePlanResult:
    outcome: ChangeOutcome
    plan_id: str  # the plan the subscription is on after the update
    pending_plan_id: str | None
    effective_at: datetime
    invoice_id: str | None = None
    amount_charged: int = 0
    credit_note_id: str | None = None
    review_workflow_id: str | None = None


@dataclass(frozen=True)
class SetPaymentMethodRequest:
    payment_method_id: str


@dataclass(frozen=True)
class CancellationResult:
    cancel_at_period_end: bool
    access_until: datetime | None


def static_summary(start: SubscriptionInput) -> str:
    """The one-line summary a starter passes as ``static_summary=`` (Temporal UI)."""
    trial = ", trial" if start.trial else ""
    return (
        f"Subscription {start.subscription_id} · customer {start.customer.customer_id} · "
        f"{start.plan_id} {start.currency}{trial}"
    )
