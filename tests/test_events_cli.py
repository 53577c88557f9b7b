"""``dunwell events`` on a SQLite book: endpoints and deliveries printed, an event or a
range replayed and an endpoint enabled (the wake-up is skipped when Temporal is not
reachable: the workflows poll), every refusal exiting 2 with nothing changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from dunwell.events_cli import events_app
from dunwell.settings import get_settings
from ledger import unit_of_work
from ledger.db import make_engine
from ledger.migrate import upgrade
from ledger.outbound import OutboxEvent, delivery, endpoints, outbox, reads

runner = CliRunner()
DUNWELL = str(Path(sys.executable).parent / "dunwell")
T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
def book(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Engine, str]]:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    upgrade(url)
    monkeypatch.setenv("DUNWELL_DATABASE_URL", url)
    get_settings.cache_clear()
    engine = make_engine(url)
    yield engine, url
    engine.dispose()
    get_settings.cache_clear()


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUNWELL_")}
    env.update(DUNWELL_ENV="test", DUNWELL_DATABASE_URL=url, DUNWELL_TEMPORAL_ADDRESS="127.0.0.1:1")
    return subprocess.run(
        [DUNWELL, "events", *args], env=env, capture_output=True, text=True, timeout=120
    )


def delivered_event(engine: Engine) -> tuple[str, OutboxEvent]:
    endpoint, _ = endpoints.register(
        engine, url="http://127.0.0.1:9/x", event_types=["invoice.paid"], description="", at=T0
    )
    event = OutboxEvent("cli:1", "invoice.paid", T0, {"id": "inv_1"}, "sub_cli")
    unit_of_work.transact(engine, lambda c: outbox.record(c, [event], at=T0))
    (row,) = reads.deliveries_of(engine, event.id)
    outcome = delivery.Outcome(row.id, T0, 200, None, "thanks", 5)
    unit_of_work.transact(engine, lambda c: delivery.record(c, endpoint.id, [outcome], T0))
    return endpoint.id, event


def test_lists_endpoints_and_deliveries_with_attempts(book: tuple[Engine, str]) -> None:
    engine, _ = book
    endpoint_id, event = delivered_event(engine)
    listed = runner.invoke(events_app, ["endpoints", "--status", "enabled"])
    assert listed.exit_code == 0, listed.output
    assert [e["id"] for e in json.loads(listed.output)] == [endpoint_id]
    shown = runner.invoke(events_app, ["deliveries", "--endpoint", endpoint_id])
    assert shown.exit_code == 0, shown.output
    (row,) = json.loads(shown.output)
    assert (row["event_id"], row["status"]) == (event.id, "delivered")
    assert [(a["status_code"], a["response_body"]) for a in row["history"]] == [(200, "thanks")]
    bad = runner.invoke(events_app, ["deliveries", "--status", "lost"])
    assert bad.exit_code == 2 and "unknown status" in bad.output


def test_replay_and_enable(book: tuple[Engine, str]) -> None:
    engine, url = book
    endpoint_id, event = delivered_event(engine)
    done = cli(url, "replay", event.id)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"events": 1, "endpoint_ids": [endpoint_id]}
    assert "not woken" in done.stderr
    assert reads.deliveries_of(engine, event.id)[0].status == "pending"

    ranged = cli(
        url,
        "replay-range",
        "--since",
        T0.isoformat(),
        "--until",
        (T0 + timedelta(seconds=1)).isoformat(),
    )
    assert ranged.returncode == 0, ranged.stderr
    assert json.loads(ranged.stdout)["events"] == 1

    endpoints.set_status(engine, endpoint_id, "disabled", reason=None, at=T0)
    enabled = cli(url, "enable", endpoint_id, "--reason", "receiver fixed")
    assert enabled.returncode == 0, enabled.stderr
    assert json.loads(enabled.stdout)["status"] == "enabled"
    assert endpoints.get(engine, endpoint_id).status_reason == "receiver fixed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["replay", "evt_missing"], "no event"),
        (["replay", "EVENT", "--endpoint", "we_missing"], "no endpoint"),
        (["replay-range", "--since", "2026-06-02T00:00:00+00:00", "--until", "2026-06-01T00:00:00+00:00"], "invalid_range"),
        (["replay-range", "--since", "2026-06-01T00:00:00", "--until", "2026-06-02T00:00:00+00:00"], "UTC offset"),
        (["replay-range", "--since", "yesterday", "--until", "2026-06-02T00:00:00+00:00"], "ISO 8601"),
        (["enable", "we_missing"], "no endpoint"),
    ],
)  # fmt: skip
def test_refusals_exit_2_and_change_nothing(
    book: tuple[Engine, str], args: list[str], message: str
) -> None:
    engine, _ = book
    _, event = delivered_event(engine)
    args = [event.id if a == "EVENT" else a for a in args]
    # Refused before any Temporal client exists: in process.
    done = runner.invoke(events_app, args)
    assert done.exit_code == 2, done.output
    assert message in done.output
    assert reads.deliveries_of(engine, event.id)[0].status == "delivered"
