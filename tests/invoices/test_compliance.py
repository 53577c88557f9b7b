"""The compliance ledger, and the auditor check: every invoice's tax recomputed from the
compliance records alone (recorded rate rows + recorded line records)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime

from sqlalchemy import Engine

from ledger.compliance import ComplianceLedger, RateRecord, TaxLineRecord
from ledger.invoices import DraftLine, InvoiceStore
from tax import (
    Address,
    BuiltinTaxEngine,
    ExemptionCertificate,
    Registration,
    TaxableLine,
    TaxBehavior,
    TaxCustomer,
    TaxType,
    VatCheckResult,
    load_rate_table,
)
from tests.invoices.conftest import REGISTRATIONS, T0, details_for, fresh, issue

PPM = 1_000_000


def half_up(numerator: int, denominator: int) -> int:
    q, r = divmod(abs(numerator), denominator)
    q += 2 * r >= denominator
    return q if numerator >= 0 else -q


def _matching_rates(rows: list[RateRecord], rec: TaxLineRecord, day: date) -> set[int]:
    country, _, region = rec.jurisdiction.partition("-")
    return {
        row.rate_ppm or 0
        for row in rows
        if row.kind == "rate"
        and row.country == country
        and (row.region == region or (not region and country == "CA"))
        and row.tax_type == rec.tax_type
        and row.in_force(day)
    }


def _taxable_ppm(rows: list[RateRecord], rec: TaxLineRecord, day: date) -> int:
    """The share of the net that is taxable: the state's SaaS share where the seller
    collects in the US (Texas taxes 80 %), nothing where SaaS is not taxable."""
    if rec.reason == "not_taxable":
        return 0
    if not rec.jurisdiction.startswith("US-") or rec.reason == "not_collecting":
        return PPM
    state = rec.jurisdiction.removeprefix("US-")
    (share,) = [
        row.taxable_ppm or 0
        for row in rows
        if row.kind == "saas_taxability" and row.region == state and row.in_force(day)
    ]
    return share


def _certificate_applies(
    rec: TaxLineRecord, certificates: Sequence[ExemptionCertificate], day: date
) -> bool:
    """A ``customer_exempt`` line names a recorded certificate of the customer, for the
    line's jurisdiction, valid on the tax point's day."""
    return any(
        cert.number in rec.detail
        and cert.jurisdiction == rec.jurisdiction
        and cert.valid_from <= day
        and (cert.valid_to is None or day <= cert.valid_to)
        for cert in certificates
    )


def recompute(
    records: list[TaxLineRecord],
    rows: list[RateRecord],
    certificates: Mapping[str, Sequence[ExemptionCertificate]] | None = None,
) -> dict[str, tuple[int, int]]:
    """(net, tax) per invoice, from nothing but the records; ``certificates`` are the
    recorded certificates of each invoice's customer, by invoice id."""
    by_line: dict[tuple[str, str], list[TaxLineRecord]] = defaultdict(list)
    for rec in records:
        by_line[(rec.document_id, rec.line_id)].append(rec)
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (invoice_id, _line), comps in by_line.items():
        comps.sort(key=lambda r: r.component_index)
        day = comps[0].tax_point_at.date()
        gross = comps[0].line_amount
        shares, rates = [], []
        for rec in comps:
            share = _taxable_ppm(rows, rec, day)
            if rec.reason == "standard_rated":
                assert rec.rate_ppm in _matching_rates(rows, rec, day), rec
            elif rec.reason == "customer_exempt":
                held = (certificates or {}).get(invoice_id, ())
                assert rec.rate_ppm == 0 and _certificate_applies(rec, held, day), rec
            else:
                assert rec.rate_ppm == 0, rec
            shares.append(share)
            rates.append(rec.rate_ppm)
        if comps[0].tax_behavior == "inclusive":
            effective = [half_up(r * s, PPM) for r, s in zip(rates, shares, strict=True)]
            taxes = [half_up(gross * e, PPM + sum(effective)) for e in effective]
            net = gross - sum(taxes)
        else:
            net = gross
            taxes = [
                half_up(half_up(net * s, PPM) * r, PPM) for r, s in zip(rates, shares, strict=True)
            ]
        for rec, share, tax in zip(comps, shares, taxes, strict=True):
            assert rec.line_net == net, rec
            assert rec.taxable_amount == half_up(net * share, PPM), rec
            assert rec.tax_amount == tax, rec
        totals[invoice_id][0] += net
        totals[invoice_id][1] += sum(taxes)
    return {k: (v[0], v[1]) for k, v in totals.items()}


