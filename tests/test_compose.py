"""docker-compose.yml stays in step with the code it deploys.

The compose file cannot be started here (no container registry), so its contract with
the code is checked as text: the production settings Dunwell refuses to start without
are passed, Temporal comes from the server image with a schema job (not the deprecated
auto-setup image), and the search attributes it registers are the ones the workflows use.
"""

from __future__ import annotations

import re
from pathlib import Path

from workflows import search_attributes

COMPOSE = (Path(__file__).resolve().parents[1] / "docker-compose.yml").read_text()


def test_every_search_attribute_the_workflows_use_is_registered() -> None:
    flags = search_attributes.cli_flags()
    wanted = {flags[i + 1] for i, flag in enumerate(flags) if flag == "--search-attribute"}
    registered = set(
        re.findall(r"\bDunwell\w+=(?:Keyword|Datetime|Bool|Int|Double|Text)\b", COMPOSE)
    )
    assert registered == wanted


def test_temporal_runs_from_the_server_image_after_its_schema_job() -> None:
    assert "image: temporalio/auto-setup" not in COMPOSE
    assert "image: temporalio/server:" in COMPOSE
    assert "update-schema" in COMPOSE and "service_completed_successfully" in COMPOSE


def test_the_settings_production_requires_are_passed() -> None:
    for name in (
        "DUNWELL_ENV",
        "DUNWELL_STRIPE_API_KEY",
        "DUNWELL_STRIPE_WEBHOOK_SECRET",
        "DUNWELL_API_KEY",
        "DUNWELL_OPS_API_KEY",
        "DUNWELL_PORTAL_SESSION_SECRET",
        "DUNWELL_RELAY_SECRET",
        "DUNWELL_PAYLOAD_KEYS",
        "DUNWELL_TEMPORAL_ALLOW_PLAINTEXT",
    ):
        assert re.search(rf"^\s+{name}:", COMPOSE, re.MULTILINE), name
