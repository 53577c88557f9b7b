"""Portal API (portal session token) and the portal page.

Every route resolves objects through the token's customer (the ``MySubscription`` and
``MyCustomer`` dependencies): another customer's subscription is "not found" (404),
never "forbidden", so ids cannot be probed.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client

from api.csp import portal_csp
from api.deps import EngineDep, SettingsDep
from api.errors import ApiError
from api.portal_tokens import InvalidPortalToken, PortalClaims, verify_portal_token
from api.routes.customers import responses
from api.schemas import (
    CancellationOut,
    ConfirmPaymentIn,
    CreditNoteListOut,
    InvoiceListOut,
    PaymentCompletedOut,
    PaymentConfirmationOut,
    PaymentMethodIn,
    PaymentMethodOut,
    PlanChangeIn,
    PlanChangePreviewOut,
    PlanChangeResultOut,
    PlanOut,
    PlanPriceOut,
    PortalConfigOut,
    SetupIntentOut,
    SubscriptionListOut,
    SubscriptionOut,
    UpgradeAuthenticationIn,
)
from api.services import customers as customer_service
from api.services import documents, plan_changes
from api.services import payment_methods as cards
from api.services import subscriptions as service
from api.services.previews import preview_plan_change
from api.services.runtime import (
    CatalogDep,
    GatewayDep,
    RegistrationsDep,
    TaxEngineDep,
    TemporalDep,
    exemption_certificates,
)
from api.temporal_client import TemporalConnection
from billing.catalog import Catalog
from billing.gateway import PaymentIntentStatus
from billing.lifecycle import PortalAction
from stores.customers import CustomerRecord, SubscriptionRecord
from workflows.subscription.state import (
    CancellationResult,
    ChangePlanResult,
    ConfirmPaymentRequest,
    PaymentConfirmation,
    PendingAction,
    SetPaymentMethodRequest,
    SubscriptionState,
)

_bearer = HTTPBearer(
    auto_error=False, scheme_name="PortalSession", description="Portal session token"
)


def portal_claims(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> PortalClaims:
    invalid = ApiError(
        401,
        "invalid_portal_session",
        "the portal session is missing, invalid or expired; open the portal again",
        headers={"WWW-Authenticate": "Bearer"},
    )
    if credentials is None:
        raise invalid
    try:
        return verify_portal_token(
            credentials.credentials,
            secret=settings.portal_session_secret.get_secret_value(),
            now=datetime.now(UTC),
        )
    except InvalidPortalToken:
        raise invalid from None


Portal = Annotated[PortalClaims, Depends(portal_claims)]
SubscriptionIdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]

router = APIRouter(prefix="/v1/portal", tags=["portal"])
page_router = APIRouter(tags=["portal page"])


async def my_subscription(
    portal: Portal, subscription_id: SubscriptionIdPath, engine: EngineDep
) -> SubscriptionRecord:
    """The subscription in the path, if it is the session's customer's (else 404)."""
    return await service.load_subscription(
        engine=engine, subscription_id=subscription_id, customer_id=portal.customer_id
    )


async def my_customer(portal: Portal, engine: EngineDep) -> CustomerRecord:
    """The session's customer."""
    return await customer_service.load_customer(engine=engine, customer_id=portal.customer_id)


# FastAPI solves dependencies before it validates the request body: a malformed body
# sent for a subscription that is not the caller's is a 404, not a 422.
MySubscription = Annotated[SubscriptionRecord, Depends(my_subscription)]
MyCustomer = Annotated[CustomerRecord, Depends(my_customer)]


def _gateway_customer_id(customer: CustomerRecord) -> str:
    if customer.gateway_customer_id is None:
        raise ApiError(409, "customer_not_ready", "the customer has no gateway customer")
    return customer.gateway_customer_id


