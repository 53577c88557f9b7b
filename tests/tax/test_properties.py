"""Properties of quotes for arbitrary lines and rates, checked with exact fractions."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction
from importlib import resources

from hypothesis import given, settings
from hypothesis import strategies as st

from tax import BuiltinTaxEngine, Registration, TaxableLine, TaxBehavior, TaxReason
from tax.rates import rate_table_from_text
from tests.support.mutation import examples
from tests.tax.conftest import at, customer

DATA = resources.files("tax") / "data"
HEADER = (DATA / "rates.csv").read_text().splitlines()[0]
US_SAAS = (DATA / "us_saas_taxability.csv").read_text()
REGS = [
    Registration("CA", None, date(2020, 1, 1), None, "GST"),
    Registration("CA-QC", None, date(2020, 1, 1), None, "QST"),
]

# rates in percent with up to 4 decimals: 0 … 30 %
percent = st.integers(min_value=0, max_value=300_000).map(lambda ppm: Fraction(ppm, 10_000))
amount = st.integers(min_value=-(10**10), max_value=10**10)
behavior = st.sampled_from(list(TaxBehavior))
currency = st.sampled_from(["CAD", "JPY", "KWD"])


def as_text(p: Fraction) -> str:
    return str(Decimal(p.numerator) / Decimal(p.denominator))


def engine_with(gst: Fraction, qst: Fraction) -> BuiltinTaxEngine:
    rows = (
        f"CA,QC,gst,{as_text(gst)},2020-01-01,,https://x,2026-01-01,\n"
        f"CA,QC,qst,{as_text(qst)},2020-01-01,,https://x,2026-01-01,\n"
    )
    return BuiltinTaxEngine(rate_table=rate_table_from_text(f"{HEADER}\n{rows}", US_SAAS))


@settings(max_examples=examples(150), deadline=None)
@given(
    gst=percent,
    qst=percent,
    lines=st.lists(st.tuples(amount, behavior), min_size=1, max_size=8),
    cur=currency,
)
def test_tax_is_rate_times_amount_within_rounding_and_totals_add_up(gst, qst, lines, cur):
    engine = engine_with(gst, qst)
    taxable = [TaxableLine(f"l{i}", a, cur, b) for i, (a, b) in enumerate(lines)]
    quote = engine.quote(taxable, customer("CA", "QC"), REGS, at("2026-01-10"))
    for given_line, q in zip(taxable, quote.lines, strict=True):
        assert q.amount_including_tax == q.amount_excluding_tax + q.tax_amount
        assert q.tax_amount == sum(c.tax_amount for c in q.components)
        if given_line.tax_behavior is TaxBehavior.INCLUSIVE:
            assert q.amount_including_tax == given_line.amount
        else:
            assert q.amount_excluding_tax == given_line.amount
        for c in q.components:
            assert c.reason is TaxReason.STANDARD_RATED
            assert c.taxable_amount == q.amount_excluding_tax
            exact = Fraction(c.taxable_amount) * Fraction(c.rate_ppm, 1_000_000)
            # Exclusive: one half-up rounding. Inclusive: each tax is rounded from the
            # gross, and the net absorbs both components' rounding, so allow one unit.
            limit = Fraction(1, 2) if given_line.tax_behavior is TaxBehavior.EXCLUSIVE else 1
            assert abs(c.tax_amount - exact) <= limit
    assert quote.subtotal_excluding_tax == sum(q.amount_excluding_tax for q in quote.lines)
    assert quote.tax_total == sum(q.tax_amount for q in quote.lines)
    assert quote.total_including_tax == sum(q.amount_including_tax for q in quote.lines)
    assert [c.rate_ppm for c in quote.lines[0].components] == [int(gst * 10_000), int(qst * 10_000)]
