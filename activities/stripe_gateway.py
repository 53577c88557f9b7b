"""Stripe adapter for the payment gateway port (``billing.gateway.PaymentGateway``).

The official SDK is synchronous; every call runs on a small bounded thread pool so the
worker's event loop never blocks and the number of calls in flight to Stripe stays capped.
With a ``rate_limit`` (``activities.gateway_rate``), each call first waits for its turn
in the request budget every process shares.
Writes carry the caller's ``Idempotency-Key``; SDK-level retries are off by default,
because retries belong to Temporal's retry policy, where they are visible in history.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import requests
import stripe
from stripe.params import (
    BalanceTransactionListParams,
    CustomerCreateParams,
    PaymentIntentCreateParams,
    PayoutListParams,
    RefundCreateParams,
    SetupIntentCreateParams,
)

from activities.gateway_errors import (
    decline_info_from_error_object,
    field_of,
    id_of,
    translate_stripe_error,
)
from activities.gateway_rate import SharedRateLimit
from billing.declines import classify_decline
from billing.gateway import (
    INVOICE_METADATA_KEYS,
    BalanceTransaction,
    CardDeclined,
    ChargeDeclined,
    ChargeOutcome,
    ChargeProcessing,
    ChargeRequiresAction,
    ChargeSnapshot,
    ChargeSucceeded,
    GatewayError,
    Page,
    PaymentIntentSnapshot,
    PaymentIntentStatus,
    PaymentMethodDetails,
    Payout,
    RefundResult,
    SetupIntentResult,
    ThreeDSecureRequest,
    require_idempotency_key,
)
from billing.money import Money, currency_exponent

# The API version this adapter's field handling was written against (the stripe 16 SDK's
# own version); pinned so an account-level upgrade cannot change response shapes.
STRIPE_API_VERSION = "2026-10-28.endive"

# Where Stripe's amount exponent differs from ISO 4217. ISK is zero-decimal in ISO but
# stays two-decimal in the Stripe API (amounts in multiples of 100).
# Source: stripe.com/docs/currencies#special-cases; Stripe support note "Deprecation of
# fractional ISK charges and refunds" (2023).
_STRIPE_EXPONENT_OVERRIDES: dict[str, int] = {"ISK": 2}

P = ParamSpec("P")
R = TypeVar("R")


def _stripe_factor(currency: str) -> int:
    iso = currency_exponent(currency)
    factor: int = 10 ** (_STRIPE_EXPONENT_OVERRIDES.get(currency, iso) - iso)
    return factor


def to_stripe_amount(money: Money) -> int:
    return money.amount * _stripe_factor(money.currency)


def from_stripe_amount(amount: int, currency: str) -> Money:
    code = currency.upper()
    whole, rest = divmod(amount, _stripe_factor(code))
    if rest:
        raise ValueError(f"{code} amount {amount} from the gateway has fractional minor units")
    return Money(whole, code)


def _timestamp(value: int) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _payment_method_details(pm: Any) -> PaymentMethodDetails:
    card = field_of(pm, "card")
    return PaymentMethodDetails(
        id=pm.id,
        brand=_str_or_none(field_of(card, "brand")),
        last4=_str_or_none(field_of(card, "last4")),
        exp_month=_int_or_none(field_of(card, "exp_month")),
        exp_year=_int_or_none(field_of(card, "exp_year")),
        country=_str_or_none(field_of(card, "country")),
        customer_id=id_of(field_of(pm, "customer")),
        fingerprint=_str_or_none(field_of(card, "fingerprint")),
    )


def _setup_intent_result(seti: Any) -> SetupIntentResult:
    return SetupIntentResult(
        id=seti.id,
        status=seti.status,
        client_secret=seti.client_secret,
        customer_id=id_of(field_of(seti, "customer")),
        payment_method_id=id_of(field_of(seti, "payment_method")),
    )


def _snapshot(pi: Any) -> PaymentIntentSnapshot:
    """A PaymentIntent, as a StripeObject or as the plain JSON object a raw request gives."""
    last_error = field_of(pi, "last_payment_error")
    metadata = field_of(pi, "metadata")
    return PaymentIntentSnapshot(
        id=field_of(pi, "id"),
        status=PaymentIntentStatus(field_of(pi, "status")),
        amount=from_stripe_amount(field_of(pi, "amount"), field_of(pi, "currency")),
        customer_id=id_of(field_of(pi, "customer")),
        payment_method_id=id_of(field_of(pi, "payment_method")),
        latest_charge_id=id_of(field_of(pi, "latest_charge")),
        last_error=decline_info_from_error_object(last_error) if last_error else None,
        client_secret=_str_or_none(field_of(pi, "client_secret")),
        metadata=_plain(metadata),
    )


def _plain(mapping: Any) -> dict[str, Any]:
    """A StripeObject (no longer a mapping) or a JSON object, as a plain dict."""
    if mapping is None:
        return {}
    return dict(mapping) if isinstance(mapping, dict) else dict(mapping.to_dict())


def _outcome_from_intent(pi: Any) -> ChargeOutcome:
    snap = _snapshot(pi)
    if snap.status is PaymentIntentStatus.SUCCEEDED:
        return ChargeSucceeded(snap.id, snap.latest_charge_id, snap.amount)
    if snap.status in (PaymentIntentStatus.PROCESSING, PaymentIntentStatus.REQUIRES_CAPTURE):
        return ChargeProcessing(snap.id, snap.amount)
    if snap.status is PaymentIntentStatus.REQUIRES_ACTION and snap.client_secret:
        return ChargeRequiresAction(snap.id, snap.amount)
    if snap.status is PaymentIntentStatus.REQUIRES_PAYMENT_METHOD and snap.last_error:
        classification = classify_decline(snap.last_error)
        return ChargeDeclined(
            payment_intent_id=snap.id,
            charge_id=snap.latest_charge_id,
            amount=snap.amount,
            decline=snap.last_error,
            classification=classification,
        )
    raise GatewayError(f"payment intent {snap.id} confirmed into status {snap.status}")


def _metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    return dict(metadata or {})


def _session(api_base: str | None) -> requests.Session:
    """The HTTP session of every call to the gateway. requests looks up proxies and CA
    bundles in the environment on each request, a scan of every variable; they are read
    once here instead, with the same precedence (NO_PROXY for the gateway's host too)."""
    session = requests.Session()
    session.proxies = requests.utils.get_environ_proxies(api_base or "https://api.stripe.com")
    session.verify = (
        os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    )
    session.trust_env = False
    return session


class StripeGateway:
    """``PaymentGateway`` on ``stripe.StripeClient``; build one per worker process."""

    def __init__(
        self,
        api_key: str,
        api_base: str | None = None,
        api_version: str = STRIPE_API_VERSION,
        *,
        timeout_seconds: float = 30.0,
        max_concurrency: int = 8,
        max_network_retries: int = 0,
        rate_limit: SharedRateLimit | None = None,
    ) -> None:
        self._rate_limit = rate_limit
        self._client = stripe.StripeClient(
            api_key,
            stripe_version=api_version,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout_seconds, session=_session(api_base)),
        )
        self._executor = ThreadPoolExecutor(
            max_workers=max_concurrency, thread_name_prefix="stripe-gateway"
        )

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    async def _run(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        if self._rate_limit is not None:
            await self._rate_limit.acquire()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(self._translated, fn, *args, **kwargs)
        )

    @staticmethod
    def _translated(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except stripe.StripeError as exc:
            raise translate_stripe_error(exc) from exc

    # customers

    async def create_customer(
        self,
        *,
        idempotency_key: str,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        key = require_idempotency_key(idempotency_key)
        params: CustomerCreateParams = {}
        if email is not None:
            params["email"] = email
        if name is not None:
            params["name"] = name
        if metadata:
            params["metadata"] = _metadata(metadata)
        customer = await self._run(
            self._client.v1.customers.create, params=params, options={"idempotency_key": key}
        )
        return customer.id

    # payment methods

    async def create_setup_intent(
        self,
        *,
        customer_id: str,
        idempotency_key: str,
        request_three_d_secure: ThreeDSecureRequest = ThreeDSecureRequest.AUTOMATIC,
        metadata: Mapping[str, str] | None = None,
    ) -> SetupIntentResult:
        key = require_idempotency_key(idempotency_key)
        params: SetupIntentCreateParams = {
            "customer": customer_id,
            "usage": "off_session",
            "allowed_payment_method_types": ["card"],
        }
        if request_three_d_secure is not ThreeDSecureRequest.AUTOMATIC:
            params["payment_method_options"] = {
                "card": {"request_three_d_secure": request_three_d_secure.value}
            }
        if metadata:
            params["metadata"] = _metadata(metadata)
        seti = await self._run(
            self._client.v1.setup_intents.create, params=params, options={"idempotency_key": key}
        )
        return _setup_intent_result(seti)

    async def retrieve_setup_intent(self, setup_intent_id: str) -> SetupIntentResult:
        seti = await self._run(self._client.v1.setup_intents.retrieve, setup_intent_id)
        return _setup_intent_result(seti)

    async def retrieve_payment_method(self, payment_method_id: str) -> PaymentMethodDetails:
        pm = await self._run(self._client.v1.payment_methods.retrieve, payment_method_id)
        return _payment_method_details(pm)

    async def list_payment_methods(self, customer_id: str) -> tuple[PaymentMethodDetails, ...]:
        page = await self._run(
            self._client.v1.payment_methods.list,
            params={"customer": customer_id, "type": "card", "limit": 100},
        )
        return tuple(_payment_method_details(pm) for pm in page.data)

    async def attach_payment_method(
        self, *, payment_method_id: str, customer_id: str, idempotency_key: str
    ) -> PaymentMethodDetails:
        key = require_idempotency_key(idempotency_key)
        # A SetupIntent confirmed with a customer usually attached the card already.
        current = await self.retrieve_payment_method(payment_method_id)
        if current.customer_id == customer_id:
            return current
        pm = await self._run(
            self._client.v1.payment_methods.attach,
            payment_method_id,
            params={"customer": customer_id},
            options={"idempotency_key": key},
        )
        return _payment_method_details(pm)

    async def detach_payment_method(
        self, *, payment_method_id: str, idempotency_key: str
    ) -> PaymentMethodDetails:
        key = require_idempotency_key(idempotency_key)
        pm = await self._run(
            self._client.v1.payment_methods.detach,
            payment_method_id,
            options={"idempotency_key": key},
        )
        return _payment_method_details(pm)

    async def set_default_payment_method(
        self, *, customer_id: str, payment_method_id: str, idempotency_key: str
    ) -> None:
        key = require_idempotency_key(idempotency_key)
        await self._run(
            self._client.v1.customers.update,
            customer_id,
            params={"invoice_settings": {"default_payment_method": payment_method_id}},
            options={"idempotency_key": key},
        )

    async def default_payment_method(self, customer_id: str) -> str | None:
        customer = await self._run(self._client.v1.customers.retrieve, customer_id)
        return id_of(field_of(field_of(customer, "invoice_settings"), "default_payment_method"))

    # charges

    async def charge_off_session(
        self,
        *,
        customer_id: str,
        payment_method_id: str,
        amount: Money,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> ChargeOutcome:
        """A merchant-initiated charge (renewal) on a card saved for off-session use."""
        key = require_idempotency_key(idempotency_key)
        return await self._run(
            self._charge, customer_id, payment_method_id, amount, key, metadata, True
        )

    async def charge_on_session(
        self,
        *,
        customer_id: str,
        payment_method_id: str,
        amount: Money,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> ChargeOutcome:
        """A customer-initiated charge; 3-D Secure comes back as ``ChargeRequiresAction``."""
        key = require_idempotency_key(idempotency_key)
        return await self._run(
            self._charge, customer_id, payment_method_id, amount, key, metadata, False
        )

    def _charge(
        self,
        customer_id: str,
        payment_method_id: str,
        amount: Money,
        key: str,
        metadata: Mapping[str, str] | None,
        off_session: bool,
    ) -> ChargeOutcome:
        params: PaymentIntentCreateParams = {
            "amount": to_stripe_amount(amount),
            "currency": amount.currency.lower(),
            "customer": customer_id,
            "payment_method": payment_method_id,
            # An explicit type list keeps server-side confirmation free of redirect-based
            # methods, which would otherwise demand a return_url.
            "allowed_payment_method_types": ["card"],
            "confirm": True,
        }
        if off_session:
            params["off_session"] = True
        if metadata:
            params["metadata"] = _metadata(metadata)
        try:
            # A raw request: the outcome needs a few fields of the intent, and building
            # the SDK's object tree for the whole answer cost a quarter of the call.
            pi = self._client.raw_request(
                "post", "/v1/payment_intents", idempotency_key=key, **params
            ).data
        except stripe.CardError as exc:
            declined = translate_stripe_error(exc)
            assert isinstance(declined, CardDeclined)
            return self._declined_outcome(declined, exc, amount)
        return _outcome_from_intent(pi)

    def _declined_outcome(
        self, declined: CardDeclined, exc: stripe.CardError, amount: Money
    ) -> ChargeDeclined:
        payment_intent_id = declined.payment_intent_id
        if payment_intent_id is None and declined.charge_id is not None:
            # Some gateways name only the failed charge; its intent is one read away.
            try:
                charge = self._client.v1.charges.retrieve(declined.charge_id)
                payment_intent_id = id_of(field_of(charge, "payment_intent"))
            except stripe.StripeError:
                payment_intent_id = None
        return ChargeDeclined(
            payment_intent_id=payment_intent_id,
            charge_id=declined.charge_id,
            amount=amount,
            decline=declined.decline,
            classification=declined.classification,
        )

    async def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntentSnapshot:
        pi = await self._run(self._client.v1.payment_intents.retrieve, payment_intent_id)
        return _snapshot(pi)

    async def find_succeeded_payment(
        self, *, customer_id: str, invoice_id: str
    ) -> PaymentIntentSnapshot | None:
        """A PaymentIntent of this customer that succeeded for the invoice (by our
        metadata), if the gateway holds one: what a charge under a new idempotency key
        looks for first, so a payment made but never recorded is not made twice. Lists
        the customer's intents (strongly consistent, unlike Stripe's search API)."""
        return await self._run(self._find_succeeded, customer_id, invoice_id)

    def _find_succeeded(self, customer_id: str, invoice_id: str) -> PaymentIntentSnapshot | None:
        listing = self._client.v1.payment_intents.list(
            params={"customer": customer_id, "limit": 100}
        )
        for pi in listing.auto_paging_iter():
            metadata = _plain(field_of(pi, "metadata"))
            if field_of(pi, "status") != PaymentIntentStatus.SUCCEEDED:
                continue
            if any(metadata.get(key) == invoice_id for key in INVOICE_METADATA_KEYS):
                return _snapshot(pi)
        return None

    async def cancel_payment_intent(
        self, *, payment_intent_id: str, idempotency_key: str
    ) -> PaymentIntentSnapshot:
        key = require_idempotency_key(idempotency_key)
        pi = await self._run(
            self._client.v1.payment_intents.cancel,
            payment_intent_id,
            options={"idempotency_key": key},
        )
        return _snapshot(pi)

    async def create_refund(
        self,
        *,
        payment_intent_id: str,
        idempotency_key: str,
        amount: Money | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundResult:
        key = require_idempotency_key(idempotency_key)
        params: RefundCreateParams = {"payment_intent": payment_intent_id}
        if amount is not None:
            params["amount"] = to_stripe_amount(amount)
        if metadata:
            params["metadata"] = _metadata(metadata)
        refund = await self._run(
            self._client.v1.refunds.create, params=params, options={"idempotency_key": key}
        )
        return _refund_result(refund)

    async def retrieve_refund(self, refund_id: str) -> RefundResult:
        return _refund_result(await self._run(self._client.v1.refunds.retrieve, refund_id))

    async def retrieve_charge(self, charge_id: str) -> ChargeSnapshot:
        charge = await self._run(self._client.v1.charges.retrieve, charge_id)
        return ChargeSnapshot(
            id=charge.id,
            payment_intent_id=id_of(field_of(charge, "payment_intent")),
            customer_id=id_of(field_of(charge, "customer")),
            amount=from_stripe_amount(charge.amount, charge.currency),
            status=_str_or_none(field_of(charge, "status")) or "pending",
        )

    async def list_refunds(self, charge_id: str) -> tuple[RefundResult, ...]:
        """Every refund of the charge, oldest first."""
        return await self._run(self._list_refunds, charge_id)

    def _list_refunds(self, charge_id: str) -> tuple[RefundResult, ...]:
        listing = self._client.v1.refunds.list(params={"charge": charge_id, "limit": 100})
        found = [_refund_result(r) for r in listing.auto_paging_iter()]
        return tuple(reversed(found))

    # reconciliation

    async def list_balance_transactions(
        self,
        *,
        limit: int = 100,
        starting_after: str | None = None,
        payout_id: str | None = None,
        created_gte: datetime | None = None,
    ) -> Page[BalanceTransaction]:
        params: BalanceTransactionListParams = {"limit": limit}
        if starting_after is not None:
            params["starting_after"] = starting_after
        if payout_id is not None:
            params["payout"] = payout_id
        if created_gte is not None:
            params["created"] = {"gte": int(created_gte.timestamp())}
        listing = await self._run(self._client.v1.balance_transactions.list, params=params)
        items = tuple(_balance_transaction(txn) for txn in listing.data)
        return _page(items, bool(listing.has_more))

    async def list_payouts(
        self,
        *,
        limit: int = 100,
        starting_after: str | None = None,
        created_gte: datetime | None = None,
    ) -> Page[Payout]:
        params: PayoutListParams = {"limit": limit}
        if starting_after is not None:
            params["starting_after"] = starting_after
        if created_gte is not None:
            params["created"] = {"gte": int(created_gte.timestamp())}
        listing = await self._run(self._client.v1.payouts.list, params=params)
        items = tuple(
            Payout(
                id=po.id,
                amount=from_stripe_amount(po.amount, po.currency),
                status=po.status,
                balance_transaction_id=id_of(field_of(po, "balance_transaction")),
                created=_timestamp(po.created),
                arrival_date=_timestamp(po.arrival_date),
            )
            for po in listing.data
        )
        return _page(items, bool(listing.has_more))


def _refund_result(refund: Any) -> RefundResult:
    return RefundResult(
        id=refund.id,
        payment_intent_id=id_of(field_of(refund, "payment_intent")),
        charge_id=id_of(field_of(refund, "charge")),
        amount=from_stripe_amount(refund.amount, refund.currency),
        status=_str_or_none(field_of(refund, "status")) or "pending",
        metadata=_plain(field_of(refund, "metadata")),
        reason=_str_or_none(field_of(refund, "reason")),
    )


def _balance_transaction(txn: Any) -> BalanceTransaction:
    currency = txn.currency
    return BalanceTransaction(
        id=txn.id,
        type=txn.type,
        reporting_category=_str_or_none(field_of(txn, "reporting_category")),
        amount=from_stripe_amount(txn.amount, currency),
        fee=from_stripe_amount(txn.fee, currency),
        net=from_stripe_amount(txn.net, currency),
        status=txn.status,
        source_id=id_of(field_of(txn, "source")),
        created=_timestamp(txn.created),
        available_on=_timestamp(txn.available_on),
    )


def _page(items: tuple[R, ...], has_more: bool) -> Page[R]:
    cursor = getattr(items[-1], "id", None) if has_more and items else None
    return Page(items=items, has_more=has_more, next_cursor=cursor)
