"""The built-in, offline tax engine for SaaS subscriptions.

Decision order for each tax component of the customer's jurisdiction:

1. EU B2B: a VAT ID that passes ``stdnum.eu.vat`` (and the live checker, if one is
   configured) from a member state other than the seller's establishment → reverse
   charge at 0 % with the Article 196 mention, provided the seller holds some EU VAT
   registration; without one the line is ``not_collecting``.
   A malformed VAT ID is not an error here: the customer is treated as a consumer and
   the evidence says the ID was invalid (``validate_vat_id`` rejects it at input time).
2. No registration in force on the quote day → ``not_collecting``.
3. The product is not taxed there (US states where SaaS is not taxable, states
   without sales tax) → ``not_taxable``.
4. An exemption certificate for the jurisdiction in force on the quote day →
   ``customer_exempt``; an expired or future certificate is recorded, not applied.
5. Otherwise ``standard_rated`` at the rate in force.

The quote day is ``at`` in UTC; rates change at local midnight, so a quote within a
few hours of a change near midnight may take the neighbouring day's rate.
Rounding: see ``tax.rounding.ROUNDING_RULE`` (per component, half-up, minor unit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from tax.errors import RateDataError, UnsupportedTaxCodeError
from tax.inputs import check_lines, require_aware, single_currency
from tax.model import (
    PPM,
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
    VatCheckResult,
)
from tax.places import EU_MEMBER_STATES, Place, resolve_place
from tax.rates import RateRow, RateTable, SaasTaxability, load_rate_table
from tax.rounding import ROUNDING_RULE, div_half_up, split_gross, tax_on_net
from tax.vat_ids import VatIdChecker, is_valid_vat_id, normalize_vat_id, vat_id_country

REVERSE_CHARGE_MENTION = (
    "Reverse charge: VAT to be accounted for by the recipient, "
    "Article 196 Council Directive 2006/112/EC"
)
SUPPORTED_TAX_CODES = frozenset({"saas"})
_CANADA_FEDERAL = frozenset({TaxType.GST, TaxType.HST})  # one CRA GST/HST registration


@dataclass(frozen=True, slots=True)
class _Plan:
    """What happens to every line's net amount for one tax component."""

    jurisdiction: str
    tax_type: TaxType | None
    rate_ppm: int  # charged rate; 0 unless standard rated
    taxable_ppm: int  # share of the net that is the taxable amount
    reason: TaxReason
    detail: str


@dataclass(slots=True)
class _VatStatus:
    reverse_charge: bool = False
    check: VatCheckResult | None = None


