"""Gateway test peers: localstripe (real SDK over HTTP) and a recorded-payload server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe

from activities.stripe_gateway import StripeGateway
from tests.gateway.recorded import RecordedStripe, RecordedStripeServer
from tests.support.localstripe import reset, running_localstripe

TEST_API_KEY = "sk_test_dunwell_gateway"


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    """One localstripe process for the session."""
    with running_localstripe() as url:
        yield url


@pytest.fixture
def localstripe(localstripe_url: str) -> str:
    """localstripe's base URL, emptied before the test."""
    reset(localstripe_url)
    return localstripe_url


@pytest.fixture
def stripe_client(localstripe: str) -> stripe.StripeClient:
    """The raw SDK, for test setup the gateway port deliberately cannot do."""
    return stripe.StripeClient(TEST_API_KEY, base_addresses={"api": localstripe})


@pytest.fixture
def gateway(localstripe: str) -> Iterator[StripeGateway]:
    gw = StripeGateway(TEST_API_KEY, localstripe, timeout_seconds=10)
    yield gw
    gw.close()


@pytest.fixture
def recorded() -> Iterator[RecordedStripe]:
    with RecordedStripeServer() as state:
        yield state


@pytest.fixture
def recorded_gateway(recorded: RecordedStripe) -> Iterator[StripeGateway]:
    gw = StripeGateway(TEST_API_KEY, recorded.url, timeout_seconds=0.5)
    yield gw
    gw.close()
