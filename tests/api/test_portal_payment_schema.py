"""The payment-confirmation routes and the subscription read in the OpenAPI document, and
what the subscription read reveals of the card and of a pending action (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from api.app import create_app
from api.services import subscriptions as service
from billing.catalog import load_catalog
from dunwell.settings import Settings
from stores.customers import SubscriptionRecord
from tests.api.test_openapi import refusals
from workflows.subscription.state import PaymentMethodInfo, PendingAction, SubscriptionState

ERROR = {"$ref": "#/components/schemas/ErrorResponse"}
NOW = datetime(2027, 6, 1, tzinfo=UTC)


def _document() -> dict[str, Any]:
    document: dict[str, Any] = create_app(Settings(env="test")).openapi()
    return document


def test_the_confirmation_routes_are_documented_with_their_errors() -> None:
    document = _document()
    schemes = document["components"]["securitySchemes"]
    expected = {
        "/v1/portal/subscriptions/{subscription_id}/confirm-payment": (
            {"400", "401", "404", "409", "422", "502", "503"},
            "PaymentConfirmationOut",
        ),
        "/v1/portal/subscriptions/{subscription_id}/confirm-payment/complete": (
            {"400", "401", "404", "409", "422", "503"},
            "PaymentCompletedOut",
        ),
    }
    for path, (errors, model) in expected.items():
        operation = document["paths"][path]["post"]
        responses = operation["responses"]
        documented = {c for c in responses if not c.startswith("2")}
        assert documented == errors | refusals(operation), path
        for code in errors:
            assert responses[code]["content"]["application/json"]["schema"] == ERROR
        assert responses["200"]["content"]["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{model}"
        }
        assert operation["description"].strip() and "\n" not in operation["description"]
        (requirement,) = operation["security"]
        (scheme,) = requirement
        assert schemes[scheme]["description"].lower() == "portal session token"


def test_the_complete_body_takes_a_payment_intent_id_only() -> None:
    schemas = _document()["components"]["schemas"]
    body = schemas["ConfirmPaymentIn"]
    assert body["additionalProperties"] is False
    assert body["required"] == ["payment_intent_id"]
    assert body["properties"]["payment_intent_id"]["pattern"].startswith("^pi_")
    confirmation = schemas["PaymentConfirmationOut"]["properties"]
    assert set(confirmation) == {
        "outcome",
        "payment_intent_id",
        "client_secret",
        "challenge",
        "exemption",
        "reason",
        "publishable_key",
        "stripe_js_url",
        "subscription",
    }


def test_the_subscription_read_documents_card_and_pending_action() -> None:
    schemas = _document()["components"]["schemas"]
    subscription = schemas["SubscriptionOut"]
    assert {"payment_method", "pending_action"} <= set(subscription["required"])
    assert set(schemas["CardOut"]["properties"]) == {"brand", "last4", "exp_month", "exp_year"}
    assert set(schemas["PendingActionOut"]["properties"]) == {
        "status",
        "invoice_id",
        "amount",
        "currency",
        "deadline",
    }
    assert schemas["PendingActionOut"]["properties"]["status"]["enum"] == [
        "waiting",
        "confirmed",
        "expired",
    ]


def _record() -> SubscriptionRecord:
    return SubscriptionRecord(
        id="sub_x",
        customer_id="cust_x",
        plan_id="pro-monthly",
        currency="EUR",
        workflow_id="subscription-sub_x",
        created_at=NOW,
    )


def test_the_card_is_shown_by_brand_last4_and_expiry_only() -> None:
    state = SubscriptionState(subscription_id="sub_x", plan_id="pro-monthly", currency="EUR")
    state.payment_method_id = "pm_card"
    state.payment_method = PaymentMethodInfo("pm_card", "visa", "4242", 12, 2030, "fp_secret")
    out = service.subscription_out(_record(), state, load_catalog())
    assert out.payment_method is not None
    assert out.payment_method.model_dump() == {
        "brand": "visa",
        "last4": "4242",
        "exp_month": 12,
        "exp_year": 2030,
    }
    assert "fp_secret" not in out.model_dump_json()
    assert out.pending_action is None

    # Details not read yet, or of another card than the default: nothing to show.
    state.payment_method = PaymentMethodInfo("pm_card")
    assert service.subscription_out(_record(), state, load_catalog()).payment_method is None
    state.payment_method = PaymentMethodInfo("pm_old", "visa", "1111", 1, 2029)
    assert service.subscription_out(_record(), state, load_catalog()).payment_method is None


def test_the_pending_action_is_shown_without_its_intent_details() -> None:
    state = SubscriptionState(subscription_id="sub_x", plan_id="pro-monthly", currency="EUR")
    state.pending_action = PendingAction(
        invoice_id="inv_1",
        payment_intent_id="pi_hidden",
        amount=5950,
        currency="EUR",
        requested_at=NOW,
        deadline=NOW + timedelta(hours=72),
        exemption="low_value",
        challenge_reason="why",
    )
    out = service.subscription_out(_record(), state, load_catalog())
    assert out.pending_action is not None
    assert out.pending_action.model_dump() == {
        "status": "waiting",
        "invoice_id": "inv_1",
        "amount": 5950,
        "currency": "EUR",
        "deadline": NOW + timedelta(hours=72),
    }
