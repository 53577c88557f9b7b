"""Input checks of the invoice store: they run before anything is written."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ledger.invoices.errors import InvalidInvoiceInput, QuoteMismatch
from ledger.invoices.types import CustomerTaxDetails, DraftLine, LineKind, NoteLine
from tax import TaxBehavior, TaxQuote

MAX_KEY_CHARS = 200


def check_key(key: object) -> None:
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_CHARS:
        raise InvalidInvoiceInput(f"key must be 1..{MAX_KEY_CHARS} characters")


def check_text(value: object, what: str, limit: int) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise InvalidInvoiceInput(f"{what} must be 1..{limit} characters")


def check_positive(amount: object, what: str) -> None:
    if type(amount) is not int or amount <= 0:
        raise InvalidInvoiceInput(f"{what} must be a positive int of minor units, got {amount!r}")


def aware(value: object, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInvoiceInput(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def aware_or_none(value: datetime | None, what: str) -> datetime | None:
    return None if value is None else aware(value, what)


def check_draft_lines(lines: Sequence[DraftLine]) -> None:
    if not lines:
        raise InvalidInvoiceInput("an invoice needs at least one line")
    seen: set[str] = set()
    for line in lines:
        if not isinstance(line, DraftLine):
            raise InvalidInvoiceInput(f"lines must be DraftLine, got {line!r}")
        check_text(line.line_id, "line_id", 100)
        check_text(line.description, "description", 500)
        if line.line_id in seen:
            raise InvalidInvoiceInput(f"line id {line.line_id!r} appears twice")
        seen.add(line.line_id)
        if type(line.amount) is not int:
            raise InvalidInvoiceInput(f"line {line.line_id!r}: amount must be an int")
        if abs(line.amount) > 10**15:
            raise InvalidInvoiceInput(f"line {line.line_id!r}: amount out of range")
        if line.kind not in {k.value for k in LineKind}:
            raise InvalidInvoiceInput(f"line {line.line_id!r}: unknown kind {line.kind!r}")
        if line.tax_behavior not in {b.value for b in TaxBehavior}:
            raise InvalidInvoiceInput(f"line {line.line_id!r}: unknown tax behavior")
        if line.plan_id is not None:
            check_text(line.plan_id, "plan_id", 200)
        start = aware_or_none(line.period_start, "line period_start")
        end = aware_or_none(line.period_end, "line period_end")
        if start and end and end <= start:
            raise InvalidInvoiceInput(f"line {line.line_id!r}: period_end before period_start")


def check_note_lines(lines: Sequence[NoteLine]) -> list[tuple[str, int]]:
    if not lines:
        raise InvalidInvoiceInput("a note needs at least one line")
    out: list[tuple[str, int]] = []
    for line in lines:
        if not isinstance(line, NoteLine):
            raise InvalidInvoiceInput(f"lines must be NoteLine, got {line!r}")
        check_text(line.invoice_line_id, "invoice_line_id", 100)
        check_positive(line.amount, f"line {line.invoice_line_id!r} amount")
        if any(line.invoice_line_id == seen for seen, _ in out):
            raise InvalidInvoiceInput(f"line {line.invoice_line_id!r} appears twice")
        out.append((line.invoice_line_id, line.amount))
    return out


def check_customer_tax(details: object) -> None:
    if not isinstance(details, CustomerTaxDetails):
        raise InvalidInvoiceInput("customer_tax must be CustomerTaxDetails")
    if not isinstance(details.country, str) or len(details.country) != 2:
        raise InvalidInvoiceInput(f"customer country {details.country!r} is not alpha-2")


def check_quote(quote: TaxQuote, currency: str, lines: Sequence[Any]) -> None:
    if not isinstance(quote, TaxQuote):
        raise QuoteMismatch("quote must be a tax.TaxQuote")
    if quote.currency != currency:
        raise QuoteMismatch(f"quote in {quote.currency}, invoice in {currency}")
    quoted = [(q.line_id, q.amount, q.tax_behavior.value) for q in quote.lines]
    drafted = [(line.line_id, int(line.amount), line.tax_behavior) for line in lines]
    if quoted != drafted:
        raise QuoteMismatch("the quote's lines differ from the draft's (ids, amounts or behavior)")
    for q in quote.lines:
        if q.amount_excluding_tax + q.tax_amount != q.amount_including_tax or q.tax_amount != sum(
            c.tax_amount for c in q.components
        ):
            raise QuoteMismatch(f"quote line {q.line_id!r} does not add up")
    if (
        quote.subtotal_excluding_tax != sum(q.amount_excluding_tax for q in quote.lines)
        or quote.tax_total != sum(q.tax_amount for q in quote.lines)
        or quote.total_including_tax != quote.subtotal_excluding_tax + quote.tax_total
    ):
        raise QuoteMismatch("the quote's totals do not add up")


def line_signature(rows: Sequence[Any]) -> list[tuple[Any, ...]]:
    return [
        (
            r.line_id,
            r.description,
            int(r.amount),
            r.tax_behavior,
            r.kind,
            r.plan_id,
            r.period_start,
            r.period_end,
        )
        for r in rows
    ]


def draft_signature(lines: Sequence[DraftLine]) -> list[tuple[Any, ...]]:
    return [
        (
            line.line_id,
            line.description,
            line.amount,
            TaxBehavior(line.tax_behavior).value,
            str(line.kind),
            line.plan_id,
            aware_or_none(line.period_start, "period_start"),
            aware_or_none(line.period_end, "period_end"),
        )
        for line in lines
    ]