class BuiltinTaxEngine:
    name = "builtin"

    def __init__(
        self,
        *,
        seller_country: str | None = None,
        rate_table: RateTable | None = None,
        vat_checker: VatIdChecker | None = None,
    ) -> None:
        # The member state the seller is established in; None for a seller outside the EU.
        self.seller_country = seller_country.upper() if seller_country else None
        self.rate_table = rate_table or load_rate_table()
        self.vat_checker = vat_checker

    def quote(
        self,
        lines: Sequence[TaxableLine],
        customer: TaxCustomer,
        registrations: Sequence[Registration],
        at: datetime,
    ) -> TaxQuote:
        day = require_aware(at)
        currency, exponent = single_currency(lines)
        check_lines(lines)
        unsupported = {line.tax_code for line in lines} - SUPPORTED_TAX_CODES
        if unsupported:
            raise UnsupportedTaxCodeError(f"no built-in rules for tax codes {sorted(unsupported)}")
        place, where = resolve_place(customer.billing_address)
        evidence = [where]
        vat = self._vat_status(place, customer, at, evidence)
        plans = self._plans(place, customer, registrations, day, vat, evidence)
        _record_unmatched_certificates(customer, place, evidence)
        quote_lines = tuple(_apply(plans, line) for line in lines)
        mentions = (
            (REVERSE_CHARGE_MENTION,)
            if any(p.reason is TaxReason.REVERSE_CHARGE for p in plans)
            else ()
        )
        subtotal = sum(line.amount_excluding_tax for line in quote_lines)
        tax_total = sum(line.tax_amount for line in quote_lines)
        return TaxQuote(
            engine=self.name,
            at=at,
            currency=currency,
            currency_exponent=exponent,
            jurisdiction=place.code,
            lines=quote_lines,
            subtotal_excluding_tax=subtotal,
            tax_total=tax_total,
            total_including_tax=subtotal + tax_total,
            rate_table_version=self.rate_table.version,
            rounding_rule=ROUNDING_RULE,
            evidence=tuple(evidence),
            legal_mentions=mentions,
            vat_check=vat.check,
        )

    def _vat_status(
        self, place: Place, customer: TaxCustomer, at: datetime, evidence: list[Evidence]
    ) -> _VatStatus:
        status = _VatStatus()
        raw = customer.vat_id
        if not raw:
            return status
        if not place.in_eu:
            evidence.append(Evidence("vat_id", raw, "customer outside the EU; VAT ID not used"))
            return status
        if not is_valid_vat_id(raw):
            evidence.append(
                Evidence(
                    "vat_id",
                    raw,
                    "invalid: fails stdnum.eu.vat format/check digits; "
                    "treated as a consumer, reverse charge not applied",
                )
            )
            return status
        vat_id = normalize_vat_id(raw)
        if self.vat_checker is not None:
            status.check = self.vat_checker.check(vat_id, at)
            evidence.append(
                Evidence(
                    "vies",
                    vat_id,
                    f"valid={status.check.valid} source={status.check.source} "
                    f"consultation={status.check.consultation_number or '-'}",
                )
            )
            if not status.check.valid:
                evidence.append(
                    Evidence(
                        "vat_id", vat_id, "rejected by the live check; reverse charge not applied"
                    )
                )
                return status
        id_country = vat_id_country(vat_id)
        if id_country == self.seller_country:
            evidence.append(
                Evidence(
                    "vat_id",
                    vat_id,
                    f"valid, same member state as the seller's establishment ({id_country}); "
                    "domestic supply, VAT charged",
                )
            )
            return status
        established = self.seller_country or "outside the EU"
        mismatch = "" if id_country == place.country else f"; billing country is {place.country}"
        evidence.append(
            Evidence(
                "vat_id",
                vat_id,
                f"valid ({id_country}), seller established {established}: reverse charge{mismatch}",
            )
        )
        status.reverse_charge = True
        return status

    def _plans(
        self,
        place: Place,
        customer: TaxCustomer,
        registrations: Sequence[Registration],
        day: date,
        vat: _VatStatus,
        evidence: list[Evidence],
    ) -> list[_Plan]:
        table = self.rate_table
        if place.country == "US":
            return [self._us_plan(place, customer, registrations, day, evidence)]
        if not table.covers_country(place.country):
            held = _registrations_for({place.country}, None, registrations, day)
            if held:
                raise RateDataError(
                    f"registered in {place.country} ({held[0].registration_number}) "
                    "but the built-in rate table has no rates there"
                )
            return [
                _Plan(
                    place.country,
                    None,
                    0,
                    PPM,
                    TaxReason.NOT_COLLECTING,
                    f"no registration in {place.country} and no built-in rate data for it",
                )
            ]
        rows = table.rates_in_force(place.country, place.region, day)
        if not rows:
            raise RateDataError(f"no rate in force for {place.code} on {day.isoformat()}")
        return [
            self._plan_for_row(row, place, customer, registrations, day, vat, evidence)
            for row in rows
        ]

    def _plan_for_row(
        self,
        row: RateRow,
        place: Place,
        customer: TaxCustomer,
        registrations: Sequence[Registration],
        day: date,
        vat: _VatStatus,
        evidence: list[Evidence],
    ) -> _Plan:
        jurisdiction = _component_jurisdiction(row, place)
        if vat.reverse_charge and row.tax_type is TaxType.VAT:
            eu_scopes = EU_MEMBER_STATES | {"EU"}
            if _registrations_for(eu_scopes, TaxType.VAT, registrations, day):
                return _Plan(
                    jurisdiction,
                    row.tax_type,
                    0,
                    PPM,
                    TaxReason.REVERSE_CHARGE,
                    REVERSE_CHARGE_MENTION,
                )
            return _Plan(
                jurisdiction,
                row.tax_type,
                0,
                PPM,
                TaxReason.NOT_COLLECTING,
                "no EU VAT registration in force; the business customer self-accounts",
            )
        scopes = _registration_scopes(row, place)
        if not self._registered(scopes, row.tax_type, registrations, day, jurisdiction, evidence):
            return _Plan(
                jurisdiction,
                row.tax_type,
                0,
                PPM,
                TaxReason.NOT_COLLECTING,
                f"no {row.tax_type} registration in force for {jurisdiction} on {day.isoformat()}",
            )
        exempt = _exemption(customer, (scopes | {jurisdiction}) - {"EU"}, day, evidence)
        if exempt:
            return _Plan(jurisdiction, row.tax_type, 0, PPM, TaxReason.CUSTOMER_EXEMPT, exempt)
        return _Plan(
            jurisdiction,
            row.tax_type,
            row.rate_ppm,
            PPM,
            TaxReason.STANDARD_RATED,
            f"{row.rate_ppm / 10_000:g}% in force since {row.valid_from.isoformat()} ({row.source_url})",
        )

    def _us_plan(
        self,
        place: Place,
        customer: TaxCustomer,
        registrations: Sequence[Registration],
        day: date,
        evidence: list[Evidence],
    ) -> _Plan:
        code = place.code
        taxability = self.rate_table.us_saas_taxability(place.region, day)
        if taxability is None:
            raise RateDataError(f"no SaaS taxability data for {code} on {day.isoformat()}")
        if not self._registered({code}, TaxType.SALES_TAX, registrations, day, code, evidence):
            return _Plan(
                code,
                TaxType.SALES_TAX,
                0,
                PPM,
                TaxReason.NOT_COLLECTING,
                f"no sales tax registration (nexus) in force for {code} on {day.isoformat()}",
            )
        if taxability.taxability is not SaasTaxability.TAXABLE:
            return _Plan(
                code,
                TaxType.SALES_TAX,
                0,
                0,
                TaxReason.NOT_TAXABLE,
                f"{taxability.taxability}: {taxability.note} ({taxability.source_url})",
            )
        rows = [
            row
            for row in self.rate_table.rates_in_force("US", place.region, day)
            if row.tax_type is TaxType.SALES_TAX
        ]
        if len(rows) != 1:
            raise RateDataError(
                f"expected one sales tax rate for {code} on {day}, found {len(rows)}"
            )
        exempt = _exemption(customer, {code}, day, evidence)
        if exempt:
            return _Plan(
                code,
                TaxType.SALES_TAX,
                0,
                taxability.taxable_ppm,
                TaxReason.CUSTOMER_EXEMPT,
                exempt,
            )
        share = (
            ""
            if taxability.taxable_ppm == PPM
            else f" on {taxability.taxable_ppm / 10_000:g}% of the charge"
        )
        return _Plan(
            code,
            TaxType.SALES_TAX,
            rows[0].rate_ppm,
            taxability.taxable_ppm,
            TaxReason.STANDARD_RATED,
            f"state rate {rows[0].rate_ppm / 10_000:g}%{share}; local rates not included "
            f"({rows[0].source_url})",
        )

    @staticmethod
    def _registered(
        scopes: set[str],
        tax_type: TaxType,
        registrations: Sequence[Registration],
        day: date,
        jurisdiction: str,
        evidence: list[Evidence],
    ) -> bool:
        held = _registrations_for(scopes, tax_type, registrations, day)
        if held:
            evidence.append(
                Evidence(
                    "registration",
                    jurisdiction,
                    f"{held[0].jurisdiction} {held[0].registration_number} "
                    f"in force since {held[0].valid_from.isoformat()}",
                )
            )
            return True
        for reg in registrations:
            if reg.jurisdiction in scopes and _type_matches(reg.tax_type, tax_type):
                evidence.append(
                    Evidence(
                        "registration",
                        jurisdiction,
                        f"{reg.jurisdiction} {reg.registration_number} not in force on "
                        f"{day.isoformat()} (valid {reg.valid_from.isoformat()} to "
                        f"{reg.valid_to.isoformat() if reg.valid_to else 'open'})",
                    )
                )
        return False


