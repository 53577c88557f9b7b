"""A database error names the failed statement but never the values bound to it."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ledger.db import make_engine

BOUND = "person@example.com"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, pg_url: str) -> str:
    return "sqlite+pysqlite:///:memory:" if request.param == "sqlite" else pg_url


def test_bound_values_are_hidden_in_database_errors(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection, pytest.raises(DBAPIError) as raised:
            connection.execute(text("SELECT no_such_column WHERE :email = ''"), {"email": BOUND})
    finally:
        engine.dispose()
    message = str(raised.value)
    assert "no_such_column" in message
    assert BOUND not in message
