"""Subscriptions: starting their workflows, reading their state, sending portal updates.

Creation order: the customer's card token (if any) is checked at the gateway, read-only;
then, in one database transaction, the directory row is inserted, the workflow is
started, and only then is the transaction committed. The workflow attaches the card
itself before its first charge, so a start that fails (503) has changed nothing at the
gateway either. If the start fails the row is rolled back,
so the directory never names a workflow that was not started. If the commit itself
fails after the start, a retry with the same ``Idempotency-Key`` derives the same
subscription id, finds the running workflow (``USE_EXISTING``) and inserts the row.

Portal actions are checked against the workflow's current state (the ``state`` query)
with the same pure rules the workflow's update validators run, so an invalid request
gets its 409 before anything reaches Temporal; the validator is the second line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import Connection, Engine
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError
from api.schemas import (
    AccessOut,
    CardOut,
    InvoiceBriefOut,
    PaymentProblemOut,
    PendingActionOut,
    PlanChangeOut,
    SubscriptionIn,
    SubscriptionOut,
    TransitionOut,
    UpgradeAuthenticationOut,
)
from api.services.customers import new_id, request_hash
from api.temporal_client import RETRY_AFTER_SECONDS, TemporalConnection, TemporalUnavailable
from billing.catalog import Catalog, Price, UnknownPlanError, UnknownPriceError
from billing.declines import CUSTOMER_MESSAGES, CustomerMessage, classify_decline
from billing.entitlements import Access
from billing.lifecycle import InvalidTransition, PortalAction, check_action
from billing.periods import boundary, months_per_period
from billing.proration import ChangeDecision, PlanChangeRefused, decide_change
from dunwell.settings import Settings
from stores import customers as directory
from stores.customers import CustomerRecord, SubscriptionRecord
from workflows import search_attributes as sa
from workflows.subscription.state import (
    ConfirmationRefused,
    PaymentMethodInfo,
    PendingAction,
    SubscriptionInput,
    SubscriptionState,
    UpgradeAuthentication,
)

T = TypeVar("T")
# (gateway customer id, payment method token): refuses a token that is not usable for
# this customer, changing nothing at the gateway.
CheckPaymentMethod = Callable[[str, str], Awaitable[None]]

WORKFLOW_TYPE = "SubscriptionWorkflow"
SUBSCRIPTION_PREFIX = "sub_"
START_RPC_TIMEOUT = timedelta(seconds=10)
QUERY_RPC_TIMEOUT = timedelta(seconds=10)
FIRST_QUERY_RPC_TIMEOUT = timedelta(seconds=3)
# A plan change waits for its invoice and charge; the update call waits with it.
UPDATE_RPC_TIMEOUT = timedelta(seconds=60)
# The client re-polls an accepted update until it completes; a handler waiting on the
# workflow (its lock held by a retrying activity) must not hold the request forever.
UPDATE_DEADLINE = timedelta(seconds=120)
# Workflow refusals that describe the request rather than the subscription's state.
_UNPROCESSABLE = frozenset({"unknown_plan", "unknown_price", "invalid_payment_method"})


def workflow_id(subscription_id: str) -> str:
    return f"subscription-{subscription_id}"


def price_or_422(catalog: Catalog, plan_id: str, currency: str) -> Price:
    try:
        return catalog.price(plan_id, currency)
    except UnknownPlanError as err:
        raise ApiError(422, "unknown_plan", str(err)) from None
    except UnknownPriceError as err:
        raise ApiError(422, "unknown_price", str(err)) from None


# --- creation ----------------------------------------------------------------------------


async def start_subscription(
    *,
    engine: Engine,
    temporal: TemporalConnection,
    catalog: Catalog,
    settings: Settings,
    customer: CustomerRecord,
    body: SubscriptionIn,
    idempotency_key: str | None,
    check_payment_method: CheckPaymentMethod | None,
    now: datetime,
) -> tuple[SubscriptionRecord, Client]:
    """Validate (the card token too), then insert the row and start the workflow
    atomically; returns the record and the Temporal client it started the workflow with."""
    price = price_or_422(catalog, body.plan_id, body.currency)
    if body.trial and not price.trial_days:
        raise ApiError(422, "trial_unavailable", f"plan {body.plan_id!r} has no trial")
    if not body.trial and body.payment_method_id is None:
        raise ApiError(
            422, "payment_method_required", "give a payment_method_id (pm_…) or start a trial"
        )
    if customer.gateway_customer_id is None:
        raise ApiError(409, "customer_not_ready", "the customer has no gateway customer")
    start_at = _start_at(body, price, now)
    digest = request_hash(body.model_dump())
    if idempotency_key is not None:
        existing = await asyncio.to_thread(_by_key, engine, idempotency_key)
        if existing is not None:
            if existing.request_hash != digest:
                raise ApiError(
                    409,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with a different request",
                )
            return existing, await temporal.get()
    subscription_id = new_id(SUBSCRIPTION_PREFIX, idempotency_key, "subscription")
    # Nothing has been written yet: Temporal unreachable is a 503 with nothing to undo.
    client = await temporal.get()
    if body.payment_method_id is not None and check_payment_method is not None:
        await check_payment_method(customer.gateway_customer_id, body.payment_method_id)
    record = SubscriptionRecord(
        id=subscription_id,
        customer_id=customer.id,
        plan_id=price.plan_id,
        currency=price.currency,
        workflow_id=workflow_id(subscription_id),
        created_at=now,
        idempotency_key=idempotency_key,
        request_hash=digest,
    )
    start = SubscriptionInput(
        subscription_id=subscription_id,
        customer=customer.profile(),
        gateway_customer_id=customer.gateway_customer_id,
        default_payment_method_id=body.payment_method_id,
        plan_id=price.plan_id,
        currency=price.currency,
        start_at=start_at,
        trial=body.trial,
        catalog_version=catalog.version,
        attach_payment_method=body.payment_method_id is not None,
    )
    conn = await asyncio.to_thread(engine.connect)
    try:
        transaction = await asyncio.to_thread(conn.begin)
        try:
            await asyncio.to_thread(directory.insert_subscription, conn, record)
        except directory.DuplicateRecord:
            await asyncio.to_thread(transaction.rollback)
            # A concurrent request with the same key committed first.
            existing = (
                await asyncio.to_thread(_by_key, engine, idempotency_key)
                if idempotency_key
                else None
            )
            if existing is None:
                raise
            return existing, client
        try:
            await _start_workflow(client, settings, start, record, customer, price)
        except BaseException:
            await asyncio.to_thread(transaction.rollback)
            raise
        await asyncio.to_thread(transaction.commit)
    finally:
        await asyncio.to_thread(conn.close)
    return record, client


def _start_at(body: SubscriptionIn, price: Price, now: datetime) -> datetime:
    if body.backdate_start_date is None:
        return now
    start = body.backdate_start_date.astimezone(UTC)
    # More than one period back would bill a burst of renewals at once.
    earliest = boundary(now, -months_per_period(price.interval, price.interval_count))
    if not earliest <= start <= now:
        raise ApiError(
            422,
            "invalid_backdate",
            "backdate_start_date must be in the past and at most one billing period back",
        )
    return start


async def _start_workflow(
    client: Client,
    settings: Settings,
    start: SubscriptionInput,
    record: SubscriptionRecord,
    customer: CustomerRecord,
    price: Price,
) -> None:
    summary = (
        f"Subscription {record.id}: {price.plan_id} at {price.amount} {price.currency} "
        f"minor units per {price.interval_count} {price.interval} for customer {customer.id}"
    )
    details = (
        # Ids only: the Temporal UI is an ops tool, not a place for personal data.
        f"- customer: `{customer.id}`, gateway `{start.gateway_customer_id}`\n"
        f"- plan: `{price.plan_id}`, {price.currency}, trial: {'yes' if start.trial else 'no'}\n"
        f"- started at: {start.start_at.isoformat()}"
    )
    try:
        await client.start_workflow(
            WORKFLOW_TYPE,
            start,
            id=record.workflow_id,
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.CUSTOMER_ID, customer.id),
                    SearchAttributePair(sa.PLAN, price.plan_id),
                ]
            ),
            static_summary=summary,
            static_details=details,
            rpc_timeout=START_RPC_TIMEOUT,
        )
    except WorkflowAlreadyStartedError as err:
        raise ApiError(
            409, "subscription_exists", f"workflow {record.workflow_id} already ran"
        ) from err
    except RPCError as err:
        raise TemporalUnavailable(f"start failed: {err.status.name}") from err


# --- reading -----------------------------------------------------------------------------


async def load_subscription(
    *, engine: Engine, subscription_id: str, customer_id: str | None = None
) -> SubscriptionRecord:
    """The directory row; with ``customer_id``, only if it is that customer's (else 404)."""

    def read(conn: Connection) -> SubscriptionRecord | None:
        if customer_id is None:
            return directory.get_subscription(conn, subscription_id)
        return directory.subscription_of_customer(conn, customer_id, subscription_id)

    record = await asyncio.to_thread(_read, engine, read)
    if record is None:
        raise ApiError(404, "subscription_not_found", f"no subscription {subscription_id!r}")
    return record


