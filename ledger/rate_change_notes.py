"""Carry a rate change inside an invoiced period into the next cycle.

When a subscription's next period is billed, each invoice of the period that just
ended (the period invoice and any plan change invoices ending with it, open or paid)
is compared with the rate table the worker holds now (``tax.rate_changes``). Where a
standard-rated component's rate changed strictly inside that invoice's period and the
jurisdiction's rule is ``adjust``, ``InvoiceStore.rate_change_adjustment`` issues one
note referencing the invoice: a debit note if the rate rose, a credit note if it fell,
for the exact seconds from the change to the period end, with the invoice's half-up
rounding per component. Its key names the invoice and the change, so a retried
renewal finds it. ``keep`` jurisdictions get no note.
"""

from __future__ import annotations

import bisect
import logging
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import select

from ledger.db import READ_ONLY
from ledger.invoices import (
    CreditExceedsRemaining,
    CreditNoteView,
    DebitNoteView,
    InvoiceStateError,
    InvoiceStore,
    InvoiceView,
)
from ledger.invoices.tables import invoices as _invoices
from tax import QuoteLine, TaxComponent, TaxQuote, TaxReason, TaxType
from tax.rate_changes import RateChange, RateChangeRule, RateChangeRules, first_rate_change
from tax.rates import RateTable
from tax.rounding import ROUNDING_RULE

log = logging.getLogger(__name__)


# No billing period is longer than this (a year, with room for a month-end anchor).
LONGEST_PERIOD = timedelta(days=400)


class RateChangePolicy:
    """The worker's rate table and the per-jurisdiction rules, and when a period can
    hold a change at all: the renewal of a period that no ``adjust`` jurisdiction's
    rate row starts inside skips the invoice reads (almost every renewal)."""

    def __init__(self, table: RateTable, rules: RateChangeRules) -> None:
        self.table = table
        self.rules = rules
        starts: set[datetime] = set()
        self._everywhere = False
        for jurisdiction in rules.adjusting():
            country, _, region = jurisdiction.partition("-")
            if not region and country in ("US", "CA"):
                self._everywhere = True  # a country-wide rule over per-region rows
            for row in table.rows_for(country, region):
                starts.add(datetime.combine(row.valid_from, time(), tzinfo=UTC))
        self._starts = sorted(starts)

    def may_apply(self, period_end: datetime) -> bool:
        """Whether a period ending at ``period_end`` can contain an adjusted change."""
        if self._everywhere:
            return True
        i = bisect.bisect_right(self._starts, period_end - LONGEST_PERIOD)
        return i < len(self._starts) and self._starts[i] < period_end


def invoices_ending_at(store: InvoiceStore, subscription_id: str, end: datetime) -> list[str]:
    """The subscription's open or paid invoices whose period ends at ``end``."""
    query = (
        select(_invoices.c.id)
        .where(
            _invoices.c.subscription_id == subscription_id,
            _invoices.c.period_end == end,
            _invoices.c.status.in_(("open", "paid")),
        )
        .order_by(_invoices.c.finalized_at, _invoices.c.id)
    )
    with store.engine.connect().execution_options(**READ_ONLY) as conn:
        return [str(row) for row in conn.execute(query).scalars()]


def _change_of(invoice: InvoiceView, policy: RateChangePolicy) -> RateChange | None:
    """The earliest change, among the invoice's adjustable components, inside its period."""
    if invoice.period_start is None or invoice.period_end is None:
        return None
    place = invoice.tax_jurisdiction or ""
    found: list[RateChange] = []
    for line in invoice.lines:
        for c in line.components:
            if c.reason is not TaxReason.STANDARD_RATED or c.tax_type is None:
                continue
            if policy.rules.rule_for(c.jurisdiction).rule is not RateChangeRule.ADJUST:
                continue
            change = first_rate_change(
                policy.table,
                place,
                TaxType(c.tax_type),
                c.rate_ppm,
                invoice.period_start,
                invoice.period_end,
            )
            if change is not None:
                found.append(change)
    return min(found, key=lambda ch: ch.at) if found else None


def _new_quote(invoice: InvoiceView, policy: RateChangePolicy, change: RateChange) -> TaxQuote:
    """The invoice's lines with the rates in force after the change, for the store's
    arithmetic; components that do not change (or whose rule is ``keep``) keep theirs."""
    place = invoice.tax_jurisdiction or ""

    def rate_after(c: TaxComponent) -> int:
        if (
            c.reason is not TaxReason.STANDARD_RATED
            or c.tax_type is None
            or policy.rules.rule_for(c.jurisdiction).rule is not RateChangeRule.ADJUST
        ):
            return c.rate_ppm
        country, _, region = place.partition("-")
        rows = policy.table.rates_in_force(country, region, change.at.date())
        matching = [r for r in rows if r.tax_type is TaxType(c.tax_type)]
        return matching[0].rate_ppm if len(matching) == 1 else c.rate_ppm

    lines = tuple(
        QuoteLine(
            line_id=line.line_id,
            amount=line.amount,
            tax_behavior=line.tax_behavior,
            amount_excluding_tax=line.amount_excluding_tax or 0,
            tax_amount=0,
            amount_including_tax=line.amount_excluding_tax or 0,
            components=tuple(
                TaxComponent(
                    jurisdiction=c.jurisdiction,
                    tax_type=c.tax_type,
                    rate_ppm=rate_after(c),
                    taxable_amount=c.taxable_amount,
                    tax_amount=0,
                    reason=c.reason,
                )
                for c in line.components
            ),
        )
        for line in invoice.lines
    )
    return TaxQuote(
        engine="rate_change",
        at=change.at,
        currency=invoice.currency,
        currency_exponent=0,
        jurisdiction=place,
        lines=lines,
        subtotal_excluding_tax=invoice.subtotal,
        tax_total=0,
        total_including_tax=invoice.subtotal,
        rate_table_version=policy.table.version,
        rounding_rule=ROUNDING_RULE,
        evidence=(),
    )


def carry_rate_changes(
    store: InvoiceStore,
    policy: RateChangePolicy,
    *,
    subscription_id: str,
    period_start: datetime,
    at: datetime,
) -> list[CreditNoteView | DebitNoteView]:
    """Adjust each invoice of the period ending at ``period_start`` (the new period's
    start) for a rate change inside it; the notes issued (or found, on a retry)."""
    notes: list[CreditNoteView | DebitNoteView] = []
    if not policy.may_apply(period_start):
        return notes
    for invoice_id in invoices_ending_at(store, subscription_id, period_start):
        invoice = store.get(invoice_id)
        change = _change_of(invoice, policy)
        if change is None:
            continue
        assert invoice.period_start is not None and invoice.period_end is not None
        reason = (
            f"tax rate change on {change.at.date().isoformat()}: "
            f"{change.old_rate_ppm / 10_000:g}% to {change.new_rate_ppm / 10_000:g}% for the "
            f"rest of the period of invoice {invoice.number} (rate table "
            f"{invoice.rate_table_version} to {policy.table.version}; {change.row.source_url})"
        )
        try:
            note = store.rate_change_adjustment(
                invoice_id,
                new_quote=_new_quote(invoice, policy, change),
                change_at=change.at,
                period_start=invoice.period_start,
                period_end=invoice.period_end,
                key=f"rate_change:{invoice_id}:{change.at.isoformat()}",
                at=at,
                reason=reason,
            )
        except (CreditExceedsRemaining, InvoiceStateError) as err:
            # Credited or voided meanwhile: nothing is left to adjust.
            log.warning("rate change note on %s not issued: %s", invoice_id, err)
            continue
        if note is not None:
            notes.append(note)
    return notes
