"""Pins on the network-rule table's loader and the block check (mutation survivors).

Equivalent mutants left alone: ``(network_decline_code or "")`` with another default
string is equivalent while no brand lists that string as a decline code.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib.resources import files

import pytest

from billing.dunning.network_rules import CardAttempt, forbids_retry, network_rules

AT = datetime(2026, 3, 2, 9, tzinfo=UTC)


@pytest.mark.parametrize("code", ["R0", "r0", "R1", "r3"])
def test_a_category_one_code_blocks_the_card_in_any_letter_case(code: str) -> None:
    visa = network_rules().for_brand("visa")
    assert forbids_retry(visa, CardAttempt(AT, network_decline_code=code))


def test_an_attempt_without_codes_blocks_nothing() -> None:
    for brand in ("visa", "mastercard", "default"):
        assert not forbids_retry(network_rules().for_brand(brand), CardAttempt(AT))


def test_a_mastercard_stop_advice_blocks_without_a_decline_code() -> None:
    mastercard = network_rules().for_brand("MasterCard")
    assert forbids_retry(mastercard, CardAttempt(AT, network_advice_code="03"))
    assert not forbids_retry(mastercard, CardAttempt(AT, network_advice_code="24"))


def test_each_brand_keeps_its_name_rules_and_source_from_the_data() -> None:
    raw = json.loads(
        files("billing.dunning").joinpath("data/network_rules.json").read_text("utf-8")
    )
    rules = network_rules()
    assert set(rules.brands) == set(raw["brands"])
    for brand, data in raw["brands"].items():
        loaded = rules.brands[brand]
        assert loaded.brand == brand
        assert loaded.source == data["source"]
        assert [cap.rule for cap in loaded.rolling_caps] == [
            cap["rule"] for cap in data["rolling_caps"]
        ]
        assert [cap.max_attempts for cap in loaded.rolling_caps] == [
            cap["max_attempts"] for cap in data["rolling_caps"]
        ]