def test_auditor_recomputes_every_invoice_from_the_records(engine: Engine) -> None:
    store = InvoiceStore(engine)
    lines = [
        DraftLine("a", "Plan", 12_345),
        DraftLine("b", "Seats", 6_789, TaxBehavior.INCLUSIVE),
    ]
    compliance = ComplianceLedger(engine)
    texas_cert = ExemptionCertificate("US-TX", "EX-1", date(2025, 1, 1), None, "doc://ex-1")
    expired = ExemptionCertificate("US-TX", "EX-2", date(2025, 1, 1), date(2025, 12, 31), "doc://2")
    exempt, lapsed = fresh("cus"), fresh("cus")
    compliance.record_exemption_certificate(exempt, texas_cert, at=T0)
    compliance.record_exemption_certificate(lapsed, expired, at=T0)
    cases = [
        dict(address=Address("DE")),
        dict(address=Address("DE"), at=datetime(2020, 8, 1, tzinfo=UTC)),
        dict(address=Address("FR"), vat_id="FR40303265045"),
        dict(address=Address("CA", "QC"), currency="CAD"),
        dict(address=Address("US", "TX"), currency="USD"),
        dict(address=Address("US", "TX"), currency="USD", customer_id=exempt),
        dict(address=Address("US", "TX"), currency="USD", customer_id=lapsed),
        dict(address=Address("US", "NY"), currency="USD"),
        dict(address=Address("US", "CA"), currency="USD"),
        dict(address=Address("JP"), currency="JPY"),
        dict(address=Address("BR"), currency="BRL"),
    ]
    invoices = [
        issue(
            store,
            lines,
            # The certificates the quote uses are those the compliance ledger holds.
            certificates=compliance.exemption_certificates(
                str(case.get("customer_id", "")), known_at=T0
            ),
            **case,  # type: ignore[arg-type]
        )
        for case in cases
    ]
    held = {i.id: compliance.exemption_certificates(i.customer_id) for i in invoices}
    records = [
        rec for invoice in invoices for rec in compliance.tax_line_records(document_id=invoice.id)
    ]
    versions = {rec.rate_table_version for rec in records}
    assert versions == {load_rate_table().version}
    rows = compliance.rate_rows(versions.pop())
    recomputed = recompute(records, rows, held)
    for invoice in invoices:
        assert recomputed[invoice.id] == (invoice.subtotal, invoice.tax_total), invoice.number
    assert any(invoice.tax_total > 0 for invoice in invoices)
    by_invoice = {rec.invoice_id: rec.reason for rec in records if rec.jurisdiction == "US-TX"}
    assert by_invoice[invoices[5].id] == "customer_exempt"
    assert by_invoice[invoices[6].id] == "standard_rated", "the expired certificate is not used"
    # Without the certificate records the exempt invoice cannot be accounted for.
    try:
        recompute(records, rows)
    except AssertionError:
        pass
    else:
        raise AssertionError("an exempt line passed without a recorded certificate")


def test_rate_table_version_is_recorded_once_with_its_rows(engine: Engine) -> None:
    store = InvoiceStore(engine)
    issue(store, [DraftLine("a", "Plan", 100)])
    compliance = ComplianceLedger(engine)
    version = load_rate_table().version
    assert compliance.record_rate_table(at=T0) == version
    recorded = [v for v in compliance.rate_table_versions() if v[0] == version]
    assert len(recorded) == 1
    _, row_count, summary = recorded[0]
    assert row_count == len(compliance.rate_rows(version)) > 100
    assert summary["files"] == ["rates.csv", "us_saas_taxability.csv"] and summary["sources"]