@router.get("/session", response_model=PortalConfigOut, responses=responses(404))
async def portal_session(
    portal: Portal, customer: MyCustomer, catalog: CatalogDep
) -> PortalConfigOut:
    """Who the session is for, when it expires, and the plans on offer."""
    return PortalConfigOut(
        customer_id=customer.id,
        customer_name=customer.name,
        expires_at=portal.expires_at,
        plans=[
            PlanOut(
                id=plan.plan_id,
                name=plan.name,
                tier=plan.tier,
                interval=str(plan.prices[0].interval),
                interval_count=plan.prices[0].interval_count,
                prices=[PlanPriceOut(currency=p.currency, amount=p.amount) for p in plan.prices],
            )
            for plan in catalog.plans
        ],
    )


@router.get("/subscriptions", response_model=SubscriptionListOut, responses=responses(503))
async def list_my_subscriptions(
    portal: Portal, engine: EngineDep, catalog: CatalogDep, temporal: TemporalDep
) -> SubscriptionListOut:
    """My subscriptions with their current state."""
    records = await service.list_subscriptions(engine=engine, customer_id=portal.customer_id)
    if not records:
        return SubscriptionListOut(items=[])
    client = await temporal.get()
    states = await asyncio.gather(*(service.query_state(client=client, record=r) for r in records))
    return SubscriptionListOut(
        items=[
            service.subscription_out(r, s, catalog) for r, s in zip(records, states, strict=True)
        ]
    )


@router.get(
    "/subscriptions/{subscription_id}",
    response_model=SubscriptionOut,
    responses=responses(404, 503),
)
async def get_my_subscription(
    record: MySubscription, catalog: CatalogDep, temporal: TemporalDep
) -> SubscriptionOut:
    """One of my subscriptions."""
    client = await temporal.get()
    state = await service.query_state(client=client, record=record)
    return service.subscription_out(record, state, catalog)


@router.post(
    "/subscriptions/{subscription_id}/preview-change",
    response_model=PlanChangePreviewOut,
    responses=responses(400, 404, 409, 503),
)
async def preview_change(
    request: Request,
    record: MySubscription,
    customer: MyCustomer,
    body: PlanChangeIn,
    catalog: CatalogDep,
    temporal: TemporalDep,
    tax_engine: TaxEngineDep,
    registrations: RegistrationsDep,
) -> PlanChangePreviewOut:
    """What a plan change would cost (proration and tax per line); nothing is written."""
    client = await temporal.get()
    state = await service.query_state(client=client, record=record)
    now = datetime.now(UTC)
    old_price, new_price, decision = service.check_plan_change(
        state, catalog, body.plan_id, now=now
    )
    profile = state.customer or customer.profile()
    return await preview_plan_change(
        state=state,
        old_price=old_price,
        new_price=new_price,
        decision=decision,
        customer=profile,
        tax_engine=tax_engine,
        registrations=registrations,
        certificates=await exemption_certificates(request, profile.customer_id, now),
        now=now,
    )


@router.post(
    "/subscriptions/{subscription_id}/change-plan",
    response_model=PlanChangeResultOut,
    responses=responses(400, 404, 409, 503),
)
async def change_plan(
    portal: Portal,
    record: MySubscription,
    body: PlanChangeIn,
    engine: EngineDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    gateway: GatewayDep,
    temporal: TemporalDep,
) -> PlanChangeResultOut:
    """Change plan: upgrades now (charged on-session; may answer `requires_action`), downgrades at period end."""
    client = await temporal.get()
    state = await service.query_state(client=client, record=record)
    service.check_plan_change(state, catalog, body.plan_id, now=datetime.now(UTC))
    plan_changes.check_no_change_waiting(state)
    result = await plan_changes.change_plan(client=client, record=record, plan_id=body.plan_id)
    if isinstance(result, plan_changes.AwaitingAuthentication):
        customer = await my_customer(portal, engine)
        waiting = result.waiting
        intent = await cards.intent_to_confirm(
            gateway=gateway,
            payment_intent_id=waiting.payment_intent_id,
            gateway_customer_id=_gateway_customer_id(customer),
        )
        return PlanChangeResultOut(
            outcome="requires_action",
            change_id=result.change_id,
            plan_id=waiting.from_plan,
            pending_plan_id=result.state.pending_plan_id,
            effective_at=None,
            invoice_id=waiting.invoice_id,
            amount_charged=0,
            payment_intent_id=waiting.payment_intent_id,
            client_secret=intent.client_secret,
            publishable_key=cards.publishable_key(settings),
            stripe_js_url=cards.stripe_js_url(settings),
            subscription=service.subscription_out(record, result.state, catalog),
        )
    after = await service.query_state(client=client, record=record)
    return _change_out(result, record, after, catalog)


