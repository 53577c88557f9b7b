"""Session-wide test harness.

- ``pg_url``: a fresh PostgreSQL database per test session, dropped at the end. The
  server at ``DUNWELL_TEST_PG_ADMIN_URL`` (default: 127.0.0.1:5432, trust auth) is
  required: a test that needs it fails, it never skips.
- The session ends with ``os._exit`` after pytest has reported: the temporalio Rust
  bridge can abort the interpreter at shutdown ("PyGILState_Release", sdk-python
  issue 300), which would turn a green run into a random crash.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from psycopg import sql
from temporalio.testing import WorkflowEnvironment

from tests.support.temporal import start_dev_server, start_time_skipping

os.environ.setdefault("DUNWELL_ENV", "test")

PG_ADMIN_URL = os.environ.get(
    "DUNWELL_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

_exit_status: int | None = None


def _admin_connect() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(
            f"PostgreSQL is required for this test and is not answering at {PG_ADMIN_URL}: "
            f"{exc}. Start it (pg_ctlcluster ... main start) or set DUNWELL_TEST_PG_ADMIN_URL.",
            pytrace=False,
        )


def create_database(prefix: str = "dunwell_test") -> str:
    """Create an empty database and return its SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with _admin_connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with _admin_connect() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session."""
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # Everything has been reported by now; leave before the interpreter's own teardown.
    if _exit_status is None or os.environ.get("DUNWELL_TEST_NO_HARD_EXIT"):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)


@pytest.fixture(scope="session")
async def temporal_dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server for the session."""
    env = await start_dev_server()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def temporal_time_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server for the session; use a fresh task queue per test."""
    env = await start_time_skipping()
    try:
        yield env
    finally:
        await env.shutdown()
