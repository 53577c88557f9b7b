"""The Stripe adapter reading recorded Stripe payloads through the real SDK.

Issuer decline codes, network advice codes, server errors and timeouts cannot be
produced by localstripe, so a local server answers with payloads recorded in the shape
of Stripe's documented error object (tests/fixtures/stripe/).
"""

from __future__ import annotations

import time

import pytest

from activities.gateway_errors import to_application_error
from billing.declines import CUSTOMER_MESSAGES, CustomerMessage, DeclineFamily
from billing.gateway import (
    CardDeclined,
    ChargeDeclined,
    GatewayUnavailable,
    IdempotencyConflict,
    InfrastructureFailure,
    InvalidGatewayRequest,
    PaymentIntentStatus,
    ThreeDSecureRequest,
    decline_from_details,
    infrastructure_failure,
)
from billing.money import Money

PI_PATH = "/v1/payment_intents"


async def charge(gateway, key="inv_9:attempt:1"):
    return await gateway.charge_off_session(
        customer_id="cus_RecordedCustomer",
        payment_method_id="pm_1RecVis0002",
        amount=Money(2500, "EUR"),
        idempotency_key=key,
    )


DECLINES = [
    # recording, family, reason, customer message
    ("decline_insufficient_funds", DeclineFamily.SOFT, "insufficient_funds",
     CustomerMessage.ADD_FUNDS_OR_OTHER_METHOD),
    ("decline_expired_card", DeclineFamily.FIX_DATA, "expired_card", CustomerMessage.UPDATE_CARD),
    ("decline_incorrect_cvc", DeclineFamily.FIX_DATA, "incorrect_cvc",
     CustomerMessage.REENTER_CARD_DETAILS),
    ("decline_lost_card", DeclineFamily.HARD, "visa_41", CustomerMessage.GENERIC_DECLINE),
    ("decline_stolen_card", DeclineFamily.HARD, "visa_43", CustomerMessage.GENERIC_DECLINE),
    ("decline_do_not_honor", DeclineFamily.SOFT, "do_not_honor", CustomerMessage.CONTACT_ISSUER),
    ("decline_authentication_required", DeclineFamily.AUTHENTICATION_REQUIRED, "visa_1A",
     CustomerMessage.CONFIRM_PAYMENT),
    ("decline_processing_error", DeclineFamily.GATEWAY_UNAVAILABLE, "processing_error",
     CustomerMessage.TEMPORARY_PROBLEM),
    ("decline_mastercard_mac_03", DeclineFamily.HARD, "mastercard_mac_03",
     CustomerMessage.USE_ANOTHER_METHOD),
    ("decline_mastercard_mac_24", DeclineFamily.SOFT, "insufficient_funds",
     CustomerMessage.ADD_FUNDS_OR_OTHER_METHOD),
    ("decline_visa_ndc_14", DeclineFamily.HARD, "visa_14", CustomerMessage.USE_ANOTHER_METHOD),
]  # fmt: skip


@pytest.mark.parametrize(("recording", "family", "reason", "message"), DECLINES)
async def test_charge_decline_is_classified_from_structured_fields(
    recorded, recorded_gateway, recording, family, reason, message
):
    recorded.reply("POST", PI_PATH, recording)
    outcome = await charge(recorded_gateway)
    assert isinstance(outcome, ChargeDeclined)
    assert (outcome.classification.family, outcome.classification.reason) == (family, reason)
    assert outcome.classification.message is message
    assert outcome.payment_intent_id and outcome.payment_intent_id.startswith("pi_3Recorded")
    assert outcome.charge_id and outcome.charge_id.startswith("ch_3Recorded")
    assert outcome.decline.card_brand in ("visa", "mastercard")
    # Outcomes go into workflow history: none carries the intent's client secret, not
    # even the issuer's demand for authentication (the portal reads it from the gateway).
    assert outcome.client_secret is None
    # The intent was named in the error, so no further request was needed.
    assert [r.path for r in recorded.received] == [PI_PATH]


@pytest.mark.parametrize("recording", ["decline_lost_card", "decline_stolen_card"])
async def test_lost_and_stolen_cards_get_the_generic_message(recorded, recorded_gateway, recording):
    recorded.reply("POST", PI_PATH, recording)
    outcome = await charge(recorded_gateway)
    text = CUSTOMER_MESSAGES[outcome.classification.message].lower()
    for revealing in ("lost", "stolen", "fraud", "pick"):
        assert revealing not in text
    assert not outcome.classification.retryable


async def test_network_codes_are_read_from_the_error(recorded, recorded_gateway):
    recorded.reply("POST", PI_PATH, "decline_mastercard_mac_03")
    outcome = await charge(recorded_gateway)
    assert outcome.decline.network_advice_code == "03"
    assert outcome.decline.card_brand == "mastercard"
    assert outcome.decline.decline_code == "generic_decline"


async def test_decline_on_a_non_charge_write_raises_card_declined(recorded, recorded_gateway):
    recorded.reply("POST", "/v1/payment_methods/pm_x/attach", "decline_lost_card")
    recorded.reply("GET", "/v1/payment_methods/pm_x", "payment_method_unattached")
    with pytest.raises(CardDeclined) as caught:
        await recorded_gateway.attach_payment_method(
            payment_method_id="pm_x", customer_id="cus_RecordedCustomer", idempotency_key="a:1"
        )
    app_error = to_application_error(caught.value)
    assert app_error.type == "CardDeclined" and app_error.non_retryable
    classification, decline = decline_from_details(app_error.details[0])
    assert classification == caught.value.classification
    assert decline == caught.value.decline
    assert classification.message is CustomerMessage.GENERIC_DECLINE
    assert "lost" not in str(app_error).lower()


