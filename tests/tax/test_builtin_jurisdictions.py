"""Per-jurisdiction rates, before and after each rate change the table records."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tax import TaxReason, TaxType
from tests.tax.conftest import at, customer, expected_tax, line

AMOUNT = 123_457  # odd on purpose, so rounding shows

# (country, region, currency, last day of old rate, old %, first day of new rate, new %)
# old % None: SaaS was not taxable before the change.
RATE_CHANGES = [
    ("CH", None, "CHF", "2023-12-31", "7.7", "2024-01-01", "8.1"),
    ("EE", None, "EUR", "2023-12-31", "20", "2024-01-01", "22"),
    ("EE", None, "EUR", "2025-06-30", "22", "2025-07-01", "24"),
    ("FI", None, "EUR", "2024-08-31", "24", "2024-09-01", "25.5"),
    ("SK", None, "EUR", "2024-12-31", "20", "2025-01-01", "23"),
    ("SG", None, "SGD", "2022-12-31", "7", "2023-01-01", "8"),
    ("SG", None, "SGD", "2023-12-31", "8", "2024-01-01", "9"),
    ("LU", None, "EUR", "2022-12-31", "17", "2023-01-01", "16"),
    ("LU", None, "EUR", "2023-12-31", "16", "2024-01-01", "17"),
    ("RO", None, "RON", "2025-07-31", "19", "2025-08-01", "21"),
    ("DE", None, "EUR", "2020-12-31", "16", "2021-01-01", "19"),
    ("IE", None, "EUR", "2021-02-28", "21", "2021-03-01", "23"),
    ("CA", "NS", "CAD", "2025-03-31", "15", "2025-04-01", "14"),
    ("US", "NM", "USD", "2024-06-30", "5.125", "2024-07-01", "4.875"),
    ("US", "SD", "USD", "2023-06-30", "4.5", "2023-07-01", "4.2"),
    ("US", "LA", "USD", "2024-12-31", None, "2025-01-01", "5"),
    ("US", "KY", "USD", "2022-12-31", None, "2023-01-01", "6"),
]


@pytest.mark.parametrize(
    ("country", "region", "currency", "before", "old", "after", "new"),
    RATE_CHANGES,
    ids=[f"{c}{'-' + r if r else ''}-{a}" for c, r, _, _, _, a, _ in RATE_CHANGES],
)
def test_rate_in_force_on_each_side_of_a_change(
    engine, registrations, country, region, currency, before, old, after, new
):
    who = customer(country, region)
    for day, percent in ((before, old), (after, new)):
        quote = engine.quote([line(AMOUNT, currency)], who, registrations, at(day))
        (component,) = quote.lines[0].components
        if percent is None:
            assert component.reason is TaxReason.NOT_TAXABLE
            assert quote.tax_total == 0
            continue
        assert component.reason is TaxReason.STANDARD_RATED
        assert component.rate_percent == Decimal(percent)
        assert component.tax_amount == expected_tax(AMOUNT, percent)
        assert quote.tax_total == expected_tax(AMOUNT, percent)


# Standard rates on 2026-06-01 (customer place, currency, tax type, %).
STEADY = [
    *[
        (c, "EUR", TaxType.VAT, p)
        for c, p in {
            "AT": "20", "BE": "21", "HR": "25", "CY": "19", "DE": "19", "EE": "24", "FI": "25.5",
            "FR": "20", "GR": "24", "IE": "23", "IT": "22", "LV": "21", "LT": "21", "LU": "17",
            "MT": "18", "NL": "21", "PT": "23", "SK": "23", "SI": "22", "ES": "21",
        }.items()
    ],
    ("BG", "BGN", TaxType.VAT, "20"),
    ("CZ", "CZK", TaxType.VAT, "21"),
    ("DK", "DKK", TaxType.VAT, "25"),
    ("HU", "HUF", TaxType.VAT, "27"),
    ("PL", "PLN", TaxType.VAT, "23"),
    ("RO", "RON", TaxType.VAT, "21"),
    ("SE", "SEK", TaxType.VAT, "25"),
    ("GB", "GBP", TaxType.VAT, "20"),
    ("CH", "CHF", TaxType.VAT, "8.1"),
    ("NO", "NOK", TaxType.VAT, "25"),
    ("AU", "AUD", TaxType.GST, "10"),
    ("NZ", "NZD", TaxType.GST, "15"),
    ("SG", "SGD", TaxType.GST, "9"),
    ("JP", "JPY", TaxType.JCT, "10"),
    ("IN", "INR", TaxType.IGST, "18"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("country", "currency", "tax_type", "percent"), STEADY, ids=[s[0] for s in STEADY]
)
def test_national_standard_rates(engine, registrations, country, currency, tax_type, percent):
    quote = engine.quote(
        [line(AMOUNT, currency)], customer(country), registrations, at("2026-06-01")
    )
    (component,) = quote.lines[0].components
    assert (component.jurisdiction, component.tax_type) == (country, tax_type)
    assert component.reason is TaxReason.STANDARD_RATED
    assert component.tax_amount == expected_tax(AMOUNT, percent)
    assert quote.jurisdiction == country
    assert quote.evidence[0].kind == "jurisdiction"
    assert quote.evidence[0].detail == f"billing_address.country={country}"


CANADA = [
    ("AB", [("CA", TaxType.GST, "5")]),
    ("BC", [("CA", TaxType.GST, "5"), ("CA-BC", TaxType.PST, "7")]),
    ("SK", [("CA", TaxType.GST, "5"), ("CA-SK", TaxType.PST, "6")]),
    ("MB", [("CA", TaxType.GST, "5"), ("CA-MB", TaxType.RST, "7")]),
    ("QC", [("CA", TaxType.GST, "5"), ("CA-QC", TaxType.QST, "9.975")]),
    ("ON", [("CA-ON", TaxType.HST, "13")]),
    ("NS", [("CA-NS", TaxType.HST, "14")]),
    ("NB", [("CA-NB", TaxType.HST, "15")]),
    ("YT", [("CA", TaxType.GST, "5")]),
]


@pytest.mark.parametrize(("province", "expected"), CANADA, ids=[c[0] for c in CANADA])
def test_canada_one_component_per_tax_type(engine, registrations, province, expected):
    quote = engine.quote(
        [line(10_000, "CAD")], customer("CA", province), registrations, at("2026-06-01")
    )
    got = [(c.jurisdiction, c.tax_type, c.tax_amount) for c in quote.lines[0].components]
    assert got == [(j, t, expected_tax(10_000, p)) for j, t, p in expected]
    assert quote.tax_total == sum(expected_tax(10_000, p) for _, _, p in expected)
    assert quote.jurisdiction == f"CA-{province}"
    assert "billing_address.region" in quote.evidence[0].detail


def test_qst_rounds_half_up_per_component(engine, registrations):
    # 9.975 % of 10 000 = 997.5 → 998; GST 500.
    quote = engine.quote(
        [line(10_000, "CAD")], customer("CA", "QC"), registrations, at("2026-06-01")
    )
    assert [c.tax_amount for c in quote.lines[0].components] == [500, 998]


US = [
    ("NY", TaxReason.STANDARD_RATED, "4"),
    ("WA", TaxReason.STANDARD_RATED, "6.5"),
    ("CT", TaxReason.STANDARD_RATED, "1"),
    ("CA", TaxReason.NOT_TAXABLE, None),
    ("FL", TaxReason.NOT_TAXABLE, None),
    ("OR", TaxReason.NOT_TAXABLE, None),
]


@pytest.mark.parametrize(("state", "reason", "percent"), US, ids=[u[0] for u in US])
def test_us_state_saas_taxability(engine, registrations, state, reason, percent):
    quote = engine.quote(
        [line(AMOUNT, "USD")], customer("US", state), registrations, at("2026-06-01")
    )
    (component,) = quote.lines[0].components
    assert component.jurisdiction == f"US-{state}"
    assert component.tax_type is TaxType.SALES_TAX
    assert component.reason is reason
    assert component.tax_amount == (expected_tax(AMOUNT, percent) if percent else 0)
    if percent is None:
        assert component.detail  # says why: not taxable / no sales tax, with the source


def test_texas_taxes_eighty_percent_of_saas(engine, registrations):
    quote = engine.quote(
        [line(10_000, "USD")], customer("US", "TX"), registrations, at("2026-06-01")
    )
    (component,) = quote.lines[0].components
    assert component.taxable_amount == 8_000
    assert component.tax_amount == expected_tax(8_000, "6.25")


def test_iso_3166_2_region_codes_are_accepted(engine, registrations):
    quote = engine.quote(
        [line(100, "USD")], customer("US", "us-ny"), registrations, at("2026-06-01")
    )
    assert quote.jurisdiction == "US-NY"
