"""The subscription workflow's state and the pure arithmetic it needs.

``SubscriptionState`` is the one value carried through continue-as-new; it holds only
plain values (dataclasses, enums, UTC datetimes, ints), so the pydantic data converter
carries it through history. Nothing here reads a clock: ``now`` is always an argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from billing.catalog import Catalog, CustomerProfile, Price
from billing.declines import DeclineInfo
from billing.entitlements import Access, AccessFacts, access
from billing.events import EventBuffer
from billing.gateway import PaymentMethodDetails
from billing.lifecycle import SubscriptionSnapshot, SubscriptionStatus, TransitionRecord
from billing.money import Money
from billing.periods import period_end
from billing.proration import DEFAULT_CHANGE_POLICY, ChangePolicy
from billing.sca import PaymentHistory

# Finished records kept in state; older ones live in the ledger and in past runs' history.
RECENT_LIMIT = 24

InvoicePurpose = Literal["first", "renewal", "proration"]
ChangeOutcome = Literal["applied", "scheduled", "withdrawn", "swapped_in_trial", "reverted"]


@dataclass(frozen=True)
class GatewayPolicy:
    """How the workflow waits on the gateway and the customer."""

    # A relay sequence gap older than this triggers a re-sync from the gateway.
    gap_timeout: timedelta = timedelta(minutes=10)
    # The expiring-card notice goes out this long before the card's expiry.
    expiring_card_notice: timedelta = timedelta(days=30)
    # How long a renewal waits for on-session 3-D Secure before dunning takes over.
    action_required_deadline: timedelta = timedelta(hours=72)


DEFAULT_GATEWAY_POLICY = GatewayPolicy()


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
    gateway_policy: GatewayPolicy = DEFAULT_GATEWAY_POLICY
    # Tells the run argument's shapes apart (see SubscriptionWorkflow.run).
    shape: Literal["input"] = "input"
    # The run attaches default_payment_method_id at the gateway itself, before its first
    # charge, so a start Temporal never accepted changed nothing at the gateway (the API
    # only checks the token). False in starts made before, whose card was attached first.
    attach_payment_method: bool = False


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
    dunning_workflow_id: str | None = None  # the running dunning child, if any
    # The decline of the failed charge, as the gateway reported it (dunning starts from it).
    first_decline: DeclineInfo | None = None


@dataclass(frozen=True)
class DunningOutcome:
    """What a dunning child reported (its ``DunningResult``), waiting to be applied: a
    recovery at once, a stop's end action exactly at ``revoke_access_at``."""

    invoice_id: str
    outcome: Literal["recovered", "stopped"]
    reason: str
    attempts: int
    received_at: datetime
    end_action: str | None = None  # cancel | mark_unpaid | leave_past_due
    revoke_access_at: datetime | None = None
    payment_ref: str | None = None
    duplicate_payment_ref: str | None = None

    def due_at(self) -> datetime:
        if self.outcome == "stopped" and self.revoke_access_at is not None:
            return max(self.revoke_access_at, self.received_at)
        return self.received_at


@dataclass(frozen=True)
class PaymentMethodInfo:
    """The card on file as the portal shows it: a token and non-sensitive details."""

    id: str
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    fingerprint: str | None = None  # the gateway's card fingerprint (network caps count by it)

    @classmethod
    def of(cls, details: PaymentMethodDetails) -> PaymentMethodInfo:
        return cls(
            details.id,
            details.brand,
            details.last4,
            details.exp_month,
            details.exp_year,
            details.fingerprint,
        )

    @property
    def described(self) -> bool:
        return self.exp_month is not None and self.exp_year is not None

    def expires_at(self) -> datetime | None:
        """A card is valid through the last day of its expiry month (UTC)."""
        if self.exp_month is None or self.exp_year is None or not 1 <= self.exp_month <= 12:
            return None
        year, month = divmod(self.exp_year * 12 + self.exp_month, 12)
        return datetime(year, month + 1, 1, tzinfo=UTC)

    def expiry_key(self) -> str:
        return f"{self.id}:{self.exp_year}-{self.exp_month}"


NoticeKind = Literal["expiring_card", "action_required"]


@dataclass(frozen=True)
class Notice:
    """Something the customer must be told; ``key`` makes it once-only."""

    kind: NoticeKind
    key: str
    at: datetime
    payment_method_id: str | None = None
    invoice_id: str | None = None
    payment_intent_id: str | None = None
    due_at: datetime | None = None  # card expiry, or the confirmation deadline
    portal_path: str = "/portal"


EventValue = str | int | bool | None


@dataclass(frozen=True)
class OutboundEvent:
    """An event for the SaaS product, decided with the change it reports; ``key`` (the
    subscription and the run's event count) makes the outbox keep it once."""

    key: str
    type: str
    at: datetime
    data: dict[str, EventValue] = field(default_factory=dict)


