"""Registrations, nexus changes and exemption certificates recorded for ops: appended
with the actor and listed; every refusal names its code and writes nothing."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine, text

from ledger.compliance import ComplianceLedger
from ledger.tax_records import TaxRecordRefused, TaxRecords
from tax import ExemptionCertificate, Registration, TaxType
from tests.invoices.conftest import T0, fresh

TABLES = ("compliance_registrations", "compliance_exemption_certificates", "compliance_nexus")


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def refused(engine: Engine, code: str, work: object) -> None:
    before = counts(engine)
    with pytest.raises(TaxRecordRefused) as err:
        work()  # type: ignore[operator]
    assert err.value.code == code
    assert counts(engine) == before, "a refused request wrote something"


def test_a_registration_is_recorded_with_its_actor_and_listed(engine: Engine) -> None:
    records = TaxRecords(engine)
    number = fresh("reg")
    reg = Registration("us-wa", TaxType.SALES_TAX, date(2026, 1, 1), None, number)
    recorded = records.record_registration(reg, actor="ops@example.test", at=T0, note="nexus")
    assert recorded.registration.jurisdiction == "US-WA"
    assert (recorded.actor, recorded.note, recorded.recorded_at) == (
        "ops@example.test",
        "nexus",
        T0,
    )
    listed = [r for r in records.registrations(jurisdiction="US-WA") if r.id == recorded.id]
    assert listed == [recorded]
    # The engine's source sees it too.
    assert recorded.registration in ComplianceLedger(engine).registrations()
    # Recording the same number again (now with an end) supersedes it: no overlap.
    ended = Registration("US-WA", TaxType.SALES_TAX, date(2026, 1, 1), date(2026, 6, 30), number)
    records.record_registration(ended, actor="ops@example.test", at=T0)
    assert ended in ComplianceLedger(engine).registrations()
    # Another registration starting after the end does not overlap either.
    after = Registration("US-WA", TaxType.SALES_TAX, date(2026, 7, 1), None, fresh("reg"))
    records.record_registration(after, actor="ops@example.test", at=T0)


def test_registration_refusals_write_nothing(engine: Engine) -> None:
    records = TaxRecords(engine)
    existing = Registration("US-VT", TaxType.SALES_TAX, date(2026, 1, 1), None, fresh("reg"))
    records.record_registration(existing, actor="ops", at=T0)
    overlapping = Registration("US-VT", None, date(2026, 5, 1), None, fresh("reg"))
    refused(
        engine,
        "overlapping_registration",
        lambda: records.record_registration(overlapping, actor="ops", at=T0),
    )
    backwards = Registration("US-VT", None, date(2026, 5, 1), date(2026, 4, 30), fresh("reg"))
    refused(
        engine,
        "invalid_date_range",
        lambda: records.record_registration(backwards, actor="ops", at=T0),
    )
    for code in ("XX", "US-XX", "CA-ZZ", "DE-BY", "EUR", ""):
        unknown = Registration(code, None, date(2026, 1, 1), None, fresh("reg"))
        refused(
            engine,
            "unknown_jurisdiction",
            lambda unknown=unknown: records.record_registration(unknown, actor="ops", at=T0),
        )
    fine = Registration("US-ME", None, date(2026, 1, 1), None, fresh("reg"))
    refused(engine, "invalid_field", lambda: records.record_registration(fine, actor=" ", at=T0))
    blank = Registration("US-ME", None, date(2026, 1, 1), None, "  ")
    refused(engine, "invalid_field", lambda: records.record_registration(blank, actor="o", at=T0))


def test_a_certificate_is_recorded_with_its_actor_and_listed(engine: Engine) -> None:
    records = TaxRecords(engine)
    customer = fresh("cus")
    cert = ExemptionCertificate("us-tx", "EX-7", date(2026, 1, 1), None, "doc://7")
    recorded = records.record_certificate(customer, cert, actor="ops@example.test", at=T0)
    assert recorded.certificate.jurisdiction == "US-TX" and recorded.actor == "ops@example.test"
    assert records.certificates(customer_id=customer) == [recorded]
    assert ComplianceLedger(engine).exemption_certificates(customer) == (recorded.certificate,)


def test_certificate_refusals_write_nothing(engine: Engine) -> None:
    records = TaxRecords(engine)
    customer = fresh("cus")
    for jurisdiction, start, end, code in [
        ("US-TX", date(2026, 2, 1), date(2026, 1, 31), "invalid_date_range"),
        ("ZZ", date(2026, 1, 1), None, "unknown_jurisdiction"),
        ("EU", date(2026, 1, 1), None, "unknown_jurisdiction"),  # issued per state, not EU
    ]:
        cert = ExemptionCertificate(jurisdiction, "EX-1", start, end, "doc://1")
        refused(
            engine,
            code,
            lambda cert=cert: records.record_certificate(customer, cert, actor="ops", at=T0),
        )
    cert = ExemptionCertificate("US-TX", "EX-1", date(2026, 1, 1), None, "")
    refused(
        engine,
        "invalid_field",
        lambda: records.record_certificate(customer, cert, actor="o", at=T0),
    )
    assert records.certificates(customer_id=customer) == []


def test_nexus_changes_are_recorded_and_refused(engine: Engine) -> None:
    records = TaxRecords(engine)
    recorded = records.record_nexus(
        "US-CO",
        basis="economic",
        valid_from=date(2026, 3, 1),
        valid_to=None,
        actor="ops",
        at=T0,
        note="crossed USD 100,000",
    )
    assert recorded in records.nexus(jurisdiction="US-CO")
    assert recorded.in_force(date(2026, 3, 1)) and not recorded.in_force(date(2026, 2, 28))
    cases = [
        ("US-CO", "economic", date(2026, 3, 1), date(2026, 2, 1), "invalid_date_range"),
        ("US-QQ", "economic", date(2026, 3, 1), None, "unknown_jurisdiction"),
        ("US-CO", "vibes", date(2026, 3, 1), None, "invalid_field"),
    ]
    for code, basis, start, end, expected in cases:
        refused(
            engine,
            expected,
            lambda code=code, basis=basis, start=start, end=end: records.record_nexus(
                code, basis=basis, valid_from=start, valid_to=end, actor="ops", at=T0
            ),
        )


def test_nexus_and_note_actor_rows_are_append_only(engine: Engine) -> None:
    from tests.invoices.test_immutability import refused as statement_refused

    TaxRecords(engine).record_nexus(
        "US-KY", basis="physical", valid_from=date(2026, 1, 1), valid_to=None, actor="o", at=T0
    )
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO invoice_note_actors (note_id, invoice_id, actor, recorded_at) "
                "VALUES (:n, 'inv', 'o', :at)"
            ),
            {"n": fresh("cn"), "at": T0},
        )
    for table in ("compliance_nexus", "invoice_note_actors"):
        statement_refused(engine, f"UPDATE {table} SET actor = 'someone else'")
        statement_refused(engine, f"DELETE FROM {table}")
