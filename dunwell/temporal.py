"""One way to connect to Temporal, shared by the worker, the API and the CLI."""

from __future__ import annotations

from temporalio.client import Client

from dunwell.converter import data_converter
from dunwell.settings import Settings


async def connect(settings: Settings) -> Client:
    # The pydantic converter carries dataclasses, pydantic models, datetimes and
    # Decimal (the default converter rejects Decimal); ours shares its type adapters.
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter,
    )
