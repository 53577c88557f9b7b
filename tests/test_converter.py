"""The data converter shares pydantic type adapters across payload converters (the
worker makes one per workflow instance) and keeps pydantic_data_converter's format."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from temporalio.contrib.pydantic import pydantic_data_converter

from billing.catalog import BillingAddress, CustomerProfile
from dunwell.converter import DunwellPayloadConverter, data_converter, shared_type_adapter
from workflows.subscription.state import SubscriptionInput

START = SubscriptionInput(
    subscription_id="sub_conv",
    customer=CustomerProfile(
        customer_id="cust_conv",
        email="ada@example.test",
        name="Ada",
        address=BillingAddress(
            country="DE", state=None, postal_code="10115", city="Berlin", line1="Str. 1"
        ),
        segment="enterprise",
    ),
    gateway_customer_id="cus_conv",
    default_payment_method_id="pm_conv",
    plan_id="pro-monthly",
    currency="EUR",
    start_at=datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC),
    trial=False,
)


def test_payloads_are_the_same_as_pydantic_data_converters() -> None:
    ours = data_converter.payload_converter.to_payloads([START, Decimal("1.10")])
    theirs = pydantic_data_converter.payload_converter.to_payloads([START, Decimal("1.10")])
    assert [p.data for p in ours] == [p.data for p in theirs]
    (back,) = data_converter.payload_converter.from_payloads(theirs[:1], [SubscriptionInput])
    assert back == START


def test_every_converter_instance_uses_one_adapter_per_type() -> None:
    payloads = data_converter.payload_converter.to_payloads([START])
    first, second = DunwellPayloadConverter(), DunwellPayloadConverter()
    assert first.from_payloads(payloads, [SubscriptionInput]) == [START]
    adapter = shared_type_adapter(SubscriptionInput)
    assert second.from_payloads(payloads, [SubscriptionInput]) == [START]
    assert shared_type_adapter(SubscriptionInput) is adapter, "built once, then shared"


def test_a_worker_warms_the_adapters_its_workflows_and_activities_need() -> None:
    from dunwell.converter import _type_adapter, warm_type_adapters
    from workflows import WORKFLOWS
    from workflows.dunning import DunningInput
    from workflows.subscription import SubscriptionRunInput

    async def an_activity(start: SubscriptionInput) -> CustomerProfile:
        return start.customer

    assert warm_type_adapters(WORKFLOWS, [an_activity]) > 10
    before = _type_adapter.cache_info()
    for hint in (SubscriptionRunInput, DunningInput, CustomerProfile):
        shared_type_adapter(hint)
    after = _type_adapter.cache_info()
    assert (after.hits - before.hits, after.misses - before.misses) == (3, 0)


def test_payload_converters_share_their_encodings() -> None:
    """The worker builds payload converters per workflow instance and per activation;
    each shares one set of encodings instead of building a JSON converter of its own."""
    first, second = DunwellPayloadConverter(), DunwellPayloadConverter()
    assert list(first.converters) == list(second.converters)
    for encoding, converter in first.converters.items():
        assert second.converters[encoding] is converter, encoding
