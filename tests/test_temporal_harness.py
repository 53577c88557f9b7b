"""The Temporal fixtures start real servers with Dunwell's search attributes."""

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from workflows.search_attributes import ALL


async def _custom_attributes(env: WorkflowEnvironment) -> set[str]:
    resp = await env.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=env.client.namespace)
    )
    return set(resp.custom_attributes)


async def test_dev_server_has_dunwell_search_attributes(
    temporal_dev_env: WorkflowEnvironment,
) -> None:
    assert {k.name for k in ALL} <= await _custom_attributes(temporal_dev_env)


async def test_time_skipping_server_answers(temporal_time_env: WorkflowEnvironment) -> None:
    assert temporal_time_env.supports_time_skipping
    assert await temporal_time_env.client.service_client.check_health()
