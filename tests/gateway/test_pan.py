"""PAN guard: detection, field names, log redaction."""

from __future__ import annotations

import io
import json
import logging

import pytest

from billing.pan import (
    REDACTED,
    RedactingFilter,
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
    ],
)
def test_grouped_numbers_are_found(typed):
    assert find_pan_like(typed)


@pytest.mark.parametrize(
    "text",
    [
        "424242424242",  # 12 digits
        "42424242424242424242",  # 20 digits, contiguous: an identifier
        "4242 4242 4242 4243",  # Luhn fails
        "4242-4242 4242-4242",  # mixed separators are not one typed number
        "4242  4242  4242  4242",  # double spaces split the groups
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
