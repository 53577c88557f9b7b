"""The Temporal connection over TLS, mutual TLS and with an API key.

The dev server speaks plaintext only, so each test puts a real TLS-terminating proxy in
front of it (Python's ssl module, offering HTTP/2 by ALPN as gRPC requires), with a
private CA made for the test. What is checked is what ``dunwell.temporal.connect``
builds from the settings: a connection that completes a real RPC, and one the server's
certificate policy refuses.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError
from temporalio.testing import WorkflowEnvironment

from dunwell import temporal
from dunwell.settings import Environment, Settings

NOW = dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Path:
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path.with_suffix(".pem")


def _issue(
    subject: str,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pki(root: Path) -> Pki:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue("dunwell test ca", _name("dunwell test ca"), ca_key, ca_key, ca=True)
    ca = _write(root / "ca", ca_cert, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _write(
        root / "server",
        _issue("localhost", ca_cert.subject, ca_key, server_key, server=True),
        server_key,
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _write(
        root / "client", _issue("worker", ca_cert.subject, ca_key, client_key), client_key
    )
    # A client certificate from a CA the server does not trust.
    other_key = ec.generate_private_key(ec.SECP256R1())
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    stranger = _write(
        root / "stranger",
        _issue("stranger", _name("other ca"), other_key, stranger_key),
        stranger_key,
    )
    return Pki(
        ca,
        server,
        server.with_suffix(".key"),
        client,
        client.with_suffix(".key"),
        stranger,
        stranger.with_suffix(".key"),
    )


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@asynccontextmanager
async def tls_proxy(upstream: str, pki: Pki, *, require_client_cert: bool) -> AsyncIterator[str]:
    """A TLS endpoint on loopback that forwards the decrypted stream to ``upstream``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.set_alpn_protocols(["h2"])
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki.ca)
    host, port = upstream.rsplit(":", 1)
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        for task in (
            asyncio.create_task(_pipe(reader, up_writer)),
            asyncio.create_task(_pipe(up_reader, writer)),
        ):
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    address = server.sockets[0].getsockname()
    try:
        yield f"127.0.0.1:{address[1]}"
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return _pki(tmp_path)


def _upstream(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


def _settings(address: str, **values: object) -> Settings:
    return Settings(env=Environment.TEST, temporal_address=address, **values)  # type: ignore[arg-type]


async def _reachable(settings: Settings) -> bool:
    try:
        client = await asyncio.wait_for(temporal.connect(settings), 10)
        await asyncio.wait_for(client.service_client.check_health(), 10)
    except (RuntimeError, OSError, TimeoutError):
        return False
    return True


async def test_tls_with_a_private_ca_reaches_the_server(
    temporal_dev_env: WorkflowEnvironment, pki: Pki
) -> None:
    async with tls_proxy(_upstream(temporal_dev_env), pki, require_client_cert=False) as address:
        settings = _settings(
            address,
            temporal_tls=True,
            temporal_tls_server_ca_cert=pki.ca,
            temporal_tls_server_name="localhost",
        )
        assert await _reachable(settings)
        # The same endpoint refuses a plaintext client, and a client that does not trust
        # the private CA refuses the server.
        assert not await _reachable(_settings(address))
        assert not await _reachable(_settings(address, temporal_tls=True))


async def test_mutual_tls_needs_a_client_certificate_the_server_trusts(
    temporal_dev_env: WorkflowEnvironment, pki: Pki
) -> None:
    async with tls_proxy(_upstream(temporal_dev_env), pki, require_client_cert=True) as address:
        server = {"temporal_tls_server_ca_cert": pki.ca, "temporal_tls_server_name": "localhost"}
        assert await _reachable(
            _settings(
                address,
                **server,
                temporal_tls_client_cert=pki.client_cert,
                temporal_tls_client_key=pki.client_key,
            )
        )
        assert not await _reachable(_settings(address, temporal_tls=True, **server))
        assert not await _reachable(
            _settings(
                address,
                **server,
                temporal_tls_client_cert=pki.stranger_cert,
                temporal_tls_client_key=pki.stranger_key,
            )
        )


async def test_an_api_key_turns_tls_on_and_is_sent(
    temporal_dev_env: WorkflowEnvironment, pki: Pki
) -> None:
    async with tls_proxy(_upstream(temporal_dev_env), pki, require_client_cert=False) as address:
        settings = _settings(
            address,
            temporal_api_key="temporal-cloud-key",
            temporal_tls_server_ca_cert=pki.ca,
            temporal_tls_server_name="localhost",
        )
        assert settings.temporal_uses_tls
        client = await temporal.connect(settings)
        assert client.service_client.config.api_key == "temporal-cloud-key"
        await client.service_client.check_health()


def test_a_client_certificate_needs_its_key(pki: Pki) -> None:
    with pytest.raises(ValidationError, match="go together"):
        _settings("127.0.0.1:7233", temporal_tls_client_cert=pki.client_cert)
    with pytest.raises(ValidationError, match="go together"):
        _settings("127.0.0.1:7233", temporal_tls_client_key=pki.client_key)


def test_a_missing_certificate_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(ValidationError, match="DUNWELL_TEMPORAL_TLS_SERVER_CA_CERT: no such file"):
        _settings("127.0.0.1:7233", temporal_tls=True, temporal_tls_server_ca_cert=missing)


def test_plaintext_is_the_default_in_dev() -> None:
    settings = _settings("127.0.0.1:7233")
    assert not settings.temporal_uses_tls
    assert temporal.tls_config(settings) is False
