"""The packaged rate data: complete, sourced, effective-dated, versioned by content."""

from __future__ import annotations

from datetime import date
from importlib import resources

import pytest

from tax import TaxType, load_rate_table
from tax.errors import RateDataError
from tax.places import CA_PROVINCES, EU_MEMBER_STATES, US_STATES
from tax.rates import SaasTaxability, parse_rates, percent_to_ppm, rate_table_from_text

DATA = resources.files("tax") / "data"
RATES = (DATA / "rates.csv").read_text()
US_SAAS = (DATA / "us_saas_taxability.csv").read_text()
HEADER = RATES.splitlines()[0]


def test_version_is_a_content_hash():
    table = load_rate_table()
    assert table.version == rate_table_from_text(RATES, US_SAAS).version
    changed = RATES.replace("DE,,vat,19,2021-01-01", "DE,,vat,19.5,2021-01-01")
    assert changed != RATES
    assert rate_table_from_text(changed, US_SAAS).version != table.version


@pytest.mark.parametrize("day", [date(2020, 1, 1), date(2023, 6, 1), date(2026, 11, 25)])
def test_every_eu_member_state_has_one_vat_rate_every_day(day):
    table = load_rate_table()
    for country in EU_MEMBER_STATES:
        rows = table.rates_in_force(country, "", day)
        assert [r.tax_type for r in rows] == [TaxType.VAT], country


def test_every_canadian_province_has_gst_or_hst():
    table = load_rate_table()
    for province in CA_PROVINCES:
        types = {r.tax_type for r in table.rates_in_force("CA", province, date(2026, 1, 1))}
        assert len(types & {TaxType.GST, TaxType.HST}) == 1, province


def test_every_us_state_has_saas_taxability_and_taxable_ones_a_rate():
    table = load_rate_table()
    for day in (date(2020, 1, 1), date(2026, 11, 25)):
        for state in US_STATES:
            row = table.us_saas_taxability(state, day)
            assert row is not None, state
            rates = table.rates_in_force("US", state, day)
            if row.taxability is SaasTaxability.TAXABLE:
                assert len(rates) == 1, state


def test_every_row_is_sourced():
    for row in parse_rates(RATES):
        assert row.source_url.startswith("https://"), row
        assert row.retrieved_on <= date(2026, 11, 25)
        assert row.valid_to is None or row.valid_to >= row.valid_from


def test_local_rates_out_of_scope_is_said_in_the_data():
    assert all(
        "local" in r.note
        for r in parse_rates(RATES)
        if r.country == "US" and r.region not in {"DC", "LA", "NM", "SD", "MD"}
    )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("DE,,vat,19.00000001,2020-01-01,,https://x,2026-01-01,", "millionths"),
        ("DE,,vat,abc,2020-01-01,,https://x,2026-01-01,", "not a decimal"),
        ("DE,,vat,-1,2020-01-01,,https://x,2026-01-01,", "millionths"),
        ("DE,,stamp_duty,1,2020-01-01,,https://x,2026-01-01,", "unknown tax type"),
        ("DE,,vat,19,,,https://x,2026-01-01,", "valid_from"),
    ],
)
def test_malformed_rows_are_refused(row, message):
    with pytest.raises(RateDataError, match=message):
        rate_table_from_text(f"{HEADER}\n{row}\n", US_SAAS)


def test_overlapping_periods_are_refused():
    rows = "DE,,vat,19,2020-01-01,2021-01-31,https://x,2026-01-01,\nDE,,vat,16,2021-01-01,,https://x,2026-01-01,"
    with pytest.raises(RateDataError, match="overlapping"):
        rate_table_from_text(f"{HEADER}\n{rows}\n", US_SAAS)


