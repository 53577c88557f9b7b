"""The workflow's run argument decodes to the shape that was sent."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter

from billing.events import SubscriptionStart
from tests.workflows.harness import profile
from workflows.subscription import SubscriptionRunInput
from workflows.subscription.state import SubscriptionInput, SubscriptionState

CONVERTER = pydantic_data_converter.payload_converter
START = SubscriptionInput(
    subscription_id="sub_1",
    customer=profile("cust_1"),
    gateway_customer_id="cus_1",
    default_payment_method_id=None,
    plan_id="pro-monthly",
    currency="EUR",
    start_at=datetime(2027, 1, 1, tzinfo=UTC),
)


@pytest.mark.parametrize(
    "value",
    [START, SubscriptionState.from_input(START), SubscriptionStart("sub_1")],
    ids=["input", "state", "event_start"],
)
def test_each_shape_round_trips(value: object) -> None:
    (decoded,) = CONVERTER.from_payloads(CONVERTER.to_payloads([value]), [SubscriptionRunInput])
    assert decoded == value


def test_a_minimal_event_start_is_not_mistaken_for_a_state() -> None:
    payload = CONVERTER.to_payloads([SubscriptionStart("sub_1")])[0]
    payload.data = json.dumps({"subscription_id": "sub_1"}).encode()
    (decoded,) = CONVERTER.from_payloads([payload], [SubscriptionRunInput])
    assert isinstance(decoded, SubscriptionStart)
