"""Tax engine inputs and outputs: frozen dataclasses of ints, strings, dates and str enums.

Every type here can be persisted as it stands (a finalized invoice freezes its
``TaxQuote``). Amounts are integer minor units of the quote's currency; rates are
integer parts per million (``rate_ppm``; 9.975 % is 99 750). Date ranges are
inclusive at both ends: ``valid_to`` is the last day in force, ``None`` means open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

PPM = 1_000_000


class TaxType(StrEnum):
    VAT = "vat"
    GST = "gst"
    HST = "hst"
    PST = "pst"
    QST = "qst"
    RST = "rst"  # Manitoba retail sales tax
    JCT = "jct"  # Japanese consumption tax
    IGST = "igst"  # India integrated GST
    SALES_TAX = "sales_tax"
    OTHER = "other"  # a provider-reported type Dunwell has no name for; raw type in detail


class TaxReason(StrEnum):
    STANDARD_RATED = "standard_rated"
    REVERSE_CHARGE = "reverse_charge"
    CUSTOMER_EXEMPT = "customer_exempt"
    NOT_COLLECTING = "not_collecting"
    NOT_TAXABLE = "not_taxable"


class TaxBehavior(StrEnum):
    EXCLUSIVE = "exclusive"  # tax is added on top of the amount
    INCLUSIVE = "inclusive"  # the amount already contains the tax


@dataclass(frozen=True, slots=True)
class Address:
    country: str  # ISO 3166-1 alpha-2
    region: str | None = None  # state / province: "CA", "QC" or ISO 3166-2 "US-CA"
    postal_code: str | None = None
    city: str | None = None
    line1: str | None = None
    line2: str | None = None


@dataclass(frozen=True, slots=True)
class TaxableLine:
    line_id: str
    amount: int  # minor units; negative for credits
    currency: str
    tax_behavior: TaxBehavior = TaxBehavior.EXCLUSIVE
    tax_code: str = "saas"  # built-in rules know only SaaS; Stripe maps it or takes a txcd_ code
    description: str = ""


@dataclass(frozen=True, slots=True)
class ExemptionCertificate:
    jurisdiction: str  # "US-TX", "CA-BC", "CA" (GST/HST), "DE"
    number: str
    valid_from: date
    valid_to: date | None
    document_ref: str


@dataclass(frozen=True, slots=True)
class TaxCustomer:
    billing_address: Address | None
    # A VAT ID claims the customer buys as a business (B2B).
    vat_id: str | None = None
    exemption_certificates: tuple[ExemptionCertificate, ...] = ()
    customer_ref: str | None = None


@dataclass(frozen=True, slots=True)
class Registration:
    """Where the seller collects: a country ("DE"), a subdivision ("US-TX", "CA-QC"),
    "EU" for the One-Stop Shop (VAT in every member state) or "CA" for GST/HST."""

    jurisdiction: str
    tax_type: TaxType | None
    valid_from: date
    valid_to: date | None
    registration_number: str

    def in_force(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


@dataclass(frozen=True, slots=True)
class Evidence:
    """One recorded fact the quote relied on, e.g. which address field decided the
    jurisdiction, the VAT ID check, a certificate that was (not) applied."""

    kind: str  # jurisdiction | vat_id | vies | exemption_certificate | registration | provider
    subject: str
    detail: str


@dataclass(frozen=True, slots=True)
class VatCheckResult:
    """A live VAT ID check (VIES), kept on the quote as proof."""

    vat_id: str
    valid: bool
    checked_at: datetime
    source: str  # e.g. "vies"
    consultation_number: str | None = None
    name: str | None = None
    address: str | None = None


@dataclass(frozen=True, slots=True)
class TaxComponent:
    """One tax type in one jurisdiction on one line (Canada GST + PST is two)."""

    jurisdiction: str  # "DE", "US-TX", "CA-QC"
    tax_type: TaxType | None  # None only when nothing is known of the place's tax
    rate_ppm: int  # rate applied; 0 unless standard_rated
    taxable_amount: int
    tax_amount: int
    reason: TaxReason
    detail: str = ""

    @property
    def rate_percent(self) -> Decimal:
        return Decimal(self.rate_ppm) / 10_000


@dataclass(frozen=True, slots=True)
class QuoteLine:
    line_id: str
    amount: int  # as given on the TaxableLine
    tax_behavior: TaxBehavior
    amount_excluding_tax: int
    tax_amount: int
    amount_including_tax: int
    components: tuple[TaxComponent, ...]


@dataclass(frozen=True, slots=True)
class TaxQuote:
    engine: str  # "builtin" | "stripe"
    at: datetime
    currency: str
    currency_exponent: int
    jurisdiction: str  # the customer's: "FR", "US-NY", "CA-QC"
    lines: tuple[QuoteLine, ...]
    subtotal_excluding_tax: int
    tax_total: int
    total_including_tax: int
    rate_table_version: str
    rounding_rule: str
    evidence: tuple[Evidence, ...]
    legal_mentions: tuple[str, ...] = ()
    vat_check: VatCheckResult | None = None
    provider_ref: str | None = None  # Stripe tax calculation id

    @property
    def reasons(self) -> frozenset[TaxReason]:
        return frozenset(c.reason for line in self.lines for c in line.components)
