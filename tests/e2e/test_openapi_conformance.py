"""Schemathesis over the whole OpenAPI document, against the API served for real (a
worker on the Temporal dev server, localstripe, a database of its own): no 5xx, every
status code, content type and header documented, every response body matching its
schema, schema-violating requests refused, schema-valid ones accepted except where
tests/e2e/schemathesis.toml says why not. And the document's own promises: every
refusal that the middleware gives is documented, in the one JSON error shape."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from tests.api.conftest import API_KEY, OPS_KEY
from tests.conftest import create_database, drop_database
from tests.e2e.conftest import Stack, served_stack
from tests.e2e.support import subscriber

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")

pytestmark = [pytest.mark.postgres, pytest.mark.temporal, pytest.mark.slow]


@pytest.fixture(scope="module")
async def conformance_stack(
    temporal_dev_env: WorkflowEnvironment, e2e_localstripe: str
) -> AsyncIterator[Stack]:
    """Its own database: the generated requests record tax registrations, customers and
    subscriptions that the other end-to-end tests must not see."""
    from ledger.migrate import upgrade

    url = create_database("dunwell_conformance")
    try:
        upgrade(url)
        async with served_stack(temporal_dev_env, url, e2e_localstripe, "conf") as stack:
            yield stack
    finally:
        drop_database(url)


async def test_every_operation_answers_as_the_openapi_document_says(
    conformance_stack: Stack, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=conformance_stack.base_url, timeout=30) as http:
        _sid, _url, portal = await subscriber(conformance_stack, http)
    env = {
        **os.environ,
        "DUNWELL_SERVER_KEY": API_KEY,
        "DUNWELL_OPS_KEY": OPS_KEY,
        "DUNWELL_PORTAL_TOKEN": portal["Authorization"].removeprefix("Bearer "),
        "HOME": str(tmp_path),  # schemathesis keeps nothing of its own in the real home
    }
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(CONFIG),
        "run",
        f"{conformance_stack.base_url}/openapi.json",
        "--phases",
        "examples,coverage,fuzzing",
        "--no-color",
    ]
    # In a thread: the worker runs on this test's event loop.
    result = await asyncio.to_thread(
        subprocess.run, command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    print(result.stdout)  # the whole report, shown by pytest when this test fails
    summary = result.stdout[-6000:]
    failing = re.findall(r"^_{3,} ((?:GET|POST|PUT|PATCH|DELETE) \S+) _+$", result.stdout, re.M)
    answers = re.findall(r"^\[(\d{3})\] [^\n]*:\n\n    `([^`]{0,300})", result.stdout, re.M)
    assert result.returncode == 0, (failing, answers[:20], summary)
    assert " passed" in summary and "failures" not in summary.split("SUMMARY")[-1], summary


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


async def test_every_operation_documents_the_refusals_given_before_its_route_runs(
    conformance_stack: Stack,
) -> None:
    async with httpx.AsyncClient(base_url=conformance_stack.base_url) as http:
        schema = (await http.get("/openapi.json")).json()
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    assert schema["components"]["schemas"]["ErrorResponse"]["required"] == ["error"]
    for method, path, operation in operations(schema):
        responses = operation["responses"]
        expected = {"400", "429"} | ({"413", "415"} if "requestBody" in operation else set())
        assert expected <= set(responses), (method, path)
        assert "Retry-After" in responses["429"]["headers"], (method, path)
        for status, response in responses.items():
            if status[0] in "45":
                assert response["content"] == {"application/json": {"schema": error_ref}}, (
                    method,
                    path,
                    status,
                )


async def test_a_405_names_every_method_served_at_the_path(conformance_stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=conformance_stack.base_url) as http:
        schema = (await http.get("/openapi.json")).json()
        # A path whose GET and POST are declared by different routes.
        documented = {m.upper() for m in schema["paths"]["/v1/ops/tax/nexus"]}
        assert documented >= {"GET", "POST"}
        response = await http.delete("/v1/ops/tax/nexus")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert set(response.headers["allow"].split(", ")) == documented


async def test_a_row_id_beyond_bigint_is_refused_not_a_server_error(
    conformance_stack: Stack,
) -> None:
    async with httpx.AsyncClient(base_url=conformance_stack.base_url) as http:
        response = await http.get(
            "/v1/ops/recon/exceptions/215139085321684484096",
            headers={"Authorization": f"Bearer {OPS_KEY}"},
        )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