def test_registrations_are_effective_dated_and_superseded(engine: Engine) -> None:
    compliance = ComplianceLedger(engine)
    number = fresh("reg")
    reg = Registration("XK", TaxType.VAT, date(2024, 1, 1), None, number)
    compliance.record_registration(reg, at=T0, note="registered")
    mine = [r for r in compliance.registrations() if r.registration_number == number]
    assert mine == [reg]
    ended = Registration("XK", TaxType.VAT, date(2024, 1, 1), date(2025, 6, 30), number)
    compliance.record_registration(ended, at=T0, note="deregistered")
    assert [r for r in compliance.registrations() if r.registration_number == number] == [ended]
    in_force = compliance.registrations_in_force(date(2025, 1, 1))
    assert ended in in_force
    assert ended not in compliance.registrations_in_force(date(2025, 7, 1))
    # What was known before the change is still readable.
    before = compliance.registrations(as_recorded_at=datetime(2000, 1, 1, tzinfo=UTC))
    assert all(r.registration_number != number for r in before)


def test_registrations_from_the_store_drive_the_engine(engine: Engine) -> None:
    compliance = ComplianceLedger(engine)
    for reg in REGISTRATIONS:
        compliance.record_registration(reg, at=T0)
    day = date(2026, 3, 1)
    quote = BuiltinTaxEngine().quote(
        [TaxableLine("a", 1_000, "USD")],
        TaxCustomer(Address("US", "NY")),
        compliance.registrations_in_force(day),
        T0,
    )
    assert quote.tax_total == 40


def test_exemption_certificates_for_a_customer(engine: Engine) -> None:
    compliance = ComplianceLedger(engine)
    customer = fresh("cus")
    cert = ExemptionCertificate("US-TX", "EX-9", date(2025, 1, 1), None, "doc://9")
    compliance.record_exemption_certificate(customer, cert, at=T0)
    assert compliance.exemption_certificates(customer) == (cert,)
    revoked = ExemptionCertificate("US-TX", "EX-9", date(2025, 1, 1), date(2025, 12, 31), "doc://9")
    compliance.record_exemption_certificate(customer, revoked, at=T0)
    assert compliance.exemption_certificates(customer) == (revoked,)
    assert compliance.exemption_certificates(customer, on=date(2026, 1, 1)) == ()
    assert compliance.exemption_certificates(fresh("cus")) == ()


class _Vies:
    def check(self, vat_id: str, at: datetime) -> VatCheckResult:
        return VatCheckResult(vat_id, True, at, "vies", consultation_number="WAPIAAAA1")


def test_vat_checks_are_recorded(engine: Engine) -> None:
    store = InvoiceStore(engine)
    compliance = ComplianceLedger(engine)
    customer = fresh("cus")
    draft = store.create_draft(
        key=fresh("inv"),
        customer_id=customer,
        subscription_id=None,
        currency="EUR",
        lines=[DraftLine("a", "Plan", 1_000)],
    )
    tax_engine = BuiltinTaxEngine(seller_country="IE", vat_checker=_Vies())
    quote = tax_engine.quote(
        [TaxableLine("a", 1_000, "EUR")],
        TaxCustomer(Address("DE"), vat_id="DE136695976"),
        REGISTRATIONS,
        T0,
    )
    store.finalize(
        draft.id, quote=quote, customer_tax=details_for(Address("DE"), "DE136695976"), at=T0
    )
    checks = compliance.vat_checks(customer)
    assert {(c.source, c.valid) for c in checks} == {("vies", True), ("stdnum", True)}
    assert any(c.consultation_number == "WAPIAAAA1" for c in checks)
    bad = compliance.check_vat_id("DE136695977", at=T0, customer_id=customer)
    assert not bad.valid and compliance.vat_checks(customer)[-1] == bad
