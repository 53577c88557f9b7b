"""Recorded histories replay deterministically against the current workflow code.

Regenerate after an intentional incompatible change (and keep a ``workflow.patched``
path for running workflows) with::

    DUNWELL_RECORD_HISTORIES=1 .venv/bin/pytest tests/workflows
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from dunwell.converter import data_converter
from workflows import WORKFLOWS

HISTORIES = Path(__file__).parent / "histories"
EXPECTED = {
    "subscription_renewal",
    "subscription_plan_change",
    "subscription_cancel",
    "subscription_event_start",
    "subscription_review",
    "manual_review",
    "subscription_gateway_resync",
    "subscription_card_updater",
    "subscription_action_confirmed",
    "subscription_action_expired",
    "subscription_action_on_session",
    # Since the dunning-child and customer-notices patches:
    "subscription_card_updater_dunning",
    "subscription_dunning_recovered",
    "subscription_dunning_exhausted",
    "subscription_dunning_cancelled",
    # Since the undo-resumes-dunning patch:
    "subscription_dunning_cancel_undone",
    # Since the baseline patch (one marker; tax quote and invoice as local activities):
    "subscription_renewal_baseline",
    "subscription_plan_change_baseline",
    # Generation 2 (carried in state; one local activity for quote and invoice):
    "subscription_first_run_generation2",
    "subscription_renewal_generation2",
    "subscription_plan_change_generation2",
    # Generation 3 (a charge's first attempt as a local activity):
    "subscription_first_run_generation3",
    "subscription_renewal_generation3",
    "subscription_plan_change_generation3",
    # Generation 4 (a period's invoice issued and charged by one local activity):
    "subscription_first_run_generation4",
    "subscription_renewal_generation4",
    "subscription_plan_change_generation4",
    # Generation 5 (outbound events: recorded with the change, access timers):
    "subscription_first_run_generation5",
    "subscription_renewal_generation5",
    "subscription_plan_change_generation5",
    "subscription_outbound_cancel",
    # Since the portal-upgrade-on-session patch (3-D Secure on portal upgrades):
    "subscription_upgrade_authenticated",
    "subscription_upgrade_authentication_failed",
    # The card given at creation attached by the run, not the API:
    "subscription_attach_initial",
    # Since the dispute_update signal (a dispute's risk and policy):
    "subscription_dispute_flagged",
    # An endpoint's delivery workflow (outbound events), through an hour of downtime:
    "outbound_delivery",
    # The daily economic-nexus watch:
    "nexus_watch",
}


def test_every_workflow_has_recorded_histories() -> None:
    assert {p.stem for p in HISTORIES.glob("*.json")} >= EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_history_replays(name: str) -> None:
    history = WorkflowHistory.from_json(
        f"{name}-workflow", (HISTORIES / f"{name}.json").read_text()
    )
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