async def list_subscriptions(*, engine: Engine, customer_id: str) -> list[SubscriptionRecord]:
    return await asyncio.to_thread(
        _read, engine, lambda conn: directory.list_subscriptions(conn, customer_id)
    )


async def query_state(*, client: Client, record: SubscriptionRecord) -> SubscriptionState:
    handle: WorkflowHandle[object, object] = client.get_workflow_handle(record.workflow_id)
    try:
        state: SubscriptionState = await handle.query(
            "state", result_type=SubscriptionState, rpc_timeout=QUERY_RPC_TIMEOUT
        )
        return state
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            raise ApiError(
                404, "subscription_not_found", f"the workflow of {record.id} is gone"
            ) from err
        raise TemporalUnavailable(f"query failed: {err.status.name}") from err


async def state_after_start(*, client: Client, record: SubscriptionRecord) -> SubscriptionState:
    """The state right after the start; if no worker has picked the workflow up yet, the
    directory's view (status ``incomplete``), so a created subscription is never a 503."""
    handle: WorkflowHandle[object, object] = client.get_workflow_handle(record.workflow_id)
    try:
        state: SubscriptionState = await handle.query(
            "state", result_type=SubscriptionState, rpc_timeout=FIRST_QUERY_RPC_TIMEOUT
        )
        return state
    except (RPCError, WorkflowQueryFailedError):
        return SubscriptionState(
            subscription_id=record.id, plan_id=record.plan_id, currency=record.currency
        )


