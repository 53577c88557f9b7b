"""Every bad-input path ends in a typed ``TaxError``, never in a silent zero."""

from __future__ import annotations

from datetime import datetime

import pytest

from activities.tax_engines import make_engine
from tax import (
    Address,
    InvalidVatIdError,
    MissingAddressError,
    MixedCurrencyError,
    NaiveDatetimeError,
    RateDataError,
    TaxableLine,
    TaxConfigError,
    TaxCustomer,
    TaxError,
    TaxInputError,
    UnknownCountryError,
    UnknownRegionError,
    UnsupportedCurrencyError,
    UnsupportedTaxCodeError,
    validate_vat_id,
)
from tests.tax.conftest import at, customer, line, reg

WHEN = at("2026-01-10")


@pytest.mark.parametrize(
    ("who", "error"),
    [
        (TaxCustomer(billing_address=None), MissingAddressError),
        (customer(""), MissingAddressError),
        (customer("US"), MissingAddressError),
        (customer("CA", "  "), MissingAddressError),
        (customer("ZZ"), UnknownCountryError),
        (customer("USA", "NY"), UnknownCountryError),
        (customer("US", "XX"), UnknownRegionError),
        (customer("US", "ON"), UnknownRegionError),
        (customer("CA", "NY"), UnknownRegionError),
    ],
    ids=[
        "no-address",
        "no-country",
        "us-no-state",
        "ca-blank-province",
        "zz",
        "alpha3",
        "us-xx",
        "us-on",
        "ca-ny",
    ],
)
def test_address_errors(engine, registrations, who, error):
    with pytest.raises(error):
        engine.quote([line(100, "USD")], who, registrations, WHEN)


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ([], TaxInputError),
        ([line(100, "XYZ")], UnsupportedCurrencyError),
        ([line(100, "eur")], UnsupportedCurrencyError),
        ([line(100, "EUR", "a"), line(100, "USD", "b")], MixedCurrencyError),
        ([line(100, line_id="a"), line(200, line_id="a")], TaxInputError),
        ([TaxableLine("a", 1.5, "EUR")], TaxInputError),  # type: ignore[arg-type]
        ([TaxableLine("a", 100, "EUR", tax_code="physical_goods")], UnsupportedTaxCodeError),
    ],
    ids=[
        "empty",
        "unknown-currency",
        "lowercase-currency",
        "mixed",
        "duplicate-ids",
        "float",
        "tax-code",
    ],
)
def test_line_errors(engine, registrations, lines, error):
    with pytest.raises(error):
        engine.quote(lines, customer("DE"), registrations, WHEN)


def test_naive_datetime_is_refused(engine, registrations):
    with pytest.raises(NaiveDatetimeError):
        engine.quote([line(100)], customer("DE"), registrations, datetime(2026, 1, 10, 12))


def test_date_before_the_tables_coverage_is_an_error(engine, registrations):
    with pytest.raises(RateDataError, match="no rate in force"):
        engine.quote([line(100)], customer("DE"), registrations, at("2019-06-01"))


def test_registered_where_the_table_has_no_rates_is_an_error(engine):
    with pytest.raises(RateDataError, match="no rates there"):
        engine.quote([line(100, "BRL")], customer("BR"), [reg("BR")], WHEN)


def test_validate_vat_id():
    assert validate_vat_id("de 136-695-976") == "DE136695976"
    for bad in ("DE136695977", "XX123", "", "FR"):
        with pytest.raises(InvalidVatIdError):
            validate_vat_id(bad)


def test_every_error_is_a_tax_error():
    for error in (
        MissingAddressError,
        UnknownCountryError,
        UnknownRegionError,
        UnsupportedCurrencyError,
        MixedCurrencyError,
        UnsupportedTaxCodeError,
        InvalidVatIdError,
        NaiveDatetimeError,
        RateDataError,
        TaxConfigError,
    ):
        assert issubclass(error, TaxError)


def test_factory_errors():
    with pytest.raises(TaxConfigError, match="unknown tax engine"):
        make_engine("avalara")
    with pytest.raises(TaxConfigError, match="api_key"):
        make_engine("stripe")


def test_address_region_ignored_where_it_does_not_decide(engine, registrations):
    quote = engine.quote(
        [line(100)], TaxCustomer(Address("de", region="Bayern")), registrations, WHEN
    )
    assert quote.jurisdiction == "DE"
    assert quote.evidence[0].detail == "billing_address.country=DE"
