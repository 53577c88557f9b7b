"""How Dunwell starts ``temporal server start-dev``: ``make dev``, the benches and the
tests pass the same flags, and production clusters should carry the same dynamic config
(``deploy/temporal-dynamicconfig.yaml`` for ``docker-compose.yml``)."""

from __future__ import annotations

from workflows.search_attributes import cli_flags

# Eager activity dispatch: an activity that a workflow task schedules on the worker's own
# task queue comes back with that task's completion, instead of a round through the
# server's matching service. A renewal's charge is such an activity.
DYNAMIC_CONFIG: dict[str, str] = {"system.enableActivityEagerExecution": "true"}


def start_dev_flags() -> list[str]:
    """Dunwell's search attributes and dynamic config, as ``start-dev`` flags."""
    flags = cli_flags()
    for key, value in DYNAMIC_CONFIG.items():
        flags += ["--dynamic-config-value", f"{key}={value}"]
    return flags