def subscription_out(
    record: SubscriptionRecord, state: SubscriptionState, catalog: Catalog
) -> SubscriptionOut:
    access = state.access(datetime.now(UTC), catalog)
    plan_id = state.plan_id or record.plan_id
    currency = state.currency or record.currency
    plan_catalog = state.catalog or catalog
    try:
        plan = plan_catalog.plan(plan_id)
        price: Price | None = plan.price(currency)
        plan_name: str | None = plan.name
    except (UnknownPlanError, UnknownPriceError):
        price, plan_name = None, None
    return SubscriptionOut(
        id=record.id,
        customer_id=record.customer_id,
        workflow_id=record.workflow_id,
        plan_id=plan_id,
        plan_name=plan_name,
        currency=currency,
        amount=price.amount if price else None,
        interval=f"{price.interval_count} {price.interval}" if price else None,
        status=str(state.status),
        current_period_start=state.period_start,
        current_period_end=state.period_end,
        cancel_at_period_end=state.cancel_at_period_end,
        pending_plan_id=state.pending_plan_id,
        payment_method_id=state.payment_method_id,
        payment_method=card_out(state),
        pending_action=pending_action_out(state.pending_action),
        has_access=access.has_access,
        access=access_out(access),
        grace_until=state.grace_until,
        payment_problem=payment_problem_out(state),
        migrating_to=state.migrating_to,
        upgrade_authentication=upgrade_authentication_out(state.upgrade_authentication),
        transitions=[
            TransitionOut(
                from_status=str(t.from_status),
                to_status=str(t.to_status),
                cause=str(t.cause),
                at=t.at,
            )
            for t in state.transitions
        ],
        recent_invoices=[
            InvoiceBriefOut(
                invoice_id=i.invoice_id,
                number=i.number,
                purpose=i.purpose,
                currency=i.currency,
                period_start=i.period_start,
                period_end=i.period_end,
                total=i.total,
                tax_total=i.tax_total,
                status=i.status,
            )
            for i in state.invoices
        ],
        plan_changes=[
            PlanChangeOut(
                change_id=c.change_id,
                from_plan=c.from_plan,
                to_plan=c.to_plan,
                kind=c.kind,
                requested_at=c.requested_at,
                effective_at=c.effective_at,
                outcome=c.outcome,
                invoice_id=c.invoice_id,
                credit_note_id=c.credit_note_id,
                reason=c.reason,
            )
            for c in state.plan_changes
        ],
        created_at=record.created_at,
    )