INFRASTRUCTURE = [
    ("server_error_500", InfrastructureFailure.SERVER_ERROR),
    ("rate_limited_429", InfrastructureFailure.RATE_LIMIT),
    ("rate_limited_429_should_retry", InfrastructureFailure.RATE_LIMIT),
    ("authentication_401", InfrastructureFailure.AUTHENTICATION),
    ("permission_403", InfrastructureFailure.PERMISSION),
]


@pytest.mark.parametrize(("recording", "failure"), INFRASTRUCTURE)
async def test_infrastructure_failures_are_retryable_not_declines(
    recorded, recorded_gateway, recording, failure
):
    recorded.reply("POST", PI_PATH, recording)
    with pytest.raises(GatewayUnavailable) as caught:
        await charge(recorded_gateway)
    assert caught.value.failure is failure
    app_error = to_application_error(caught.value)
    assert app_error.type == "GatewayUnavailable" and not app_error.non_retryable
    assert infrastructure_failure(app_error.type, app_error.details[0]) is failure
    assert len(recorded.received) == 1  # no hidden SDK retries


async def test_rate_limit_the_gateway_says_not_to_retry_is_not_retried(recorded, recorded_gateway):
    recorded.reply("POST", PI_PATH, "rate_limited_429_should_not_retry")
    with pytest.raises(InvalidGatewayRequest) as caught:
        await charge(recorded_gateway)
    app_error = to_application_error(caught.value)
    assert app_error.type == "InvalidGatewayRequest" and app_error.non_retryable
    assert infrastructure_failure(app_error.type, None) is None


async def test_reads_with_a_refused_key_are_infrastructure_failures(recorded, recorded_gateway):
    recorded.reply("GET", "/v1/payment_intents/pi_x", "authentication_401")
    with pytest.raises(GatewayUnavailable) as caught:
        await recorded_gateway.retrieve_payment_intent("pi_x")
    assert caught.value.failure is InfrastructureFailure.AUTHENTICATION


async def test_timeout_is_retryable(recorded, recorded_gateway):
    recorded.reply("POST", PI_PATH, "decline_insufficient_funds", delay=5)
    started = time.monotonic()
    with pytest.raises(GatewayUnavailable) as caught:
        await charge(recorded_gateway)
    assert caught.value.failure is InfrastructureFailure.CONNECTION
    assert time.monotonic() - started < 4  # the client gave up; it did not wait for the reply


async def test_invalid_request_is_not_retryable(recorded, recorded_gateway):
    recorded.reply("POST", PI_PATH, "invalid_request_400")
    with pytest.raises(InvalidGatewayRequest) as caught:
        await charge(recorded_gateway)
    assert not isinstance(caught.value, IdempotencyConflict)
    assert caught.value.code == "parameter_invalid_integer"
    app_error = to_application_error(caught.value)
    assert app_error.type == "InvalidGatewayRequest" and app_error.non_retryable


async def test_idempotency_error_is_a_conflict(recorded, recorded_gateway):
    recorded.reply("POST", PI_PATH, "idempotency_error_400")
    with pytest.raises(IdempotencyConflict) as caught:
        await charge(recorded_gateway)
    assert to_application_error(caught.value).type == "IdempotencyConflict"


async def test_charge_request_carries_key_and_off_session_params(recorded, recorded_gateway):
    recorded.reply("POST", PI_PATH, "decline_do_not_honor")
    await charge(recorded_gateway, key="inv_77:attempt:3")
    (sent,) = recorded.received
    assert sent.headers["Idempotency-Key"] == "inv_77:attempt:3"
    assert sent.headers["Stripe-Version"] == "2026-10-28.endive"
    assert sent.form["amount"] == "2500" and sent.form["currency"] == "eur"
    assert sent.form["off_session"] == "true" and sent.form["confirm"] == "true"


async def test_setup_intent_requests_a_challenge_when_asked(recorded, recorded_gateway):
    recorded.reply("POST", "/v1/setup_intents", "setup_intent_created")
    seti = await recorded_gateway.create_setup_intent(
        customer_id="cus_RecordedCustomer",
        idempotency_key="pm_update:1",
        request_three_d_secure=ThreeDSecureRequest.CHALLENGE,
    )
    assert seti.id == "seti_1RecordedSetup"
    (sent,) = recorded.received
    assert sent.form["payment_method_options[card][request_three_d_secure]"] == "challenge"
    assert sent.form["usage"] == "off_session"
    assert sent.headers["Idempotency-Key"] == "pm_update:1"


async def test_retrieved_intent_exposes_its_last_error(recorded, recorded_gateway):
    recorded.reply("GET", "/v1/payment_intents/pi_x", "payment_intent_declined_200")
    snapshot = await recorded_gateway.retrieve_payment_intent("pi_x")
    assert snapshot.status is PaymentIntentStatus.REQUIRES_PAYMENT_METHOD
    assert snapshot.last_error is not None
    assert snapshot.last_error.decline_code == "insufficient_funds"
    assert snapshot.amount == Money(2500, "EUR")
