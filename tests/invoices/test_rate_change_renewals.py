"""A rate change inside a paid period is carried into the next cycle: the renewal's
billing step issues a prorated note on the earlier invoice (debit if the rate rose,
credit if it fell) for the exact seconds after the change, where the jurisdiction's
rule is ``adjust``; a ``keep`` jurisdiction gets none. The next cycle is at the new rate.

The earlier invoice is issued by a worker holding a rate table that did not yet know
the change (as a table published before the change was announced), the renewal by one
holding the packaged table, which does: the change is found by comparing the two."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from activities.billing import (
    BillingActivities,
    InvoiceLineInput,
    IssueInvoiceRequest,
    NoCertificates,
)
from billing.catalog import BillingAddress, CustomerProfile, load_catalog
from ledger.compliance import ComplianceLedger, packaged_rate_files
from ledger.invoices import InvoiceStore
from ledger.rate_change_notes import RateChangePolicy
from tax import BuiltinTaxEngine
from tax.rate_changes import load_rate_change_rules
from tax.rates import RateTable, load_rate_table, rate_table_from_text
from tests.invoices.conftest import REGISTRATIONS, fresh


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def table_without_change(country: str, old_row_start: str, new_row_start: str) -> RateTable:
    """The packaged table as it was before ``country``'s change was published: the old
    row open-ended, the new one absent."""
    rates, us_saas = packaged_rate_files()
    kept = []
    for line in rates.splitlines(keepends=True):
        fields = line.split(",")
        if fields[0] == country and fields[4] == new_row_start:
            continue
        if fields[0] == country and fields[4] == old_row_start:
            fields[5] = ""
            line = ",".join(fields)
        kept.append(line)
    return rate_table_from_text("".join(kept), us_saas)


def activities(engine: Engine, table: RateTable) -> BillingActivities:
    return BillingActivities(
        invoices=InvoiceStore(engine),
        tax_engine=BuiltinTaxEngine(seller_country="IE", rate_table=table),
        gateway=None,  # type: ignore[arg-type]  # nothing here charges
        registrations=REGISTRATIONS,
        catalog=load_catalog(),
        certificates=NoCertificates(),
        rate_changes=RateChangePolicy(table, load_rate_change_rules()),
    )


def customer(country: str) -> CustomerProfile:
    return CustomerProfile(
        customer_id=fresh("cus"),
        email="ada@example.test",
        name="Ada",
        address=BillingAddress(
            country=country, state=None, postal_code="10111", city="C", line1="1 Road"
        ),
    )


def period_request(
    who: CustomerProfile, subscription: str, plan: str, amount: int, start: datetime, end: datetime
) -> IssueInvoiceRequest:
    return IssueInvoiceRequest(
        key=f"sub:{subscription}:period:{start.isoformat()}",
        subscription_id=subscription,
        customer=who,
        currency="EUR",
        lines=[
            InvoiceLineInput(
                line_id="plan",
                description=plan,
                amount=amount,
                tax_inclusive=False,
                kind="subscription",
                plan_id=plan,
                period_start=start,
                period_end=end,
            )
        ],
        period_start=start,
        period_end=end,
        at=start,
    )


async def renew_across(
    engine: Engine,
    before: RateTable,
    who: CustomerProfile,
    plan: str,
    amount: int,
    periods: tuple[datetime, datetime, datetime],
) -> tuple[str, str]:
    """Bill a paid period with the old table and the next one with the packaged table;
    (first invoice id, renewal invoice id)."""
    start, boundary, end = periods
    subscription = fresh("sub")
    store = InvoiceStore(engine)
    first = await activities(engine, before).issue_invoice(
        period_request(who, subscription, plan, amount, start, boundary)
    )
    store.mark_paid(first.invoice_id, payment_ref=fresh("pi"), amount=first.total, at=start)
    renewal = period_request(who, subscription, plan, amount, boundary, end)
    after = activities(engine, load_rate_table())
    second = await after.issue_invoice(renewal)
    again = await after.issue_invoice(renewal)  # a retried renewal finds the same note
    assert again.invoice_id == second.invoice_id
    return first.invoice_id, second.invoice_id


async def test_estonia_monthly_period_gets_a_debit_note_for_the_days_at_24(engine: Engine) -> None:
    before = table_without_change("EE", "2024-01-01", "2025-07-01")
    periods = (utc(2025, 6, 15), utc(2025, 7, 15), utc(2025, 8, 15))
    first_id, renewal_id = await renew_across(
        engine, before, customer("EE"), "pro-monthly", 2_900, periods
    )
    store = InvoiceStore(engine)
    first = store.get(first_id)
    assert first.tax_total == 638, "22 % frozen on the invoice"
    (note,) = store.notes_for_invoice(first_id)
    # 29.00 EUR x (24 % - 22 %) x 14 days (2025-07-01 to 07-15) / 30 days, half-up:
    # 2900 * 20000 * 1_209_600 / (1_000_000 * 2_592_000) = 27.07 -> 0.27 EUR.
    assert (note.purpose, note.invoice_id, note.subtotal, note.tax_total, note.total) == (
        "rate_change",
        first_id,
        0,
        27,
        27,
    )
    assert note.id.startswith("dn_"), "the rate rose: a debit note"
    assert "22% to 24%" in note.reason and first.number is not None
    assert first.number in note.reason
    renewal = store.get(renewal_id)
    assert renewal.tax_total == 696, "the next cycle at 24 %"
    records = ComplianceLedger(engine).tax_line_records(document_id=note.id)
    assert [(r.document_kind, r.jurisdiction, r.rate_ppm, r.tax_amount) for r in records] == [
        ("debit_note", "EE", 240_000, 27)
    ]


async def test_estonia_yearly_period_spanning_the_change(engine: Engine) -> None:
    before = table_without_change("EE", "2024-01-01", "2025-07-01")
    periods = (utc(2025, 3, 1), utc(2026, 3, 1), utc(2027, 3, 1))
    first_id, renewal_id = await renew_across(
        engine, before, customer("EE"), "pro-yearly", 29_000, periods
    )
    store = InvoiceStore(engine)
    (note,) = store.notes_for_invoice(first_id)
    # 290.00 EUR x 2 % x 243 days (2025-07-01 to 2026-03-01) / 365 days = 3.8614 -> 3.86.
    assert (note.tax_total, note.total) == (386, 386)
    assert store.get(first_id).tax_total == 6_380
    assert store.get(renewal_id).tax_total == 6_960


async def test_a_rate_that_fell_gives_a_credit_note(engine: Engine) -> None:
    rates, us_saas = packaged_rate_files()
    # A made-up cut (22 % to 20 % from 2025-07-01), published after the June invoice.
    fell = rates.replace("EE,,vat,24,2025-07-01,", "EE,,vat,20,2025-07-01,")
    assert fell != rates
    before = table_without_change("EE", "2024-01-01", "2025-07-01")
    who = customer("EE")
    subscription = fresh("sub")
    store = InvoiceStore(engine)
    start, boundary, end = utc(2025, 6, 15), utc(2025, 7, 15), utc(2025, 8, 15)
    first = await activities(engine, before).issue_invoice(
        period_request(who, subscription, "pro-monthly", 2_900, start, boundary)
    )
    store.mark_paid(first.invoice_id, payment_ref=fresh("pi"), amount=first.total, at=start)
    after = activities(engine, rate_table_from_text(fell, us_saas))
    renewal = await after.issue_invoice(
        period_request(who, subscription, "pro-monthly", 2_900, boundary, end)
    )
    (note,) = store.notes_for_invoice(first.invoice_id)
    assert note.id.startswith("cn_") and (note.tax_total, note.total) == (27, 27)
    assert note.customer_credit_amount == 27, "the invoice was paid: the credit is the customer's"
    assert store.get(renewal.invoice_id).tax_total == 580


async def test_a_keep_jurisdiction_gets_no_note(engine: Engine) -> None:
    # Finland 24 % to 25.5 % on 2024-09-01; its rule is keep.
    before = table_without_change("FI", "2020-01-01", "2024-09-01")
    periods = (utc(2024, 8, 15), utc(2024, 9, 15), utc(2024, 10, 15))
    first_id, renewal_id = await renew_across(
        engine, before, customer("FI"), "pro-monthly", 2_900, periods
    )
    store = InvoiceStore(engine)
    assert store.notes_for_invoice(first_id) == []
    assert store.get(first_id).tax_total == 696
    assert store.get(renewal_id).tax_total == 740, "25.5 % of 29.00, half-up"


async def test_no_change_inside_the_period_gives_no_note(engine: Engine) -> None:
    table = load_rate_table()
    periods = (utc(2025, 8, 15), utc(2025, 9, 15), utc(2025, 10, 15))
    first_id, _ = await renew_across(engine, table, customer("EE"), "pro-monthly", 2_900, periods)
    assert InvoiceStore(engine).notes_for_invoice(first_id) == []


def test_only_periods_near_an_adjusted_change_read_invoices() -> None:
    policy = RateChangePolicy(load_rate_table(), load_rate_change_rules())
    assert policy.rules.adjusting() == ["EE"]
    assert policy.may_apply(utc(2025, 7, 15)) and policy.may_apply(utc(2026, 3, 1))
    assert not policy.may_apply(utc(2025, 7, 1)), "a period ending at the change is before it"
    assert not policy.may_apply(utc(2026, 12, 1)), "no adjusted change in the last 400 days"
