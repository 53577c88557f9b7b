"""Rate limits: per API key, per portal session (tighter on gateway writes), per address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from dunwell.settings import Environment, Settings
from tests.api.conftest import AUTH, build_app, make_settings, portal_headers, running


@asynccontextmanager
async def api(
    api_db_url: str, localstripe_url: str, **limits: Any
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(api_db_url, localstripe_url, **limits)
    async with running(build_app(settings)) as http:
        yield http


def refused(response: httpx.Response) -> bool:
    if response.status_code != 429:
        return False
    assert response.json()["error"]["code"] == "rate_limited"
    assert int(response.headers["retry-after"]) >= 1
    return True


async def test_the_server_key_has_its_own_budget(api_db_url: str, localstripe_url: str) -> None:
    async with api(api_db_url, localstripe_url, rate_limit_server="3/minute") as http:
        answers = [await http.get("/v1/customers/cus_missing", headers=AUTH) for _ in range(4)]
        assert [a.status_code for a in answers[:3]] == [404, 404, 404]
        last = answers[3]
        assert refused(last)
        assert 1 <= int(last.headers["retry-after"]) <= 60
        # Anonymous callers are counted apart: the key's flood does not lock them out.
        assert (await http.get("/v1/customers/cus_missing")).status_code == 401


async def test_a_portal_session_is_limited_tighter_on_gateway_writes(
    api_db_url: str, localstripe_url: str
) -> None:
    async with api(
        api_db_url,
        localstripe_url,
        rate_limit_portal="20/minute",
        rate_limit_portal_gateway="2/minute",
    ) as http:
        session = portal_headers("cus_ratelimited")
        path = "/v1/portal/subscriptions/sub_unknown/payment-method/setup-intent"
        first = [await http.post(path, headers=session) for _ in range(2)]
        assert [r.status_code for r in first] == [404, 404]  # counted before routing
        assert refused(await http.post(path, headers=session))
        # Reads of the same session still have budget; another session is untouched.
        assert not refused(await http.get("/v1/portal/subscriptions", headers=session))
        other = portal_headers("cus_other")
        assert (await http.post(path, headers=other)).status_code == 404


async def test_made_up_tokens_share_the_address_budget(
    api_db_url: str, localstripe_url: str
) -> None:
    async with api(api_db_url, localstripe_url, rate_limit_anonymous="3/minute") as http:
        answers = [
            await http.get("/v1/portal/session", headers={"Authorization": f"Bearer made-up-{n}"})
            for n in range(3)
        ]
        assert [a.status_code for a in answers] == [401, 401, 401]
        assert refused(await http.get("/docs"))
        assert (await http.get("/healthz")).status_code == 200  # never limited


async def test_the_signed_intakes_count_per_address(api_db_url: str, localstripe_url: str) -> None:
    async with api(
        api_db_url, localstripe_url, rate_limit_intake="2/minute", rate_limit_anonymous="1/minute"
    ) as http:
        unsigned = [await http.post("/webhooks/stripe", content=b"{}") for _ in range(2)]
        assert [r.status_code for r in unsigned] == [400, 400]
        assert refused(await http.post("/webhooks/stripe", content=b"{}"))
        assert refused(await http.post("/v1/events", content=b"{}"))  # the same intake budget


async def test_limits_can_be_turned_off(api_db_url: str, localstripe_url: str) -> None:
    async with api(
        api_db_url, localstripe_url, rate_limits_enabled=False, rate_limit_anonymous="1/minute"
    ) as http:
        assert [(await http.get("/docs")).status_code for _ in range(3)] == [200, 200, 200]


@pytest.mark.parametrize("value", ["", "fast", "10 per fortnight"])
def test_a_limit_that_does_not_parse_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="is not a rate limit"):
        Settings(env=Environment.TEST, rate_limit_portal=value)
