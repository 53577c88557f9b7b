"""Session-wide test harness.

- ``pg_url``: a fresh PostgreSQL database per test session, dropped at the end. The
  server at ``DUNWELL_TEST_PG_ADMIN_URL`` (default: 127.0.0.1:5432, trust auth) is
  required: a test that needs it fails, it never skips.
- Every log record of the run is scanned for card-number-like values; one found
  fails the session at teardown.
- Under mutation testing (``DUNWELL_MUTATION=1``) the hypothesis profile ``mutation``
  is loaded (few examples, derandomized, no example database) and the pure core's
  caches are emptied before every test (``tests/support/mutation.py``).
- The session ends with ``os._exit`` after pytest has reported: the temporalio Rust
  bridge can abort the interpreter at shutdown ("PyGILState_Release", sdk-python
  issue 300), which would turn a green run into a random crash.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from hypothesis import settings
from psycopg import sql
from temporalio.testing import WorkflowEnvironment

from billing.pan import find_pan_like
from tests.support.mutation import MUTATION, clear_caches
from tests.support.temporal import start_dev_server, start_time_skipping

os.environ.setdefault("DUNWELL_ENV", "test")

# Loaded before the test modules are imported, so their own settings inherit from it.
settings.register_profile("mutation", max_examples=10, derandomize=True, database=None)
if MUTATION:
    settings.load_profile("mutation")

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


# The suite's log scan: every log record produced during the run is checked for
# card-number-like values; the session fails at teardown if one was logged.
class PanScan(logging.Handler):
    """Remembers where a card-number-like value was logged (never the value itself)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records = 0
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        try:
            text = record.getMessage()
        except Exception:  # a bad format string is not a leak; check the raw parts
            text = f"{record.msg} {record.args}"
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {record.exc_info[1]}"
        if record.exc_text:
            text += f" {record.exc_text}"
        if find_pan_like(text):
            self.leaks.append(f"{record.name}:{record.lineno} ({record.levelname})")


LOG_SCAN = PanScan()


def pytest_configure(config: pytest.Config) -> None:
    root = logging.getLogger()
    if LOG_SCAN not in root.handlers:
        root.addHandler(LOG_SCAN)
        # INFO and above are what a deployment records; make sure they are produced.
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)


@pytest.fixture(scope="session", autouse=True)
def no_card_numbers_in_logs() -> Iterator[PanScan]:
    yield LOG_SCAN
    assert LOG_SCAN.leaks == [], f"card-number-like values were logged at {LOG_SCAN.leaks}"


@pytest.fixture(autouse=True)
def _fresh_caches_under_mutation() -> None:
    if MUTATION:
        clear_caches()


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
