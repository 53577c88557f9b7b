"""PAN guard: detection, field names, log redaction."""

from __future__ import annotations

import io
import json
import logging

import pytest

from billing.pan import (
    MAX_JSON_DEPTH,
    REDACTED,
    JsonTooDeep,
    RedactingFilter,
    ScanBudget,
    ScanBudgetExceeded,
    card_data_in_value,
    find_pan_like,
    luhn_valid,
    redact,
    suspicious_field_names,
)

# Published test numbers (Stripe, card networks) and their Luhn-broken neighbours.
VISA = "4242424242424242"
AMEX = "378282246310005"
MC_2_SERIES = "2223003122003222"
VISA_13 = "4222222222222"
VISA_19 = "4000000000000000006"


def broken(number: str) -> str:
    last = (int(number[-1]) + 1) % 10
    return number[:-1] + str(last)


@pytest.mark.parametrize("number", [VISA, AMEX, MC_2_SERIES, VISA_13, VISA_19])
def test_luhn_valid_numbers_are_found(number):
    assert luhn_valid(number)
    assert find_pan_like(number)
    assert find_pan_like(f"my card is {number}, thanks")
    assert find_pan_like(json.dumps({"note": number}))


@pytest.mark.parametrize("number", [VISA, AMEX, MC_2_SERIES, VISA_13, VISA_19])
def test_one_wrong_digit_is_not_a_pan(number):
    assert not luhn_valid(broken(number))
    assert not find_pan_like(broken(number))


@pytest.mark.parametrize(
    "typed",
    [
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "3782 822463 10005",
        "3782-822463-10005",
        "card: 4242 4242 4242 4242.",
        "qty 2 4242424242424242",  # a number right before the card does not hide it
        "4242  4242  4242  4242",
        "4242.4242.4242.4242",
        "4242/4242/4242/4242",
        "4242\t4242\t4242\t4242",
        "\uff14\uff12\uff14\uff12 \uff14\uff12\uff14\uff12 \uff14\uff12\uff14\uff12 \uff14\uff12\uff14\uff12",
        "4242\u20134242\u20134242\u20134242",  # en dashes
        "4242\u00a04242\u00a04242\u00a04242",  # no-break spaces
        "\u0664\u0662\u0664\u0662" * 4,  # Arabic-Indic digits
    ],
)
def test_grouped_numbers_are_found(typed):
    assert find_pan_like(typed)
    assert REDACTED in redact(typed)


@pytest.mark.parametrize(
    "text",
    [
        "4242 - 4242 - 4242 - 4242",  # a three-character separator is not how cards are typed
        "4242-4242/4242-4242",  # mixed separators
        "4242   4242   4242   4242",  # three spaces
    ],
)
def test_separators_outside_the_typed_forms_split_the_groups(text):
    assert not find_pan_like(text)


def test_a_megabyte_of_digit_groups_ends_in_the_budget_not_in_seconds():
    hostile = "1 " * (512 * 1024)
    with pytest.raises(ScanBudgetExceeded):
        find_pan_like(hostile, ScanBudget())
    # The same groups in an ordinary amount are checked in full.
    assert not find_pan_like("1 " * 40, ScanBudget())
    assert find_pan_like("1 " * 40 + VISA, ScanBudget())


def test_one_budget_is_shared_by_every_scan_of_a_request():
    budget = ScanBudget(100)
    find_pan_like("4242 4242 4242 4243", budget)  # 16 digits x 4 groups
    assert budget.remaining == 100 - 64
    with pytest.raises(ScanBudgetExceeded):
        find_pan_like("4242 4242 4242 4243", budget)


def test_json_values_are_read_as_parsed():
    budget = ScanBudget()
    assert card_data_in_value({"amount": int(VISA)}, budget) == "card_number"
    assert card_data_in_value({"n": [1, 2, {"deep": [VISA]}]}, budget) == "card_number"
    assert card_data_in_value({VISA: "key"}, budget) == "card_number"
    assert card_data_in_value({"card_cvc2": "x"}, budget) == "card_field"
    # A float is a measurement, whatever digits its text has.
    assert card_data_in_value({"x": 5.6957321794073064e16}, budget) is None
    assert card_data_in_value({"x": True, "y": None, "z": -12}, budget) is None


