"""``dunwell demo`` against a running stack: customers, subscriptions, a plan change and a
renewal, all through the HTTP API."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import httpx
import pytest

from dunwell.demo import run_demo
from dunwell.settings import Settings
from tests.api.conftest import AUTH
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.temporal, pytest.mark.slow]


async def test_demo_drives_a_renewal_and_a_plan_change(e2e_stack: Stack) -> None:
    settings: Settings = e2e_stack.app.state.settings
    lines: list[str] = []
    subscriptions = await asyncio.to_thread(
        run_demo, settings, renewal_in=timedelta(seconds=3), echo=lines.append
    )
    assert set(subscriptions) == {"ada", "brandt", "casey"}
    async with httpx.AsyncClient(base_url=e2e_stack.base_url, headers=AUTH) as http:
        ada = (await http.get(f"/v1/subscriptions/{subscriptions['ada']}")).json()
        brandt = (await http.get(f"/v1/subscriptions/{subscriptions['brandt']}")).json()
        casey = (await http.get(f"/v1/subscriptions/{subscriptions['casey']}")).json()
        brandt_invoices = (
            await http.get(f"/v1/subscriptions/{subscriptions['brandt']}/invoices")
        ).json()["items"]
    assert [i["purpose"] for i in ada["recent_invoices"]] == ["first", "renewal"]
    assert brandt["plan_id"] == "business-monthly"
    assert [c["outcome"] for c in brandt["plan_changes"]] == ["applied"]
    # A German business with a VAT ID, sold to from Ireland: reverse charge, no VAT.
    assert [i["tax_total"] for i in brandt_invoices] == [0, 0]
    assert casey["status"] == "trialing"
    text = "\n".join(lines)
    assert f"subscription-{subscriptions['ada']}" in text
    assert "dunwell ledger trial-balance" in text
    assert "renewal invoice" in text
    for name in ("Ada Lovelace", "Brandt GmbH", "Casey Jones"):
        assert re.search(rf"Portal \({name}\): http://\S+/portal\?session=\S+", text), name