def _apply(plans: Sequence[_Plan], line: TaxableLine) -> QuoteLine:
    if line.tax_behavior is TaxBehavior.INCLUSIVE:
        effective = [div_half_up(p.rate_ppm * p.taxable_ppm, PPM) for p in plans]
        net, taxes = split_gross(line.amount, effective)
    else:
        net = line.amount
        taxes = []
        for plan in plans:
            taxable = div_half_up(net * plan.taxable_ppm, PPM)
            taxes.append(tax_on_net(taxable, plan.rate_ppm))
    components = tuple(
        TaxComponent(
            jurisdiction=plan.jurisdiction,
            tax_type=plan.tax_type,
            rate_ppm=plan.rate_ppm,
            taxable_amount=div_half_up(net * plan.taxable_ppm, PPM),
            tax_amount=tax,
            reason=plan.reason,
            detail=plan.detail,
        )
        for plan, tax in zip(plans, taxes, strict=True)
    )
    tax_amount = sum(taxes)
    return QuoteLine(
        line_id=line.line_id,
        amount=line.amount,
        tax_behavior=line.tax_behavior,
        amount_excluding_tax=net,
        tax_amount=tax_amount,
        amount_including_tax=net + tax_amount,
        components=components,
    )


def _component_jurisdiction(row: RateRow, place: Place) -> str:
    if row.country == "CA" and row.tax_type is TaxType.GST:
        return "CA"  # federal GST, the same everywhere it applies
    return f"{row.country}-{row.region}" if row.region else row.country


