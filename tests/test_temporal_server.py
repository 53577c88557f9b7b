"""The Temporal server flags every Dunwell stack starts the dev server with."""

from __future__ import annotations

from pathlib import Path

from dunwell.temporal_server import DYNAMIC_CONFIG, start_dev_flags
from workflows.search_attributes import cli_flags

DEPLOY_CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "temporal-dynamicconfig.yaml"


def test_dev_server_flags_carry_search_attributes_and_eager_activities() -> None:
    flags = start_dev_flags()
    assert flags[: len(cli_flags())] == cli_flags()
    pairs = list(zip(flags[len(cli_flags()) :: 2], flags[len(cli_flags()) + 1 :: 2], strict=True))
    assert pairs == [("--dynamic-config-value", "system.enableActivityEagerExecution=true")]


def test_compose_server_gets_the_same_dynamic_config() -> None:
    text = DEPLOY_CONFIG.read_text()
    for key, value in DYNAMIC_CONFIG.items():
        assert f"{key}:\n  - value: {value}\n" in text
    keys = [line.rstrip(":") for line in text.splitlines() if line and line[0].isalpha()]
    assert keys == list(DYNAMIC_CONFIG)