def _change_out(
    result: ChangePlanResult,
    record: SubscriptionRecord,
    after: SubscriptionState,
    catalog: Catalog,
) -> PlanChangeResultOut:
    return PlanChangeResultOut(
        outcome=result.outcome,
        plan_id=result.plan_id,
        pending_plan_id=result.pending_plan_id,
        effective_at=result.effective_at,
        invoice_id=result.invoice_id,
        amount_charged=result.amount_charged,
        reason=result.reason,
        subscription=service.subscription_out(record, after, catalog),
    )


@router.post(
    "/subscriptions/{subscription_id}/change-plan/authentication",
    response_model=PlanChangeResultOut,
    responses=responses(400, 404, 409, 503),
)
async def report_change_authentication(
    record: MySubscription,
    body: UpgradeAuthenticationIn,
    catalog: CatalogDep,
    temporal: TemporalDep,
) -> PlanChangeResultOut:
    """Report a plan change's 3-D Secure result; the gateway's record decides: applied or reverted."""
    client = await temporal.get()
    result = await plan_changes.report_authentication(
        client=client,
        record=record,
        payment_intent_id=body.payment_intent_id,
        outcome=body.outcome,
    )
    after = await service.query_state(client=client, record=record)
    return _change_out(result, record, after, catalog)


async def _cancellation(
    record: SubscriptionRecord,
    catalog: Catalog,
    temporal: TemporalConnection,
    action: PortalAction,
    update: str,
) -> CancellationOut:
    client = await temporal.get()
    state = await service.query_state(client=client, record=record)
    service.check_portal_action(state, action, now=datetime.now(UTC))
    result = await service.send_update(
        client=client, record=record, update=update, arg=None, result_type=CancellationResult
    )
    assert isinstance(result, CancellationResult)
    after = await service.query_state(client=client, record=record)
    return CancellationOut(
        cancel_at_period_end=result.cancel_at_period_end,
        access_until=result.access_until,
        subscription=service.subscription_out(record, after, catalog),
    )


@router.post(
    "/subscriptions/{subscription_id}/cancel",
    response_model=CancellationOut,
    responses=responses(400, 404, 409, 503),
)
async def cancel_at_period_end(
    record: MySubscription, catalog: CatalogDep, temporal: TemporalDep
) -> CancellationOut:
    """Cancel at the end of the paid period; access continues until then."""
    return await _cancellation(
        record, catalog, temporal, PortalAction.CANCEL_AT_PERIOD_END, "cancel_at_period_end"
    )


@router.post(
    "/subscriptions/{subscription_id}/undo-cancel",
    response_model=CancellationOut,
    responses=responses(400, 404, 409, 503),
)
async def undo_cancellation(
    record: MySubscription, catalog: CatalogDep, temporal: TemporalDep
) -> CancellationOut:
    """Withdraw a pending cancellation before the period ends."""
    return await _cancellation(
        record, catalog, temporal, PortalAction.UNDO_CANCELLATION, "undo_cancellation"
    )