def test_two_rates_in_force_on_the_changeover_day_are_refused():
    # valid_to is inclusive: a rate ending on the day its successor starts overlaps it.
    rows = "DE,,vat,19,2020-01-01,2021-01-01,https://x,2026-01-01,\nDE,,vat,16,2021-01-01,,https://x,2026-01-01,"
    with pytest.raises(RateDataError, match="overlapping"):
        rate_table_from_text(f"{HEADER}\n{rows}\n", US_SAAS)


def test_a_rate_ending_the_day_before_its_successor_is_accepted():
    rows = "DE,,vat,19,2020-01-01,2020-12-31,https://x,2026-01-01,\nDE,,vat,16,2021-01-01,,https://x,2026-01-01,"
    table = rate_table_from_text(f"{HEADER}\n{rows}\n", US_SAAS)
    assert [r.rate_ppm for r in table.rates_in_force("DE", "", date(2020, 12, 31))] == [190_000]
    assert [r.rate_ppm for r in table.rates_in_force("DE", "", date(2021, 1, 1))] == [160_000]


SAAS_HEADER = US_SAAS.splitlines()[0]
# Equivalent mutant: dropping `if region else None` in rates_in_force; a national
# lookup is then made twice, with the same rows.


def small_table(rates: str, saas: str = ""):
    return rate_table_from_text(f"{HEADER}\n{rates}\n", f"{SAAS_HEADER}\n{saas}\n")


def test_a_region_without_rows_of_its_own_falls_back_to_the_national_rows():
    table = small_table(
        "CA,,gst,5,2020-01-01,,https://x,2026-01-01,\nCA,BC,pst,7,2020-01-01,,https://x,2026-01-01,"
    )
    day = date(2026, 1, 1)
    assert [(r.region, r.rate_ppm) for r in table.rates_in_force("CA", "ON", day)] == [("", 50_000)]
    assert [(r.region, r.rate_ppm) for r in table.rates_in_force("CA", "BC", day)] == [
        ("BC", 70_000)
    ]
    assert [r.region for r in table.rates_in_force("CA", "", day)] == [""]
    assert table.rates_in_force("FR", "", day) == []
    assert table.rates_in_force("CA", "", date(2019, 12, 31)) == []
    assert [r.region for r in table.rows_for("CA", "BC")] == ["BC"]
    assert table.rows_for("CA", "ON") == []
    assert table.covers_country("CA") and not table.covers_country("FR")


def test_us_saas_taxability_is_effective_dated_with_an_inclusive_end():
    table = small_table(
        "US,TX,sales_tax,6.25,2020-01-01,,https://x,2026-01-01,",
        "TX,taxable,80,2020-01-01,2024-12-31,https://x,2026-01-01,\n"
        "TX,not_taxable,0,2025-01-01,,https://x,2026-01-01,",
    )
    ended = table.us_saas_taxability("TX", date(2024, 12, 31))
    assert ended is not None
    assert (ended.taxability, ended.taxable_ppm) == (SaasTaxability.TAXABLE, 800_000)
    later = table.us_saas_taxability("TX", date(2025, 1, 1))
    assert later is not None and later.taxability is SaasTaxability.NOT_TAXABLE
    assert table.us_saas_taxability("TX", date(2019, 12, 31)) is None
    assert table.us_saas_taxability("NY", date(2025, 1, 1)) is None


@pytest.mark.parametrize(("text", "ppm"), [("0", 0), ("12.5", 125_000), ("7.0001", 70_001)])
def test_percent_to_ppm_is_exact(text, ppm):
    assert percent_to_ppm(text) == ppm


def test_a_missing_retrieval_day_is_named_as_such():
    with pytest.raises(RateDataError, match=r"^rates.csv line 2: retrieved_on is required$"):
        small_table("DE,,vat,19,2020-01-01,,https://x,,")
    with pytest.raises(RateDataError, match=r"^rates.csv line 3: valid_from is required$"):
        small_table(
            "DE,,vat,19,2020-01-01,2020-12-31,https://x,2026-01-01,\nDE,,vat,16,,,https://x,2026-01-01,"
        )