def _registration_scopes(row: RateRow, place: Place) -> set[str]:
    if place.in_eu and row.tax_type is TaxType.VAT:
        return {place.country, "EU"}  # "EU": One-Stop Shop registration
    if row.country == "CA" and row.tax_type in _CANADA_FEDERAL:
        return {"CA"}  # GST/HST: one federal CRA registration
    if row.region:
        return {f"{row.country}-{row.region}"}
    return {row.country}


def _type_matches(registered: TaxType | None, needed: TaxType | None) -> bool:
    if registered is None or needed is None or registered is needed:
        return True
    return registered in _CANADA_FEDERAL and needed in _CANADA_FEDERAL


def _registrations_for(
    scopes: set[str] | frozenset[str],
    tax_type: TaxType | None,
    registrations: Sequence[Registration],
    day: date,
) -> list[Registration]:
    return [
        reg
        for reg in registrations
        if reg.jurisdiction in scopes
        and _type_matches(reg.tax_type, tax_type)
        and reg.in_force(day)
    ]


def _exemption(
    customer: TaxCustomer, scopes: set[str], day: date, evidence: list[Evidence]
) -> str | None:
    """Detail text of the certificate that applies, or None; records the ones that don't."""
    for cert in customer.exemption_certificates:
        if cert.jurisdiction not in scopes:
            continue
        if day < cert.valid_from:
            evidence.append(
                Evidence(
                    "exemption_certificate",
                    cert.number,
                    f"not applied: valid only from {cert.valid_from.isoformat()} ({cert.document_ref})",
                )
            )
        elif cert.valid_to is not None and day > cert.valid_to:
            evidence.append(
                Evidence(
                    "exemption_certificate",
                    cert.number,
                    f"not applied: expired on {cert.valid_to.isoformat()} ({cert.document_ref})",
                )
            )
        else:
            detail = (
                f"exemption certificate {cert.number} for {cert.jurisdiction} ({cert.document_ref})"
            )
            evidence.append(Evidence("exemption_certificate", cert.number, "applied: " + detail))
            return detail
    return None


def _record_unmatched_certificates(
    customer: TaxCustomer, place: Place, evidence: list[Evidence]
) -> None:
    seen = {e.subject for e in evidence if e.kind == "exemption_certificate"}
    for cert in customer.exemption_certificates:
        if cert.number not in seen:
            evidence.append(
                Evidence(
                    "exemption_certificate",
                    cert.number,
                    f"not applied: issued for {cert.jurisdiction}, not for the taxes of "
                    f"{place.code} ({cert.document_ref})",
                )
            )