@router.post(
    "/subscriptions/{subscription_id}/payment-method/setup-intent",
    response_model=SetupIntentOut,
    responses=responses(400, 404, 409, 502, 503),
)
async def create_setup_intent(
    record: MySubscription,
    customer: MyCustomer,
    settings: SettingsDep,
    gateway: GatewayDep,
    temporal: TemporalDep,
) -> SetupIntentOut:
    """Start a card set-up; the browser confirms it with Stripe.js, not through this API."""
    client = await temporal.get()
    state = await service.query_state(client=client, record=record)
    service.check_portal_action(
        state, PortalAction.SET_DEFAULT_PAYMENT_METHOD, now=datetime.now(UTC)
    )
    result, request_3ds = await cards.create_setup_intent(
        gateway=gateway,
        gateway_customer_id=_gateway_customer_id(customer),
        country=customer.address.country,
        subscription_id=record.id,
    )
    return SetupIntentOut(
        client_secret=result.client_secret,
        publishable_key=cards.publishable_key(settings),
        stripe_js_url=cards.stripe_js_url(settings),
        three_d_secure="any" if request_3ds.value == "any" else "automatic",
    )


@router.post(
    "/subscriptions/{subscription_id}/payment-method",
    response_model=PaymentMethodOut,
    responses=responses(400, 404, 409, 502, 503),
)
async def set_payment_method(
    record: MySubscription,
    customer: MyCustomer,
    body: PaymentMethodIn,
    catalog: CatalogDep,
    gateway: GatewayDep,
    temporal: TemporalDep,
) -> PaymentMethodOut:
    """Make a card token (`pm_…`) the subscription's default; card data is never accepted."""
    client = await temporal.get()
    state = await service.query_state(client=client, record=record)
    service.check_portal_action(
        state, PortalAction.SET_DEFAULT_PAYMENT_METHOD, now=datetime.now(UTC)
    )
    details = await cards.attach_token(
        gateway=gateway,
        gateway_customer_id=_gateway_customer_id(customer),
        payment_method_id=body.payment_method_id,
        key=f"dunwell:portal:{record.id}:pm:{body.payment_method_id}",
        make_default=False,  # the workflow's update makes it the default
    )
    await service.send_update(
        client=client,
        record=record,
        update="set_default_payment_method",
        arg=SetPaymentMethodRequest(payment_method_id=body.payment_method_id),
        result_type=None,
    )
    after = await service.query_state(client=client, record=record)
    return PaymentMethodOut(
        payment_method_id=details.id,
        brand=details.brand,
        last4=details.last4,
        exp_month=details.exp_month,
        exp_year=details.exp_year,
        subscription=service.subscription_out(record, after, catalog),
    )


# --- payments waiting for 3-D Secure ------------------------------------------------------
# The request and response bodies of these routes are never logged: the response carries
# the PaymentIntent's client secret.


@router.post(
    "/subscriptions/{subscription_id}/confirm-payment",
    response_model=PaymentConfirmationOut,
    responses=responses(400, 404, 409, 502, 503),
)
async def confirm_payment(
    portal: Portal,
    record: MySubscription,
    engine: EngineDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    gateway: GatewayDep,
    temporal: TemporalDep,
) -> PaymentConfirmationOut:
    """Start confirming a payment that waits for 3-D Secure; gives Stripe.js what it needs."""
    client = await temporal.get()
    state = await service.query_state(client=client, record=record)
    service.waiting_action(state)
    result = await service.send_update(
        client=client,
        record=record,
        update="begin_payment_confirmation",
        arg=None,
        result_type=PaymentConfirmation,
    )
    assert isinstance(result, PaymentConfirmation)
    outcome = result.outcome
    client_secret: str | None = None
    if outcome == "requires_action":
        # Only this outcome needs the customer, so it is read here, not as a dependency.
        customer = await my_customer(portal, engine)
        intent = await cards.intent_to_confirm(
            gateway=gateway,
            payment_intent_id=result.payment_intent_id,
            gateway_customer_id=_gateway_customer_id(customer),
        )
        if intent.status is PaymentIntentStatus.SUCCEEDED:
            # Authenticated already (another tab, or a page closed before it completed).
            await _complete(client, record, result.payment_intent_id, settled_is_done=True)
            outcome = "paid"
        else:
            client_secret = intent.client_secret
    after = await service.query_state(client=client, record=record)
    return PaymentConfirmationOut(
        outcome=outcome,
        payment_intent_id=result.payment_intent_id,
        client_secret=client_secret,
        challenge=result.challenge,
        exemption=result.exemption,
        reason=result.reason,
        publishable_key=cards.publishable_key(settings),
        stripe_js_url=cards.stripe_js_url(settings),
        subscription=service.subscription_out(record, after, catalog),
    )