def access_out(access: Access) -> AccessOut:
    return AccessOut(
        has_access=access.has_access,
        reason=str(access.reason),
        features=dict(access.features),
        grace_until=access.grace_until,
        ended_at=access.ended_at,
        next_change_at=access.next_change_at,
        next_change=str(access.next_change) if access.next_change else None,
    )


def card_out(state: SubscriptionState) -> CardOut | None:
    """The default card's display details: brand, last four digits and expiry only (the
    fingerprint and anything else the gateway knows stay out)."""
    card: PaymentMethodInfo | None = state.payment_method
    if card is None or card.id != state.payment_method_id or card.last4 is None:
        return None
    return CardOut(
        brand=card.brand, last4=card.last4, exp_month=card.exp_month, exp_year=card.exp_year
    )


def upgrade_authentication_out(
    waiting: UpgradeAuthentication | None,
) -> UpgradeAuthenticationOut | None:
    if waiting is None:
        return None
    return UpgradeAuthenticationOut(
        change_id=waiting.change_id,
        to_plan_id=waiting.to_plan,
        payment_intent_id=waiting.payment_intent_id,
        amount=waiting.amount,
        currency=waiting.currency,
        deadline=waiting.deadline,
    )


def payment_problem_out(state: SubscriptionState) -> PaymentProblemOut | None:
    """The latest unpaid invoice and what to tell the customer about it: the message
    for its decline code (a hard decline reads as a generic one, never its reason)."""
    if not state.unpaid_invoices:
        return None
    unpaid = state.unpaid_invoices[-1]
    decline = unpaid.first_decline
    if decline is not None:
        key = classify_decline(decline).message
        code = decline.decline_code or decline.code
    elif unpaid.decline_reason == "requires_action":
        key, code = CustomerMessage.CONFIRM_PAYMENT, "authentication_required"
    else:
        key, code = CustomerMessage.CONTACT_ISSUER, None
    if key in (CustomerMessage.GENERIC_DECLINE,):
        code = None  # lost, stolen, fraudulent...: never reveal the real reason
    return PaymentProblemOut(
        invoice_id=unpaid.invoice_id,
        amount=unpaid.amount,
        currency=unpaid.currency,
        decline_code=code,
        message=CUSTOMER_MESSAGES[key],
    )


def pending_action_out(action: PendingAction | None) -> PendingActionOut | None:
    if action is None:
        return None
    return PendingActionOut(
        status=action.status,
        invoice_id=action.invoice_id,
        amount=action.amount,
        currency=action.currency,
        deadline=action.deadline,
    )


# --- portal pre-checks and updates -------------------------------------------------------


