"""Recorded dunning histories replay deterministically against the current code.

Regenerate after an intentional incompatible change (keep a ``workflow.patched`` path
for running workflows) with::

    DUNWELL_RECORD_HISTORIES=1 .venv/bin/pytest tests/dunning_workflow
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from dunwell.converter import data_converter
from workflows.dunning import DunningWorkflow

HISTORIES = Path(__file__).parent / "histories"
EXPECTED = {
    "dunning_recovered",
    "dunning_authentication_required",
    "dunning_cancel_in_flight",
    "dunning_new_card",
    "dunning_child_reports_to_parent",  # since the dunning-result-to-parent patch
    "dunning_cancel_undone",  # the parent's undo-resumes-dunning signal
    "dunning_v3_hard_decline_new_card",  # standard@v3: the run outlives a hard decline
    "dunning_v3_card_ledger_refused",  # the card's attempt ledger refused a retry
}


def test_every_dunning_path_has_a_recorded_history() -> None:
    assert {p.stem for p in HISTORIES.glob("*.json")} >= EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_history_replays(name: str) -> None:
    history = WorkflowHistory.from_json(
        f"{name}-workflow", (HISTORIES / f"{name}.json").read_text()
    )
    replayer = Replayer(workflows=[DunningWorkflow], data_converter=data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
