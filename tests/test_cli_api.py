"""``dunwell api`` process setup (the serving itself is tested through the API)."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from dunwell import cli


def test_the_api_runs_with_a_short_gil_switch_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def serve(app: str, **options: Any) -> None:  # stands in for uvicorn's server loop
        seen.update(app=app, interval=sys.getswitchinterval())

    monkeypatch.setattr(uvicorn, "run", serve)
    monkeypatch.setattr(cli, "_hard_exit", lambda code: seen.update(code=code))
    previous = sys.getswitchinterval()
    assert previous != cli.API_SWITCH_INTERVAL_S, "Python's default is 5 ms"
    try:
        cli.api()
    finally:
        sys.setswitchinterval(previous)
    assert seen == {
        "app": "api.app:create_served_app",
        "interval": cli.API_SWITCH_INTERVAL_S,
        "code": 0,
    }


@pytest.mark.parametrize("command", ["api", "worker"])
@pytest.mark.parametrize("value", [None, "", "  "])
def test_a_service_refuses_to_start_without_an_explicit_environment(
    monkeypatch: pytest.MonkeyPatch, command: str, value: str | None
) -> None:
    started: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: started.append("api"))
    monkeypatch.setattr(cli, "_hard_exit", lambda code: started.append(f"exit {code}"))
    if value is None:
        monkeypatch.delenv("DUNWELL_ENV", raising=False)
    else:
        monkeypatch.setenv("DUNWELL_ENV", value)
    result = CliRunner().invoke(cli.app, [command])
    assert result.exit_code == 2
    assert "DUNWELL_ENV is not set" in result.output
    assert started == []
