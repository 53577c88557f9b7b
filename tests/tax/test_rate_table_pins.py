"""Pins on the rate table's parsing, messages and version (mutation survivors).

Equivalent mutant left alone: the files' ``encoding="utf-8"`` replaced by the locale's
default reads the same bytes on every machine Dunwell supports (UTF-8 locales).
"""

from __future__ import annotations

import hashlib
import re
from datetime import date
from importlib import resources

import pytest

from tax import TaxType
from tax.errors import RateDataError
from tax.rates import (
    RateRow,
    SaasTaxability,
    TaxabilityRow,
    parse_rates,
    parse_taxability,
    percent_to_ppm,
    rate_table_from_text,
)

DATA = resources.files("tax") / "data"
HEADER = (DATA / "rates.csv").read_text(encoding="utf-8").splitlines()[0]
SAAS_HEADER = (DATA / "us_saas_taxability.csv").read_text(encoding="utf-8").splitlines()[0]
RATE = "EE,,vat,24,2025-07-01,,https://emta.ee/rates,2026-11-25,raised from 22 %"
SAAS = "TX,taxable,80,2020-01-01,2024-12-31,https://comptroller.texas.gov/,2026-11-25,80 %"


def test_a_rate_row_keeps_every_field() -> None:
    (row,) = parse_rates(f"{HEADER}\n{RATE}\n")
    assert row == RateRow(
        country="EE",
        region="",
        tax_type=TaxType.VAT,
        rate_ppm=240_000,
        valid_from=date(2025, 7, 1),
        valid_to=None,
        source_url="https://emta.ee/rates",
        retrieved_on=date(2026, 11, 25),
        note="raised from 22 %",
    )


def test_a_taxability_row_keeps_every_field() -> None:
    (row,) = parse_taxability(f"{SAAS_HEADER}\n{SAAS}\n")
    assert row == TaxabilityRow(
        state="TX",
        taxability=SaasTaxability.TAXABLE,
        taxable_ppm=800_000,
        valid_from=date(2020, 1, 1),
        valid_to=date(2024, 12, 31),
        source_url="https://comptroller.texas.gov/",
        note="80 %",
    )


def test_a_taxability_row_without_a_start_is_named_by_file_and_line() -> None:
    rows = f"{SAAS_HEADER}\n{SAAS}\nNY,not_taxable,0,,,https://x,2026-11-25,\n"
    with pytest.raises(RateDataError, match=r"^us_saas_taxability.csv line 3: valid_from"):
        parse_taxability(rows)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "rate 'abc' is not a decimal"),
        ("-1", "rate '-1' % is not a whole number of millionths"),
        ("0.00001", "rate '0.00001' % is not a whole number of millionths"),
    ],
)
def test_percent_messages_quote_the_text(text: str, message: str) -> None:
    with pytest.raises(RateDataError, match=f"^{re.escape(message)}$"):
        percent_to_ppm(text)


def test_row_messages_name_the_file_line_and_value() -> None:
    bad = "DE,,stamp_duty,1,2020-01-01,,https://x,2026-01-01,"
    with pytest.raises(RateDataError, match=r"^rates.csv line 3: unknown tax type 'stamp_duty'$"):
        parse_rates(f"{HEADER}\n{RATE}\n{bad}\n")
    overlap = (
        "DE,,vat,19,2020-01-01,,https://x,2026-01-01,\nDE,,vat,16,2021-01-01,,https://x,2026-01-01,"
    )
    with pytest.raises(RateDataError, match=r"^overlapping vat periods for \('DE', ''\)$"):
        rate_table_from_text(f"{HEADER}\n{overlap}\n", f"{SAAS_HEADER}\n")


def test_the_version_is_a_length_prefixed_sha256_of_both_files() -> None:
    rates, saas = f"{HEADER}\n{RATE}\n", f"{SAAS_HEADER}\n{SAAS}\n"
    digest = hashlib.sha256()
    for part in (rates, saas):
        digest.update(len(part.encode()).to_bytes(8, "big") + part.encode())
    version = rate_table_from_text(rates, saas).version
    assert version == "sha256:" + digest.hexdigest()[:16]
    assert re.fullmatch(r"sha256:[0-9a-f]{16}", version)
    # The length prefixes matter: a plain hash of the joined files is another version.
    assert version != "sha256:" + hashlib.sha256((rates + saas).encode()).hexdigest()[:16]