def test_nesting_deeper_than_the_limit_is_refused_not_recursed():
    value: object = "leaf"
    for _ in range(MAX_JSON_DEPTH + 1):
        value = [value]
    with pytest.raises(JsonTooDeep):
        card_data_in_value(value, ScanBudget())
    shallow: object = "leaf"
    for _ in range(MAX_JSON_DEPTH - 1):
        shallow = {"a": shallow}
    assert card_data_in_value(shallow, ScanBudget()) is None


@pytest.mark.parametrize(
    "text",
    [
        "424242424242",  # 12 digits
        "42424242424242424242",  # 20 digits, contiguous: an identifier
        "4242 4242 4242 4243",  # Luhn fails
        "4242-4242 4242-4242",  # mixed separators are not one typed number
        "invoice 2026-000123 amount 4900",
        "",
    ],
)
def test_non_pans_are_not_flagged(text):
    assert not find_pan_like(text)


def test_twelve_and_twenty_digit_runs_even_when_luhn_valid():
    twelve = next(f"{n:012d}" for n in range(10**11, 10**12) if luhn_valid(f"{n:012d}"))
    twenty = next(f"{n:020d}" for n in range(10**19, 10**20) if luhn_valid(f"{n:020d}"))
    assert not find_pan_like(twelve)
    assert not find_pan_like(twenty)
    assert find_pan_like(twenty[:16]) == luhn_valid(twenty[:16])


def test_redact_replaces_whole_numbers_and_cvc_values():
    text = f"pay {VISA} and 4242 4242 4242 4242 exp 12/31 cvc=123 cvv: 987 security_code=555"
    out = redact(text)
    assert VISA not in out and "4242" not in out
    assert "123" not in out and "987" not in out and "555" not in out
    assert out.count(REDACTED) == 5
    assert "exp 12/31" in out


def test_redact_leaves_clean_text_alone():
    text = "charge pi_3Abc for 2500 EUR, attempt 2 of 8"
    assert redact(text) == text


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"card_number": "x"}, ["card_number"]),
        ({"cardNumber": "x", "cvc": "1"}, ["cardNumber", "cvc"]),
        ({"payment": {"card": {"number": "x", "exp_month": 1}}}, ["payment.card.number"]),
        ({"number": "x", "exp_year": 2030, "CVV2": "1"}, ["number", "CVV2"]),
        (
            {"items": [{"pan": "x"}, {"security-code": "1"}]},
            ["items[0].pan", "items[1].security-code"],
        ),
        ({"invoice": {"number": "INV-1"}}, []),  # "number" outside a card object is fine
        ({"payment_method_id": "pm_123", "last4": "4242", "exp_month": 12}, []),
        ([{"cvc2": 1}], ["[0].cvc2"]),
        ({"card_cvc2": "1", "cvn": "1", "card-cvv2": "1"}, ["card_cvc2", "cvn", "card-cvv2"]),
        ({"\uff43\uff56\uff43": "1"}, ["\uff43\uff56\uff43"]),  # full-width "cvc"
        ({"checks": {"cvc_check": "pass"}}, []),  # the gateway's check result, not a code
        ("plain", []),
    ],
)
def test_suspicious_field_names(payload, expected):
    assert suspicious_field_names(payload) == expected


@pytest.fixture
def redacting_logger():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("dunwell.test.pan")
    logger.propagate = False
    logger.addHandler(handler)
    logger.addFilter(RedactingFilter())
    logger.setLevel(logging.INFO)
    yield logger, stream
    logger.removeHandler(handler)
    logger.filters.clear()


def test_filter_redacts_the_message(redacting_logger):
    logger, stream = redacting_logger
    logger.info(f"body card={VISA} cvc=123")
    assert VISA not in stream.getvalue() and "123" not in stream.getvalue()
    assert REDACTED in stream.getvalue()


def test_filter_redacts_args_of_any_type(redacting_logger):
    logger, stream = redacting_logger
    logger.info("card %s as int %d in %r", "4242 4242 4242 4242", int(VISA), {"cvc": "321"})
    out = stream.getvalue()
    assert "4242" not in out and "321" not in out
    assert out.count(REDACTED) == 3


def test_filter_redacts_exception_text(redacting_logger):
    logger, stream = redacting_logger
    try:
        raise ValueError(f"bad card {VISA}")
    except ValueError:
        logger.exception("failed")
    assert VISA not in stream.getvalue() and "ValueError" in stream.getvalue()


def test_filter_keeps_clean_records_untouched():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "paid %s", ("pi_1",), None)
    assert RedactingFilter().filter(record)
    assert (record.msg, record.args) == ("paid %s", ("pi_1",))
