"""Stripe Tax as a ``TaxEngine``: one ``POST /v1/tax/calculations`` per quote.

Stripe collects only where the Stripe account holds a tax registration, so the
``registrations`` argument is not sent; Stripe's own answer (``not_collecting``) is
mapped instead. Input is checked with the built-in engine's rules first, so both
engines raise the same typed errors for bad input. Stripe rounds per line item; the
quote keeps the calculation id (``provider_ref``) for a later tax transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, cast

import stripe

from tax.builtin import REVERSE_CHARGE_MENTION
from tax.errors import TaxInputError, TaxProviderError, UnsupportedTaxCodeError
from tax.inputs import check_lines, require_aware, single_currency
from tax.model import (
    Evidence,
    QuoteLine,
    Registration,
    TaxableLine,
    TaxBehavior,
    TaxComponent,
    TaxCustomer,
    TaxQuote,
    TaxReason,
    TaxType,
)
from tax.places import resolve_place

if TYPE_CHECKING:
    from stripe.params.tax import CalculationCreateParams
    from stripe.tax import Calculation, CalculationLineItem

# Stripe product tax codes: https://docs.stripe.com/tax/tax-codes
DEFAULT_STRIPE_TAX_CODES: Mapping[str, str] = {"saas": "txcd_10103001"}  # SaaS, business use

STRIPE_ROUNDING_RULE = "as computed by Stripe Tax (per line item, currency minor unit)"

# Stripe taxability_reason → Dunwell reason; the raw value stays in the component detail.
_REASONS: Mapping[str, TaxReason] = {
    "standard_rated": TaxReason.STANDARD_RATED,
    "reduced_rated": TaxReason.STANDARD_RATED,
    "proportionally_rated": TaxReason.STANDARD_RATED,
    "portion_standard_rated": TaxReason.STANDARD_RATED,
    "portion_reduced_rated": TaxReason.STANDARD_RATED,
    "portion_product_exempt": TaxReason.STANDARD_RATED,
    "taxable_basis_reduced": TaxReason.STANDARD_RATED,
    "reverse_charge": TaxReason.REVERSE_CHARGE,
    "customer_exempt": TaxReason.CUSTOMER_EXEMPT,
    "not_collecting": TaxReason.NOT_COLLECTING,
    "not_supported": TaxReason.NOT_COLLECTING,
    "not_subject_to_tax": TaxReason.NOT_TAXABLE,
    "product_exempt": TaxReason.NOT_TAXABLE,
    "product_exempt_holiday": TaxReason.NOT_TAXABLE,
    "zero_rated": TaxReason.NOT_TAXABLE,
}
_TAX_TYPES: Mapping[str, TaxType] = {
    "vat": TaxType.VAT,
    "gst": TaxType.GST,
    "hst": TaxType.HST,
    "pst": TaxType.PST,
    "qst": TaxType.QST,
    "rst": TaxType.RST,
    "jct": TaxType.JCT,
    "igst": TaxType.IGST,
    "sales_tax": TaxType.SALES_TAX,
}


def percentage_to_ppm(text: str) -> int:
    try:
        value = Decimal(text) * 10_000
    except InvalidOperation:
        raise TaxProviderError(f"Stripe sent a non-decimal rate {text!r}") from None
    if value != value.to_integral_value():
        raise TaxProviderError(f"Stripe rate {text!r} % is finer than a millionth")
    return int(value)


class StripeTaxEngine:
    name = "stripe"

    def __init__(
        self,
        client: stripe.StripeClient,
        *,
        tax_codes: Mapping[str, str] = DEFAULT_STRIPE_TAX_CODES,
    ) -> None:
        self.client = client
        self.tax_codes = tax_codes

    def quote(
        self,
        lines: Sequence[TaxableLine],
        customer: TaxCustomer,
        registrations: Sequence[Registration],
        at: datetime,
    ) -> TaxQuote:
        require_aware(at)
        currency, exponent = single_currency(lines)
        check_lines(lines)
        place, where = resolve_place(customer.billing_address)
        evidence = [where]
        params = self._params(lines, customer, place.code, at, evidence)
        try:
            calculation = self.client.v1.tax.calculations.create(
                params=cast("CalculationCreateParams", params)
            )
        except stripe.StripeError as error:
            raise TaxProviderError(
                f"Stripe Tax calculation failed: {error}", code=error.code
            ) from error
        items = self._line_items(calculation)
        by_reference = {item.reference: item for item in items}
        quote_lines = []
        for line in lines:
            item = by_reference.get(line.line_id)
            if item is None:
                raise TaxProviderError(f"Stripe calculation lacks line {line.line_id}")
            quote_lines.append(_map_line(line, item))
        subtotal = sum(q.amount_excluding_tax for q in quote_lines)
        tax_total = sum(q.tax_amount for q in quote_lines)
        if tax_total != calculation.tax_amount_exclusive + calculation.tax_amount_inclusive:
            raise TaxProviderError("Stripe line taxes do not add up to the calculation's tax")
        evidence.append(
            Evidence(
                "provider",
                calculation.id or "",
                f"stripe tax calculation; tax_date={calculation.tax_date}; "
                f"expires_at={calculation.expires_at}; registrations held in the Stripe account",
            )
        )
        reverse = any(
            c.reason is TaxReason.REVERSE_CHARGE for q in quote_lines for c in q.components
        )
        return TaxQuote(
            engine=self.name,
            at=at,
            currency=currency,
            currency_exponent=exponent,
            jurisdiction=place.code,
            lines=tuple(quote_lines),
            subtotal_excluding_tax=subtotal,
            tax_total=tax_total,
            total_including_tax=subtotal + tax_total,
            rate_table_version="stripe-tax",
            rounding_rule=STRIPE_ROUNDING_RULE,
            evidence=tuple(evidence),
            legal_mentions=(REVERSE_CHARGE_MENTION,) if reverse else (),
            provider_ref=calculation.id,
        )

    def _params(
        self,
        lines: Sequence[TaxableLine],
        customer: TaxCustomer,
        place_code: str,
        at: datetime,
        evidence: list[Evidence],
    ) -> dict[str, Any]:
        address = customer.billing_address
        assert address is not None  # resolve_place refused a missing one
        stripe_address = {
            key: value
            for key, value in {
                "country": address.country.upper(),
                "state": address.region,
                "postal_code": address.postal_code,
                "city": address.city,
                "line1": address.line1,
                "line2": address.line2,
            }.items()
            if value
        }
        details: dict[str, Any] = {"address": stripe_address, "address_source": "billing"}
        if customer.vat_id:
            details["tax_ids"] = [{"type": "eu_vat", "value": customer.vat_id}]
        day = at.astimezone(UTC).date()
        country = place_code.split("-", 1)[0]
        for cert in customer.exemption_certificates:
            if cert.jurisdiction not in {place_code, country}:
                continue
            in_force = cert.valid_from <= day and (cert.valid_to is None or day <= cert.valid_to)
            evidence.append(
                Evidence(
                    "exemption_certificate",
                    cert.number,
                    (
                        "applied: sent as taxability_override=customer_exempt"
                        if in_force
                        else f"not applied: valid {cert.valid_from.isoformat()} to "
                        f"{cert.valid_to.isoformat() if cert.valid_to else 'open'}"
                    )
                    + f" ({cert.document_ref})",
                )
            )
            if in_force:
                details["taxability_override"] = "customer_exempt"
        items = []
        for line in lines:
            if line.amount < 0:
                raise TaxInputError(
                    f"line {line.line_id}: Stripe Tax calculations take no negative amounts"
                )
            tax_code = line.tax_code if line.tax_code.startswith("txcd_") else None
            tax_code = tax_code or self.tax_codes.get(line.tax_code)
            if tax_code is None:
                raise UnsupportedTaxCodeError(f"no Stripe tax code for {line.tax_code!r}")
            items.append(
                {
                    "amount": line.amount,
                    "reference": line.line_id,
                    "tax_behavior": line.tax_behavior.value,
                    "tax_code": tax_code,
                }
            )
        return {
            "currency": lines[0].currency.lower(),
            "line_items": items,
            "customer_details": details,
            "tax_date": int(at.timestamp()),
            "expand": ["line_items.data.tax_breakdown"],
        }

    def _line_items(self, calculation: Calculation) -> list[CalculationLineItem]:
        listing = calculation.line_items
        if listing is None or calculation.id is None:
            raise TaxProviderError("Stripe calculation came back without line items")
        items = list(listing.data)
        has_more = listing.has_more
        while has_more:
            page = self.client.v1.tax.calculations.line_items.list(
                calculation.id,
                params={"starting_after": items[-1].id, "expand": ["data.tax_breakdown"]},
            )
            items.extend(page.data)
            has_more = page.has_more
        return items


def _map_line(line: TaxableLine, item: CalculationLineItem) -> QuoteLine:
    if item.amount != line.amount:
        raise TaxProviderError(f"Stripe changed the amount of line {line.line_id}")
    inclusive = line.tax_behavior is TaxBehavior.INCLUSIVE
    net = item.amount - item.amount_tax if inclusive else item.amount
    components = []
    for part in item.tax_breakdown or []:
        juris = part.jurisdiction
        code = juris.country if not juris.state else f"{juris.country}-{juris.state}"
        details = part.tax_rate_details
        raw_type = details.tax_type if details else None
        tax_type = None if raw_type is None else _TAX_TYPES.get(raw_type, TaxType.OTHER)
        reason = _REASONS.get(part.taxability_reason)
        if reason is None:
            raise TaxProviderError(f"unknown Stripe taxability_reason {part.taxability_reason!r}")
        components.append(
            TaxComponent(
                jurisdiction=code,
                tax_type=tax_type,
                rate_ppm=percentage_to_ppm(details.percentage_decimal) if details else 0,
                taxable_amount=part.taxable_amount,
                tax_amount=part.amount,
                reason=reason,
                detail=(
                    f"stripe {part.taxability_reason}; level={juris.level}"
                    + (f"; {details.display_name}" if details else "")
                    + (f"; type={raw_type}" if tax_type is TaxType.OTHER else "")
                ),
            )
        )
    if sum(c.tax_amount for c in components) != item.amount_tax:
        raise TaxProviderError(f"Stripe tax breakdown of line {line.line_id} does not add up")
    return QuoteLine(
        line_id=line.line_id,
        amount=line.amount,
        tax_behavior=line.tax_behavior,
        amount_excluding_tax=net,
        tax_amount=item.amount_tax,
        amount_including_tax=net + item.amount_tax,
        components=tuple(components),
    )