@router.post(
    "/subscriptions/{subscription_id}/confirm-payment/complete",
    response_model=PaymentCompletedOut,
    responses=responses(400, 404, 409, 503),
)
async def complete_payment(
    record: MySubscription,
    body: ConfirmPaymentIn,
    catalog: CatalogDep,
    temporal: TemporalDep,
) -> PaymentCompletedOut:
    """Finish a payment confirmed with Stripe.js; the gateway's record decides if it is paid."""
    client = await temporal.get()
    state = await service.query_state(client=client, record=record)
    service.check_confirmation(state, body.payment_intent_id)
    action = await _complete(client, record, body.payment_intent_id)
    after = await service.query_state(client=client, record=record)
    action_out = service.pending_action_out(action)
    assert action_out is not None
    return PaymentCompletedOut(
        pending_action=action_out,
        subscription=service.subscription_out(record, after, catalog),
    )


async def _complete(
    client: Client,
    record: SubscriptionRecord,
    payment_intent_id: str,
    *,
    settled_is_done: bool = False,
) -> PendingAction | None:
    """``confirm_payment_completed``; with ``settled_is_done``, a payment the workflow
    already settled by itself (the gateway's event came first) is no error."""
    try:
        result = await service.send_update(
            client=client,
            record=record,
            update="confirm_payment_completed",
            arg=ConfirmPaymentRequest(payment_intent_id=payment_intent_id),
            result_type=PendingAction,
        )
    except ApiError as err:
        if settled_is_done and err.code == "no_pending_action":
            return None
        raise
    assert isinstance(result, PendingAction)
    return result


@router.get("/invoices", response_model=InvoiceListOut, responses=responses())
async def list_my_invoices(portal: Portal, engine: EngineDep) -> InvoiceListOut:
    """My finalized invoices, oldest first."""
    return InvoiceListOut(
        items=await documents.list_invoices(engine=engine, customer_id=portal.customer_id)
    )


@router.get("/credit-notes", response_model=CreditNoteListOut, responses=responses())
async def list_my_credit_notes(portal: Portal, engine: EngineDep) -> CreditNoteListOut:
    """My credit notes, oldest first."""
    return CreditNoteListOut(
        items=await documents.list_credit_notes(engine=engine, customer_id=portal.customer_id)
    )


# --- the page ----------------------------------------------------------------------------

_PAGE_HEADERS = {
    # The session token is in the page's URL: never send it on as a referrer, never cache.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def _static(name: str) -> str:
    return resources.files("api").joinpath("static", name).read_text("utf-8")


@page_router.get("/portal", response_class=HTMLResponse, include_in_schema=True)
async def portal_page(settings: SettingsDep) -> HTMLResponse:
    """The customer portal page; it reads the session token from `?session=`."""
    return HTMLResponse(
        _static("portal.html"),
        headers={**_PAGE_HEADERS, "Content-Security-Policy": portal_csp(settings)},
    )


# The page's scripts, in the order the page loads them (portal.js last).
PAGE_SCRIPTS = ("portal-common.js", "portal-render.js", "portal-lists.js", "portal.js")


@page_router.get("/portal/{name}", include_in_schema=False)
async def portal_script(name: Annotated[str, Path(max_length=40)]) -> Response:
    if name not in PAGE_SCRIPTS:
        raise ApiError(404, "not_found", f"no portal script {name!r}")
    return Response(
        _static(name),
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
