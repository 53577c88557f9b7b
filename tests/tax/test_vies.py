"""ViesRestChecker against a local server playing VIES REST answers (VIES itself is
outside the system and not reachable from tests)."""

from __future__ import annotations

import pytest

from activities.vies import ViesRestChecker
from tax import BuiltinTaxEngine, TaxProviderError, TaxReason
from tests.tax.conftest import at, customer, line, reg

CHECK = "/rest-api/check-vat-number"

VALID = {
    "countryCode": "DE",
    "vatNumber": "136695976",
    "requestDate": "2026-01-10T12:00:00.000Z",
    "valid": True,
    "requestIdentifier": "WAPIAAAAZ1b2c3d4",
    "name": "---",
    "address": "---",
    "traderName": "",
    "traderAddress": "",
}


def checker(server) -> ViesRestChecker:
    return ViesRestChecker(base_url=f"{server.base}/rest-api", requester_vat_id="IE6388047V")


def test_valid_answer_is_proof_on_the_quote(recorded_stripe):
    recorded_stripe.answer("POST", CHECK, VALID)
    engine = BuiltinTaxEngine(seller_country="IE", vat_checker=checker(recorded_stripe))
    quote = engine.quote(
        [line(10_000)], customer("DE", vat_id="DE 136 695 976"), [reg("EU")], at("2026-01-10")
    )
    assert quote.lines[0].components[0].reason is TaxReason.REVERSE_CHARGE
    assert quote.vat_check is not None
    assert quote.vat_check.consultation_number == "WAPIAAAAZ1b2c3d4"
    assert any("WAPIAAAAZ1b2c3d4" in e.detail for e in quote.evidence if e.kind == "vies")
    assert recorded_stripe.requests[0][2] == {
        "countryCode": "DE",
        "vatNumber": "136695976",
        "requesterMemberStateCode": "IE",
        "requesterNumber": "6388047V",
    }


def test_invalid_answer_charges_vat(recorded_stripe):
    recorded_stripe.answer("POST", CHECK, {**VALID, "valid": False, "requestIdentifier": "WAPI2"})
    engine = BuiltinTaxEngine(seller_country="IE", vat_checker=checker(recorded_stripe))
    quote = engine.quote(
        [line(10_000)], customer("DE", vat_id="DE136695976"), [reg("EU")], at("2026-01-10")
    )
    assert quote.lines[0].components[0].reason is TaxReason.STANDARD_RATED
    assert quote.vat_check is not None and quote.vat_check.valid is False


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (
            200,
            {"actionSucceed": False, "errorWrappers": [{"error": "MS_UNAVAILABLE"}]},
            "MS_UNAVAILABLE",
        ),
        (
            200,
            {**VALID, "valid": False, "userError": "MS_MAX_CONCURRENT_REQ"},
            "MS_MAX_CONCURRENT_REQ",
        ),
        (500, {"errorWrappers": [{"error": "SERVICE_UNAVAILABLE"}]}, "SERVICE_UNAVAILABLE"),
    ],
)
def test_no_answer_is_a_provider_error(recorded_stripe, status, body, code):
    recorded_stripe.answer("POST", CHECK, body, status=status)
    with pytest.raises(TaxProviderError) as caught:
        checker(recorded_stripe).check("DE136695976", at("2026-01-10"))
    assert caught.value.code == code


def test_unreachable_is_a_provider_error():
    unreachable = ViesRestChecker(base_url="http://127.0.0.1:9", timeout_s=1)
    with pytest.raises(TaxProviderError):
        unreachable.check("DE136695976", at("2026-01-10"))
