"""One way to connect to Temporal, shared by the worker, the API and the CLI.

Payloads are encrypted when keys are configured (``dunwell.codec``). The connection
follows the settings: plaintext to a local dev server, TLS with an
optional private CA, mTLS with a client certificate, or an API key over TLS (Temporal
Cloud takes either of the last two).
"""

from __future__ import annotations

import dataclasses

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.service import TLSConfig

from dunwell.codec import EncryptionCodec
from dunwell.converter import data_converter
from dunwell.settings import Settings


def converter_for(settings: Settings) -> DataConverter:
    """Dunwell's data converter, encrypting payloads when keys are configured."""
    keys = settings.payload_key_set()
    if keys is None:
        return data_converter
    return dataclasses.replace(data_converter, payload_codec=EncryptionCodec(keys))


def tls_config(settings: Settings) -> TLSConfig | bool:
    """The ``tls`` argument for ``Client.connect``: False for plaintext."""
    if not settings.temporal_uses_tls:
        return False
    ca = settings.temporal_tls_server_ca_cert
    cert = settings.temporal_tls_client_cert
    key = settings.temporal_tls_client_key
    return TLSConfig(
        server_root_ca_cert=ca.read_bytes() if ca is not None else None,
        domain=settings.temporal_tls_server_name,
        client_cert=cert.read_bytes() if cert is not None else None,
        client_private_key=key.read_bytes() if key is not None else None,
    )


async def connect(settings: Settings) -> Client:
    # The pydantic converter carries dataclasses, pydantic models, datetimes and
    # Decimal (the default converter rejects Decimal); ours shares its type adapters.
    api_key = settings.temporal_api_key
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=converter_for(settings),
        tls=tls_config(settings),
        api_key=api_key.get_secret_value() if api_key is not None else None,
    )
