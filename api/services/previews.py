"""Plan change previews: what a change would cost, computed without any write.

The lines are the ones the workflow would invoice (``billing.proration.prorate`` at
``now``), taxed by the same engine, registrations and customer mapping the worker
uses (with the customer's exemption certificates), so the figures shown before the confirm button are the ones the invoice will
carry unless a rate changes or time passes in between (proration is to the second).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from activities.billing import tax_customer
from api.errors import ApiError
from api.schemas import PlanChangePreviewOut, PreviewLineOut, TaxComponentOut
from billing.catalog import CustomerProfile, Price
from billing.lifecycle import SubscriptionStatus
from billing.proration import ChangeDecision, ChangeTiming, LineKind, PlanChangeRefused, prorate
from tax import (
    ExemptionCertificate,
    Registration,
    TaxableLine,
    TaxBehavior,
    TaxEngine,
    TaxError,
    aquote,
)
from tax.model import QuoteLine, TaxQuote
from workflows.subscription.state import SubscriptionState


async def preview_plan_change(
    *,
    state: SubscriptionState,
    old_price: Price,
    new_price: Price,
    decision: ChangeDecision | None,
    customer: CustomerProfile,
    tax_engine: TaxEngine,
    registrations: Sequence[Registration],
    certificates: Sequence[ExemptionCertificate],
    now: datetime,
) -> PlanChangePreviewOut:
    assert state.period_start is not None and state.period_end is not None
    if decision is None:
        # The current plan chosen again while a downgrade is scheduled: it is withdrawn.
        return await _priced(
            state, old_price, new_price, "lateral", "withdraw_scheduled", now, [],
            (customer, certificates), tax_engine, registrations, now,
        )  # fmt: skip
    kind = str(decision.kind)
    if state.status is SubscriptionStatus.TRIALING:
        # Nothing is billed during a trial: the price is swapped, the trial end bills it.
        return await _priced(
            state, old_price, new_price, kind, "trial_swap", state.period_end, [],
            (customer, certificates), tax_engine, registrations, now,
        )  # fmt: skip
    if decision.timing is ChangeTiming.PERIOD_END:
        line = (
            "next_period",
            f"{new_price.plan_id} from {state.period_end:%Y-%m-%d}",
            new_price,
            new_price.amount,
        )
        return await _priced(
            state, old_price, new_price, kind, "period_end", state.period_end, [line],
            (customer, certificates), tax_engine, registrations, state.period_end,
        )  # fmt: skip
    try:
        proration = prorate(
            old_price=old_price,
            new_price=new_price,
            period_start=state.period_start,
            period_end=state.period_end,
            change_at=now,
        )
    except PlanChangeRefused as err:
        raise ApiError(409, str(err.reason_code), err.message) from None
    lines = [
        (
            "credit" if line.kind is LineKind.CREDIT else "charge",
            line.description,
            old_price if line.kind is LineKind.CREDIT else new_price,
            line.amount,
        )
        for line in proration.lines
    ]
    return await _priced(
        state, old_price, new_price, kind, "immediately", now, lines,
        (customer, certificates), tax_engine, registrations, now,
    )  # fmt: skip


_Line = tuple[str, str, Price, int]


async def _priced(
    state: SubscriptionState,
    old_price: Price,
    new_price: Price,
    kind: str,
    effective: str,
    effective_at: datetime,
    lines: list[_Line],
    who: tuple[CustomerProfile, Sequence[ExemptionCertificate]],
    tax_engine: TaxEngine,
    registrations: Sequence[Registration],
    tax_at: datetime,
) -> PlanChangePreviewOut:
    quote: TaxQuote | None = None
    if lines:
        taxable = [
            TaxableLine(
                line_id=f"preview:{i}",
                amount=amount,
                currency=price.currency,
                tax_behavior=TaxBehavior.INCLUSIVE
                if price.tax_inclusive
                else TaxBehavior.EXCLUSIVE,
                description=description,
            )
            for i, (_kind, description, price, amount) in enumerate(lines)
        ]
        try:
            customer = tax_customer(*who)
            quote = await aquote(tax_engine, taxable, customer, registrations, tax_at)
        except TaxError as err:
            raise ApiError(422, "tax_unavailable", str(err)) from None
    quoted: list[QuoteLine] = list(quote.lines) if quote else []
    out_lines = [
        PreviewLineOut(
            kind=line_kind,
            description=description,
            plan_id=price.plan_id,
            amount=amount,
            amount_excluding_tax=q.amount_excluding_tax,
            tax_amount=q.tax_amount,
            amount_including_tax=q.amount_including_tax,
            tax=[
                TaxComponentOut(
                    jurisdiction=c.jurisdiction,
                    tax_type=None if c.tax_type is None else str(c.tax_type),
                    rate_ppm=c.rate_ppm,
                    taxable_amount=c.taxable_amount,
                    tax_amount=c.tax_amount,
                    reason=str(c.reason),
                )
                for c in q.components
            ],
        )
        for (line_kind, description, price, amount), q in zip(lines, quoted, strict=True)
    ]
    assert state.plan_id is not None and state.currency is not None
    return PlanChangePreviewOut(
        subscription_id=state.subscription_id,
        from_plan_id=old_price.plan_id,
        to_plan_id=new_price.plan_id,
        kind=kind,
        effective=effective,
        effective_at=effective_at,
        currency=state.currency,
        lines=out_lines,
        subtotal=quote.subtotal_excluding_tax if quote else 0,
        tax_total=quote.tax_total if quote else 0,
        total=quote.total_including_tax if quote else 0,
        tax_jurisdiction=quote.jurisdiction if quote else None,
        legal_mentions=list(quote.legal_mentions) if quote else [],
    )
