"""Temporal servers for tests, from the installed binaries (no download here)."""

from __future__ import annotations

import sys
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from dunwell.converter import data_converter
from workflows.search_attributes import cli_flags, register_search_attributes


def _bin(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise RuntimeError(f"{name} is not installed beside {sys.executable}")
    return str(path)


async def start_dev_server() -> WorkflowEnvironment:
    """A real Temporal dev server (in memory) with Dunwell's search attributes."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=_bin("temporal"),
        dev_server_extra_args=[*cli_flags(), "--log-level", "error"],
        data_converter=data_converter,
    )


async def start_time_skipping() -> WorkflowEnvironment:
    """The time-skipping test server; search attributes registered via the operator API."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_bin("temporal-test-server"),
        data_converter=data_converter,
    )
    await register_search_attributes(env.client)
    return env