def waiting_action(state: SubscriptionState) -> PendingAction:
    """The payment waiting for the customer's confirmation (else 409); the workflow's
    update validators run the same check."""
    try:
        return state.waiting_action()
    except ConfirmationRefused as exc:
        raise ApiError(409, exc.code, exc.message) from None


def check_confirmation(state: SubscriptionState, payment_intent_id: str) -> PendingAction:
    try:
        return state.action_to_confirm(payment_intent_id)
    except ConfirmationRefused as exc:
        raise ApiError(409, exc.code, exc.message) from None


def require_started(state: SubscriptionState) -> None:
    if not state.activated or state.period_end is None or state.plan_id is None:
        raise ApiError(409, "not_started", "the subscription has not started yet")


def check_portal_action(state: SubscriptionState, action: PortalAction, *, now: datetime) -> None:
    require_started(state)
    try:
        check_action(state.snapshot(), action, now=now)
    except InvalidTransition as err:
        raise ApiError(409, str(err.reason_code), err.message) from None


def check_plan_change(
    state: SubscriptionState, catalog: Catalog, plan_id: str, *, now: datetime
) -> tuple[Price, Price, ChangeDecision | None]:
    """The old and new prices and the change decision (None: withdraws a scheduled change)."""
    require_started(state)
    assert state.plan_id is not None and state.currency is not None
    rules = state.catalog or catalog
    try:
        check_action(state.snapshot(), PortalAction.CHANGE_PLAN, now=now, new_plan_id=plan_id)
    except InvalidTransition as err:
        raise ApiError(409, str(err.reason_code), err.message) from None
    new_price = price_or_422(rules, plan_id, state.currency)
    old_price = price_or_422(rules, state.plan_id, state.currency)
    if plan_id == state.plan_id:
        return old_price, new_price, None
    try:
        decision = decide_change(old_price, new_price, rules, state.change_policy)
    except PlanChangeRefused as err:
        raise ApiError(409, str(err.reason_code), err.message) from None
    return old_price, new_price, decision


async def send_update(
    *,
    client: Client,
    record: SubscriptionRecord,
    update: str,
    arg: object | None,
    result_type: type[object] | None,
) -> object:
    handle: WorkflowHandle[object, object] = client.get_workflow_handle(record.workflow_id)
    deadline = asyncio.timeout(UPDATE_DEADLINE.total_seconds())
    with update_errors(deadline):
        async with deadline:
            if arg is None:
                return await handle.execute_update(
                    update, result_type=result_type, rpc_timeout=UPDATE_RPC_TIMEOUT
                )
            return await handle.execute_update(
                update, arg, result_type=result_type, rpc_timeout=UPDATE_RPC_TIMEOUT
            )
    raise AssertionError("unreachable")  # pragma: no cover - the block returns or raises


@contextmanager
def update_errors(deadline: asyncio.Timeout) -> Iterator[None]:
    """Translate what sending an update can raise into the API's errors: the
    workflow's refusal (its ``ApplicationError`` type is the code), a deadline passed
    (the update may still take effect), Temporal unreachable, the workflow gone."""
    try:
        yield
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
        if not deadline.expired():
            raise TemporalUnavailable("the update did not complete in time") from err
        raise ApiError(
            503,
            "update_timeout",
            "the subscription did not answer in time; the request may still take effect, "
            "so check the subscription again shortly",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from err
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError):
            code = cause.type or "update_rejected"
            status = 422 if code in _UNPROCESSABLE else 409
            raise ApiError(status, code, cause.message) from None
        raise ApiError(409, "update_rejected", str(cause or err)) from None
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            raise ApiError(
                409, "subscription_ended", "the subscription's workflow has ended"
            ) from err
        raise TemporalUnavailable(f"update failed: {err.status.name}") from err


def _by_key(engine: Engine, key: str) -> SubscriptionRecord | None:
    with engine.connect() as conn:
        return directory.subscription_by_idempotency_key(conn, key)


def _read(engine: Engine, fn: Callable[[Connection], T]) -> T:
    with engine.connect() as conn:
        return fn(conn)
