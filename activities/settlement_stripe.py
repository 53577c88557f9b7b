"""Stripe adapter for the settlement-source port (``billing.reconciliation.source``).

Reads balance transactions with their sources expanded (one request per page of 100,
so a payout of N transactions costs N / 100 requests), payouts and the balance. The
development settlement simulator answers the same API, so this adapter reads it too
when ``api_base`` points there. With a ``rate_limit`` (``activities.gateway_rate``),
each request first waits for its turn in the limit every process shares; the worker
passes it when settlement is read from the gateway itself, not from the simulator.
Amounts come back in ISO minor units, currencies upper
case; a source's ``ledger_ref`` is what the ledger cites: a charge's payment intent, a
refund's own id, and for a dispute the balance transaction itself (a dispute moves
money twice, funds withdrawn and reinstated, and the ledger books each movement).
Disputes are read by id with their balance transactions (``dispute``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import stripe
from stripe.params import PayoutListParams

from activities.gateway_errors import field_of, id_of, translate_stripe_error
from activities.gateway_rate import SharedRateLimit
from activities.stripe_gateway import STRIPE_API_VERSION, from_stripe_amount
from billing.disputes import DisputeSnapshot, DisputeTxn
from billing.reconciliation.model import GatewayObject, Payout, SettlementTxn
from billing.reconciliation.source import PAGE_LIMIT, TxnPage


class StripeSettlementSource:
    def __init__(
        self,
        api_key: str,
        api_base: str | None = None,
        *,
        timeout_seconds: float = 30.0,
        client: stripe.StripeClient | None = None,
        gateway_base: str | None = None,
        rate_limit: SharedRateLimit | None = None,
    ) -> None:
        self._rate_limit = rate_limit
        self._client = client or stripe.StripeClient(
            api_key,
            stripe_version=STRIPE_API_VERSION,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=timeout_seconds),
        )
        # Payments are read where they were made (localstripe in dev); settlement where
        # it is kept (the simulator in dev). Both are Stripe in production.
        self._gateway = stripe.StripeClient(
            api_key,
            stripe_version=STRIPE_API_VERSION,
            base_addresses={"api": gateway_base} if gateway_base else None,
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=timeout_seconds),
        )

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self._rate_limit is not None:
            await self._rate_limit.acquire()
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except stripe.StripeError as exc:
            raise translate_stripe_error(exc) from exc

    async def payout(self, payout_id: str) -> Payout:
        po = await self._call(self._client.v1.payouts.retrieve, payout_id)
        return payout_of(po)

    async def payout_transactions(
        self, payout_id: str, *, starting_after: str | None = None, limit: int = PAGE_LIMIT
    ) -> TxnPage:
        params: dict[str, Any] = {"payout": payout_id, "limit": limit, "expand": ["data.source"]}
        if starting_after is not None:
            params["starting_after"] = starting_after
        # The page's JSON read as plain data: building the SDK's objects for 100 expanded
        # sources cost several times the request itself (bench/reconcile.py).
        response = await self._call(
            self._client.raw_request, "get", "/v1/balance_transactions", **params
        )
        listing = response.data
        items = tuple(txn_of(txn, payout_id) for txn in listing["data"])
        more = bool(listing["has_more"])
        return TxnPage(items, more, items[-1].id if more and items else None)

    async def payouts(self, *, arrival_gte: datetime, arrival_lt: datetime) -> list[Payout]:
        found: list[Payout] = []
        cursor: str | None = None
        while True:
            params: PayoutListParams = {
                "limit": PAGE_LIMIT,
                "arrival_date": {
                    "gte": int(arrival_gte.timestamp()),
                    "lt": int(arrival_lt.timestamp()),
                },
            }
            if cursor is not None:
                params["starting_after"] = cursor
            listing = await self._call(self._client.v1.payouts.list, params=params)
            found.extend(payout_of(po) for po in listing.data)
            if not listing.has_more or not listing.data:
                return found
            cursor = listing.data[-1].id

    async def transactions(
        self, *, created_gte: datetime, created_lt: datetime
    ) -> list[SettlementTxn]:
        found: list[SettlementTxn] = []
        params: dict[str, Any] = {
            "limit": PAGE_LIMIT,
            "expand": ["data.source"],
            "created": {"gte": int(created_gte.timestamp()), "lt": int(created_lt.timestamp())},
        }
        while True:
            response = await self._call(
                self._client.raw_request, "get", "/v1/balance_transactions", **params
            )
            listing = response.data
            found.extend(txn_of(txn, None) for txn in listing["data"])
            if not listing["has_more"] or not listing["data"]:
                return found
            params["starting_after"] = listing["data"][-1]["id"]

    async def payment(self, ref: str) -> GatewayObject | None:
        if self._rate_limit is not None:
            await self._rate_limit.acquire()
        try:
            pi = await asyncio.to_thread(self._gateway.v1.payment_intents.retrieve, ref)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return None
            raise translate_stripe_error(exc) from exc
        except stripe.StripeError as exc:
            raise translate_stripe_error(exc) from exc
        money = from_stripe_amount(int(pi["amount"]), str(pi["currency"]))
        return GatewayObject(
            ref=str(pi["id"]),
            amount=money.amount,
            currency=money.currency,
            status=str(pi["status"]),
            created=_at(pi["created"]),
            settled=False,
        )

    async def dispute(self, dispute_id: str) -> DisputeSnapshot | None:
        if self._rate_limit is not None:
            await self._rate_limit.acquire()
        try:
            response = await asyncio.to_thread(
                self._client.raw_request, "get", f"/v1/disputes/{dispute_id}"
            )
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return None
            raise translate_stripe_error(exc) from exc
        except stripe.StripeError as exc:
            raise translate_stripe_error(exc) from exc
        return dispute_of(response.data)

    async def balance(self) -> dict[str, int]:
        bal = await self._call(self._client.v1.balance.retrieve)
        totals: dict[str, int] = {}
        for part in ("available", "pending"):
            for fund in field_of(bal, part) or ():
                money = from_stripe_amount(int(fund["amount"]), str(fund["currency"]))
                totals[money.currency] = totals.get(money.currency, 0) + money.amount
        return totals


def _at(value: int) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


def dispute_of(dp: Any) -> DisputeSnapshot:
    money = from_stripe_amount(int(dp["amount"]), str(dp["currency"]))
    txns = []
    for txn in field_of(dp, "balance_transactions") or ():
        currency = str(txn["currency"])
        txns.append(
            DisputeTxn(
                id=str(txn["id"]),
                amount=from_stripe_amount(int(txn["amount"]), currency).amount,
                fee=from_stripe_amount(int(txn["fee"]), currency).amount,
                currency=currency.upper(),
                reporting_category=str(field_of(txn, "reporting_category") or ""),
                created=_at(txn["created"]),
            )
        )
    return DisputeSnapshot(
        id=str(dp["id"]),
        charge_id=str(id_of(field_of(dp, "charge"))),
        payment_intent_id=id_of(field_of(dp, "payment_intent")),
        amount=money.amount,
        currency=money.currency,
        reason=str(field_of(dp, "reason") or "general"),
        status=str(dp["status"]),
        created=_at(dp["created"]),
        balance_transactions=tuple(txns),
    )


def payout_of(po: Any) -> Payout:
    money = from_stripe_amount(int(po["amount"]), str(po["currency"]))
    return Payout(
        id=str(po["id"]),
        amount=money.amount,
        currency=money.currency,
        status=str(po["status"]),
        arrival_date=_at(po["arrival_date"]),
        balance_transaction=id_of(field_of(po, "balance_transaction")),
        failure_balance_transaction=id_of(field_of(po, "failure_balance_transaction")),
        failure_code=field_of(po, "failure_code"),
    )


def txn_of(txn: Any, payout_id: str | None) -> SettlementTxn:
    currency = str(txn["currency"])

    def minor(value: Any) -> int:
        return from_stripe_amount(int(value), currency).amount

    source = field_of(txn, "source")
    source_id = id_of(source)
    ledger_ref = source_amount = source_currency = source_status = card_country = None
    if source is not None and not isinstance(source, str):
        ledger_ref, source_amount, source_currency, source_status, card_country = _source(source)
        if field_of(source, "object") == "dispute":
            ledger_ref = str(txn["id"])  # the ledger books each movement of a dispute
    rate = field_of(txn, "exchange_rate")
    details = tuple(
        (str(d["type"]), minor(d["amount"])) for d in (field_of(txn, "fee_details") or ())
    )
    return SettlementTxn(
        id=str(txn["id"]),
        type=str(txn["type"]),
        reporting_category=str(field_of(txn, "reporting_category") or ""),
        amount=minor(txn["amount"]),
        fee=minor(txn["fee"]),
        net=minor(txn["net"]),
        currency=currency.upper(),
        status=str(txn["status"]),
        created=_at(txn["created"]),
        available_on=_at(txn["available_on"]),
        payout_id=payout_id,
        source=source_id,
        ledger_ref=ledger_ref,
        source_amount=source_amount,
        source_currency=source_currency,
        source_status=source_status,
        card_country=card_country,
        exchange_rate=None if rate is None else str(rate),
        fee_details=details,
    )


def _source(
    source: Any,
) -> tuple[str | None, int | None, str | None, str | None, str | None]:
    """(ledger ref, amount, currency, status, card country) of an expanded source."""
    obj = field_of(source, "object")
    amount, currency = field_of(source, "amount"), field_of(source, "currency")
    money = None
    if isinstance(amount, int) and isinstance(currency, str):
        money = from_stripe_amount(abs(amount), currency)
    status = field_of(source, "status")
    status = status if isinstance(status, str) else None
    if obj == "charge":
        card = field_of(field_of(source, "payment_method_details"), "card")
        country = field_of(card, "country")
        return (
            id_of(field_of(source, "payment_intent")) or str(source["id"]),
            None if money is None else money.amount,
            None if money is None else money.currency,
            status,
            country if isinstance(country, str) else None,
        )
    if obj in ("refund", "dispute"):
        return (
            str(source["id"]),
            None if money is None else money.amount,
            None if money is None else money.currency,
            status,
            None,
        )
    return None, None, None, None, None
