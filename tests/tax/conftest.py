"""Tax test fixtures: builders, a seller registered nearly everywhere, and a tiny local
HTTP server that plays recorded Stripe Tax responses to the real ``stripe`` SDK."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from tax import (
    Address,
    BuiltinTaxEngine,
    Registration,
    TaxableLine,
    TaxBehavior,
    TaxCustomer,
    TaxType,
)
from tax.places import EU_MEMBER_STATES, US_STATES

PAYLOADS = Path(__file__).parent / "payloads"


def at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def line(
    amount: int,
    currency: str = "EUR",
    line_id: str = "l1",
    behavior: TaxBehavior = TaxBehavior.EXCLUSIVE,
) -> TaxableLine:
    return TaxableLine(line_id=line_id, amount=amount, currency=currency, tax_behavior=behavior)


def customer(country: str, region: str | None = None, **kwargs: Any) -> TaxCustomer:
    return TaxCustomer(billing_address=Address(country=country, region=region), **kwargs)


def half_up(value: Fraction) -> int:
    """Independent reference rounding: ties away from zero."""
    sign = -1 if value < 0 else 1
    magnitude = abs(value)
    whole = magnitude.numerator // magnitude.denominator
    if magnitude - whole >= Fraction(1, 2):
        whole += 1
    return sign * whole


def expected_tax(amount: int, percent: str) -> int:
    return half_up(Fraction(amount) * Fraction(percent) / 100)


SINCE = date(2019, 1, 1)


def reg(jurisdiction: str, tax_type: TaxType | None = None, since: date = SINCE) -> Registration:
    return Registration(jurisdiction, tax_type, since, None, f"REG-{jurisdiction}")


def everywhere() -> tuple[Registration, ...]:
    """A seller registered in every place the built-in table covers."""
    regs = [reg("EU", TaxType.VAT)]
    regs += [reg(c) for c in ("GB", "CH", "NO", "AU", "NZ", "SG", "JP", "IN")]
    regs += [reg("CA", TaxType.GST)]
    regs += [
        reg("CA-BC", TaxType.PST),
        reg("CA-SK", TaxType.PST),
        reg("CA-MB", TaxType.RST),
        reg("CA-QC", TaxType.QST),
    ]
    regs += [reg(f"US-{s}", TaxType.SALES_TAX) for s in sorted(US_STATES)]
    return tuple(regs)


@pytest.fixture(scope="session")
def registrations() -> tuple[Registration, ...]:
    return everywhere()


@pytest.fixture(scope="session")
def engine() -> BuiltinTaxEngine:
    return BuiltinTaxEngine(seller_country="IE")


assert len(EU_MEMBER_STATES) == 27


@dataclass
class RecordedStripe:
    """Serves queued (status, JSON) answers per (method, path) and records requests."""

    base: str
    answers: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def answer(
        self, method: str, path: str, payload: str | dict[str, Any], status: int = 200
    ) -> None:
        body = json.loads((PAYLOADS / payload).read_text()) if isinstance(payload, str) else payload
        self.answers.setdefault((method, path), []).append((status, body))

    def reset(self) -> None:
        self.answers.clear()
        self.requests.clear()


def _handler(state: RecordedStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else query
            is_json = self.headers.get("Content-Type", "").startswith("application/json")
            state.requests.append(
                (method, path, json.loads(raw) if is_json else dict(parse_qsl(raw)))
            )
            queued = state.answers.get((method, path))
            if queued:
                status, body = queued.pop(0)
            else:
                status, body = (
                    404,
                    {
                        "error": {
                            "type": "invalid_request_error",
                            "message": f"no recording for {method} {path}",
                        }
                    },
                )
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", "req_recorded")
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            self._serve("POST")

        def do_GET(self) -> None:
            self._serve("GET")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def recorded_stripe_server() -> Iterator[RecordedStripe]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state := RecordedStripe(base="")))
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def recorded_stripe(recorded_stripe_server: RecordedStripe) -> RecordedStripe:
    recorded_stripe_server.reset()
    return recorded_stripe_server
