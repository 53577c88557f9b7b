"""Policy lookup and versioning, and the state's trip through Temporal's data converter."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib.resources import files

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter

from billing.declines import DeclineInfo
from billing.dunning import (
    AttemptFailed,
    CardRef,
    DunningState,
    EndAction,
    InvoiceEndAction,
    PaymentMethodUpdated,
    RetryAt,
    Started,
    TimerFired,
    decide,
    load_policy,
    policy_for,
)
from billing.dunning.events import DunningEvent
from billing.dunning.policy import UnknownPolicyError, all_policies

AT = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
VISA = CardRef("fp_visa", "visa")


def test_lookup_prefers_the_most_specific_assignment() -> None:
    assert policy_for("pro_monthly", "smb").key == "standard@v3"
    assert policy_for("pro_monthly", "enterprise").key == "enterprise@v2"
    assert policy_for("starter_monthly", "smb").key == "self_serve_short@v2"
    # plan beats segment
    assert policy_for("starter_monthly", "enterprise").key == "self_serve_short@v2"


def test_a_run_of_an_older_generation_keeps_the_policies_it_knew() -> None:
    assert policy_for("pro_monthly", "smb", generation=1).key == "standard@v2"
    assert policy_for("pro_monthly", "enterprise", generation=1).key == "enterprise@v1"
    assert policy_for("starter_monthly", "enterprise", generation=1).key == "self_serve_short@v1"
    assert policy_for("pro_monthly", "smb", generation=2).key == "standard@v3"


def test_every_published_version_stays_loadable() -> None:
    raw = json.loads(files("billing.dunning").joinpath("data/policies.json").read_text())
    published = {(p["policy_id"], p["version"]) for p in raw["policies"]}
    assert {(p.policy_id, p.version) for p in all_policies()} == published
    for policy_id, version in published:
        assert load_policy(policy_id, version).key == f"{policy_id}@v{version}"
    with pytest.raises(UnknownPolicyError):
        load_policy("standard", 99)


def test_default_policy_is_close_to_smart_retries() -> None:
    policy = policy_for("any", "any")
    assert 6 <= policy.max_retries <= 10
    assert policy.window == timedelta(days=14)
    assert policy.end_action in EndAction and policy.invoice_end_action in InvoiceEndAction


def test_an_invoice_keeps_the_policy_version_it_started_with() -> None:
    old = load_policy("standard", 1)
    assert policy_for("pro", "smb").version != old.version
    started = Started(
        "in_1", 1000, "USD", VISA, 0, AT, old, DeclineInfo(decline_code="do_not_honor")
    )
    state, decision = decide(None, started, AT, 0.5)
    assert state.policy_key == "standard@v1"
    assert isinstance(decision, RetryAt)
    # v1 waits 24 h (+-20 %) before the first retry; v2 would wait 12 h.
    assert timedelta(hours=24 * 0.8) <= decision.when - AT <= timedelta(hours=24 * 1.2)


def test_state_and_events_survive_the_temporal_pydantic_converter() -> None:
    converter = pydantic_data_converter.payload_converter
    started = Started(
        "in_1",
        1000,
        "JPY",
        VISA,
        540,
        AT,
        policy_for("pro", "smb"),
        DeclineInfo(decline_code="insufficient_funds", network_decline_code="51"),
    )
    state, decision = decide(None, started, AT, 0.25)
    state, decision = decide(state, TimerFired(decision.when), decision.when, 0.25)
    state, decision = decide(
        state,
        AttemptFailed(decision_at := AT + timedelta(days=1), DeclineInfo(decline_code="x")),
        decision_at,
        0.25,
    )
    events: list[DunningEvent] = [started, PaymentMethodUpdated(CardRef("fp2", "mastercard"), AT)]
    (payload,) = converter.to_payloads([state])
    (restored,) = converter.from_payloads([payload], [DunningState])
    assert restored == state
    assert restored.attempts[0].family is not None
    for event in events:
        (payload,) = converter.to_payloads([event])
        assert converter.from_payloads([payload], [type(event)]) == [event]
    # The restored state decides exactly like the original.
    later = AT + timedelta(days=2)
    assert decide(restored, TimerFired(later), later, 0.6) == decide(
        state, TimerFired(later), later, 0.6
    )