@dataclass(frozen=True)
class ToldState:
    """What the subscription's events have told the product so far."""

    status: SubscriptionStatus
    plan_id: str | None
    cancel_at_period_end: bool
    has_access: bool


ActionStatus = Literal["waiting", "confirmed", "expired"]


@dataclass(frozen=True)
class PendingAction:
    """An issuer asked for 3-D Secure on an off-session charge; the customer must confirm
    on-session before ``deadline``. The client secret is read from the gateway when the
    portal asks for it, never kept in state (queries would expose it)."""

    invoice_id: str
    payment_intent_id: str
    amount: int
    currency: str
    requested_at: datetime
    deadline: datetime
    status: ActionStatus = "waiting"
    # billing.sca.challenge_decision for the on-session confirmation.
    challenge: bool = True
    exemption: str | None = None
    challenge_reason: str | None = None
    # A frictionless on-session attempt is made at most once per pending action.
    frictionless_attempted: bool = False


class ConfirmationRefused(Exception):
    """Why a pending payment cannot be confirmed now; ``code`` is the machine-readable
    reason (the workflow's update validators and the portal API both answer with it)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ResyncRecord:
    """A sequence gap that timed out and what the gateway re-sync found (for ops)."""

    gap_first: int
    gap_last: int
    waiting_since: datetime
    resynced_at: datetime
    payment_intents: list[str]
    settled_invoices: list[str]


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
    # Why a change was reverted: a decline reason, or authentication_failed /
    # authentication_timeout for a portal upgrade whose 3-D Secure did not complete.
    reason: str | None = None


AuthenticationReport = Literal["waiting", "succeeded", "failed"]


@dataclass(frozen=True)
class UpgradeAuthentication:
    """A portal upgrade whose on-session proration charge waits for the customer's 3-D
    Secure (``workflows/subscription/upgrade_payment.py``). The client secret is read
    from the gateway when the portal asks for it, never kept in state."""

    change_id: str
    from_plan: str
    to_plan: str
    invoice_id: str
    payment_intent_id: str
    amount: int
    currency: str
    requested_at: datetime
    deadline: datetime
    # What the page reported after Stripe.js ran the challenge; the gateway decides.
    reported: AuthenticationReport = "waiting"


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
    # The workflow code generation that continued this run (see GENERATION in
    # workflows/subscription/generations.py); 0 in states carried by runs of older code.
    generation: int = 0
    gateway_policy: GatewayPolicy = DEFAULT_GATEWAY_POLICY
    payment_method: PaymentMethodInfo | None = None
    notices: list[Notice] = field(default_factory=list)
    pending_action: PendingAction | None = None
    resyncs: list[ResyncRecord] = field(default_factory=list)
    # The workflow's own payment history (what billing.sca judges trust by).
    successful_payments: int = 0
    first_successful_payment_at: datetime | None = None
    amount_paid: int = 0
    disputes: int = 0
    expiring_card_noticed: str | None = None  # PaymentMethodInfo.expiry_key() last noticed
    # The card the subscription was created with, until the run has attached it.
    payment_method_to_attach: str | None = None
    buffered_events: int = 0  # events.buffered_count, as a field for query clients
    # Dunning children's results not yet applied (a stop waits for its revoke instant).
    dunning_outcomes: list[DunningOutcome] = field(default_factory=list)
    # past_due keeps access until this instant (billing.lifecycle.has_access); set from
    # the dunning policy's grace period, then from a stop's revoke_access_at.
    grace_until: datetime | None = None
    notices_sent: list[str] = field(default_factory=list)  # Notice.key of each notice sent
    # A portal upgrade waiting for the customer's 3-D Secure, if any.
    upgrade_authentication: UpgradeAuthentication | None = None
    # The infrastructure failure a charge is being retried through (the ops alert), if any.
    gateway_alert: str | None = None
    # Outbound events decided but not yet in the outbox, how many were ever decided (the
    # next key), and what they told the product (workflows/subscription/outbound.py).
    outbound_pending: list[OutboundEvent] = field(default_factory=list)
    outbound_count: int = 0
    told: ToldState | None = None

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
        self.gateway_policy = start.gateway_policy
        if start.default_payment_method_id:
            self.payment_method = PaymentMethodInfo(start.default_payment_method_id)
            if start.attach_payment_method:
                self.payment_method_to_attach = start.default_payment_method_id

    def price(self, plan_id: str | None = None) -> Price:
        assert self.catalog is not None and self.currency is not None and self.plan_id
        return self.catalog.price(plan_id or self.plan_id, self.currency)

    def waiting_action(self) -> PendingAction:
        """The payment waiting for the customer's on-session confirmation."""
        action = self.pending_action
        if action is None or action.status != "waiting":
            raise ConfirmationRefused("no_pending_action", "no payment is waiting for confirmation")
        return action

    def action_to_confirm(self, payment_intent_id: str) -> PendingAction:
        """The waiting payment, if ``payment_intent_id`` is the intent it waits on."""
        action = self.waiting_action()
        if action.payment_intent_id != payment_intent_id:
            raise ConfirmationRefused(
                "payment_intent_mismatch", "that payment is not the one waiting for confirmation"
            )
        return action

    def snapshot(self) -> SubscriptionSnapshot:
        return SubscriptionSnapshot(
            status=self.status,
            cancel_at_period_end=self.cancel_at_period_end,
            plan_id=self.plan_id or "",
            current_period_end=self.period_end,
            pending_plan_id=self.pending_plan_id,
        )

    def access_facts(self, catalog: Catalog | None = None) -> AccessFacts:
        """What ``billing.entitlements.access`` needs; ``catalog`` stands in for a state
        that has not loaded its own yet (the API's)."""
        plans = self.catalog or catalog
        features: dict[str, bool | int] = {}
        if plans is not None and self.plan_id:
            try:
                features = dict(plans.plan(self.plan_id).features)
            except LookupError:
                features = {}
        canceled_at = next(
            (
                t.at
                for t in reversed(self.transitions)
                if t.to_status is SubscriptionStatus.CANCELED
            ),
            None,
        )
        return AccessFacts(
            status=self.status,
            cancel_at_period_end=self.cancel_at_period_end,
            period_end=self.period_end,
            grace_until=self.grace_until,
            features=features,
            pending_plan_id=self.pending_plan_id,
            canceled_at=canceled_at,
        )

    def access(self, now: datetime, catalog: Catalog | None = None) -> Access:
        return access(self.access_facts(catalog), now)

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
        del self.notices[:-RECENT_LIMIT]
        del self.resyncs[:-RECENT_LIMIT]

    def has_notice(self, key: str) -> bool:
        return any(n.key == key for n in self.notices)

    def record_payment(self, amount: int, at: datetime) -> None:
        self.successful_payments += 1
        self.amount_paid += amount
        if self.first_successful_payment_at is None:
            self.first_successful_payment_at = at

    def payment_history(self) -> PaymentHistory:
        """The SCA view of this subscription's payments. Renewals are merchant-initiated
        and no SCA is known here, so every payment counts towards the low-value
        counters (the cautious reading: the issuer may count them too)."""
        paid = Money(self.amount_paid, self.currency) if self.currency else None
        return PaymentHistory(
            successful_payments=self.successful_payments,
            first_successful_payment_at=self.first_successful_payment_at,
            disputes=self.disputes,
            payments_since_sca=self.successful_payments,
            amount_since_sca=paid,
        )


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
    if state.payment_method is not None:
        rows.append(f"- card on file: {_card(state.payment_method)}")
    action = state.pending_action
    if action is not None and action.status == "waiting":
        rows.append(
            f"- **action required**: 3-D Secure for invoice {action.invoice_id} "
            f"(`{action.payment_intent_id}`) by {_stamp(action.deadline)}"
        )
    if state.gateway_alert:
        rows.append(
            f"- **gateway alert**: {state.gateway_alert}; the charge is retried until it answers"
        )
    if state.events.buffered_count:
        rows.append(f"- buffered gateway events: {state.events.buffered_count}")
    if state.resyncs:
        last = state.resyncs[-1]
        rows.append(
            f"- sequence gaps re-synced from the gateway: {len(state.resyncs)} "
            f"(last {last.gap_first}..{last.gap_last} at {_stamp(last.resynced_at)})"
        )
    rows.append(f"- last event: {state.last_event or '—'} (as of {_stamp(now)})")
    return "\n".join(rows)


def _card(card: PaymentMethodInfo) -> str:
    if card.last4 is None:
        return f"`{card.id}`"
    expiry = f"{card.exp_month:02d}/{card.exp_year}" if card.described else "—"
    return f"{card.brand or 'card'} •••• {card.last4} (expires {expiry})"


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
    reason: str | None = None  # why it was reverted (PlanChangeRecord.reason)


@dataclass(frozen=True)
class UpgradeAuthenticationReport:
    """The page's word on a portal upgrade's 3-D Secure: Stripe.js said it succeeded or
    failed. The workflow reads the gateway's record of the intent before acting on it."""

    payment_intent_id: str
    outcome: Literal["succeeded", "failed"]


@dataclass(frozen=True)
class SetPaymentMethodRequest:
    payment_method_id: str


@dataclass(frozen=True)
class ConfirmPaymentRequest:
    payment_intent_id: str


@dataclass(frozen=True)
class PaymentConfirmation:
    """What the portal does next for a pending payment: nothing (``paid``), or complete
    ``payment_intent_id`` with Stripe.js ``confirmCardPayment`` (``requires_action``)."""

    outcome: Literal["paid", "requires_action"]
    payment_intent_id: str
    challenge: bool
    exemption: str | None
    reason: str | None


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
