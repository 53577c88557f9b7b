"""Engine selection by setting name, and the async wrapper."""

from __future__ import annotations

import asyncio

from activities.tax_engines import make_engine
from tax import BuiltinTaxEngine, TaxEngine, aquote
from tests.tax.conftest import at, customer, line


def test_builtin_is_selected_by_name_with_its_deps(registrations):
    engine = make_engine("builtin", seller_country="de")
    assert isinstance(engine, BuiltinTaxEngine)
    assert engine.seller_country == "DE"
    protocol_typed: TaxEngine = engine
    assert protocol_typed.name == "builtin"


def test_aquote_returns_what_quote_returns(registrations):
    engine = make_engine("builtin", seller_country="IE")
    args = ([line(10_000, "USD")], customer("US", "WA"), registrations, at("2026-01-10"))
    assert asyncio.run(aquote(engine, *args)) == engine.quote(*args)


def test_quote_round_trips_through_json_for_persistence(engine, registrations):
    from pydantic import TypeAdapter

    from tax import ExemptionCertificate, TaxQuote
    from tests.tax.conftest import reg

    cert = ExemptionCertificate("CA-BC", "PST-9", reg("CA").valid_from, None, "doc")
    quote = engine.quote(
        [line(10_000, "CAD")],
        customer("CA", "BC", exemption_certificates=(cert,)),
        registrations,
        at("2026-01-10"),
    )
    adapter = TypeAdapter(TaxQuote)
    assert adapter.validate_json(adapter.dump_json(quote)) == quote
