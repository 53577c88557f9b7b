"""Tax of credit and debit note lines from the frozen rates of the invoice line (pure).

A note is never re-quoted: each tax component of the original line keeps its rate.
For a note line of net ``a`` on an invoice line of net ``n``:

    taxable = half_up(component.taxable_amount * a / n)
    tax     = half_up(taxable * rate_ppm / 1e6)       (tax.rounding.tax_on_net)

the same per-line, per-component half-up rule as the invoice. A credit note line that
takes the line's whole remaining net takes exactly the remaining taxable amount and
tax instead, so a sequence of credits reverses exactly what was charged (this also
covers tax-inclusive lines, whose tax was split from the gross and can differ by one
minor unit from ``rate * net``). A partial credit never takes more tax than remains.

A refund is an amount the gateway gave back, tax included, so its credit note is
built from the gross (``refund_lines``): shared among the lines pro rata to what
remains of each (largest remainder), and each line's share split into net and tax at
the line's frozen rates (``tax.rounding.split_gross``), so the note's total is the
refund exactly. A share that takes all that remains of a line takes it exactly.

A rate change inside a period (``rate_change_delta``) adjusts tax only: for the
seconds after the change, ``half_up(taxable * (new - old) * after / period)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tax.model import PPM, TaxComponent
from tax.rounding import div_half_up, split_gross, tax_on_net


@dataclass(frozen=True, slots=True)
class LineState:
    """An invoice line as frozen, with what notes have moved since (signed sums)."""

    line_id: str
    net: int  # frozen amount excluding tax
    components: tuple[TaxComponent, ...]
    remaining_net: int  # net + debited - credited
    remaining_taxable: tuple[int, ...]  # per component
    remaining_tax: tuple[int, ...]  # per component


@dataclass(frozen=True, slots=True)
class NoteComponent:
    index: int  # position of the component on the invoice line
    component: TaxComponent  # magnitudes of this note's share


@dataclass(frozen=True, slots=True)
class NoteLineTax:
    line_id: str
    net: int
    tax: int
    components: tuple[NoteComponent, ...]


def credit_line(state: LineState, amount: int) -> NoteLineTax:
    """Tax of crediting ``amount`` (net, same sign as the line) of a line; the caller
    has checked that ``amount`` does not exceed ``state.remaining_net`` in magnitude."""
    if amount == state.remaining_net:
        parts = [
            NoteComponent(
                i, _share(c, state.remaining_taxable[i], state.remaining_tax[i], "remaining")
            )
            for i, c in enumerate(state.components)
        ]
    else:
        parts = []
        for i, c in enumerate(state.components):
            taxable = div_half_up(c.taxable_amount * amount, state.net)
            tax = tax_on_net(taxable, c.rate_ppm)
            parts.append(
                NoteComponent(
                    i,
                    _share(
                        c,
                        _clamp(taxable, state.remaining_taxable[i]),
                        _clamp(tax, state.remaining_tax[i]),
                        "pro rata",
                    ),
                )
            )
    return NoteLineTax(
        state.line_id, amount, sum(p.component.tax_amount for p in parts), tuple(parts)
    )


def remaining_gross(state: LineState) -> int:
    return state.remaining_net + sum(state.remaining_tax)


def refund_lines(states: Sequence[LineState], gross: int) -> tuple[NoteLineTax, ...]:
    """Credit note lines totalling ``gross`` exactly, tax at the frozen rates; the
    caller has checked that ``gross`` does not exceed what remains of the lines."""
    open_lines = [s for s in states if remaining_gross(s) > 0 and s.remaining_net > 0]
    whole = sum(remaining_gross(s) for s in open_lines)
    if gross <= 0 or gross > whole:
        raise ValueError(f"a refund of {gross} against {whole} remaining")
    shares = [gross * remaining_gross(s) // whole for s in open_lines]
    # Largest remainder: the units rounding left over go to the largest fractions.
    order = sorted(
        range(len(open_lines)),
        key=lambda i: (-(gross * remaining_gross(open_lines[i]) % whole), i),
    )
    for i in order[: gross - sum(shares)]:
        shares[i] += 1
    return tuple(
        _refund_line(state, share) for state, share in zip(open_lines, shares, strict=True) if share
    )


def _refund_line(state: LineState, gross: int) -> NoteLineTax:
    if gross == remaining_gross(state):
        return credit_line(state, state.remaining_net)
    net, taxes = split_gross(gross, [c.rate_ppm for c in state.components])
    parts = []
    for i, (c, tax) in enumerate(zip(state.components, taxes, strict=True)):
        taxable = _clamp(div_half_up(c.taxable_amount * net, state.net), state.remaining_taxable[i])
        kept = _clamp(tax, state.remaining_tax[i])
        net += tax - kept  # tax beyond what remains stays with the net
        parts.append(NoteComponent(i, _share(c, taxable, kept, "refund, split")))
    return NoteLineTax(state.line_id, net, sum(p.component.tax_amount for p in parts), tuple(parts))


def debit_line(state: LineState, amount: int) -> NoteLineTax:
    parts = []
    for i, c in enumerate(state.components):
        taxable = div_half_up(c.taxable_amount * amount, state.net)
        parts.append(
            NoteComponent(i, _share(c, taxable, tax_on_net(taxable, c.rate_ppm), "pro rata"))
        )
    return NoteLineTax(
        state.line_id, amount, sum(p.component.tax_amount for p in parts), tuple(parts)
    )


def rate_change_delta(
    state: LineState,
    new_rates: Sequence[int],
    *,
    seconds_after: int,
    period_seconds: int,
) -> NoteLineTax:
    """Signed tax change of a line for the part of the period after a rate change;
    ``new_rates`` are the rates in force after the change, one per component."""
    parts = []
    for i, (c, new_rate) in enumerate(zip(state.components, new_rates, strict=True)):
        delta = div_half_up(
            c.taxable_amount * (new_rate - c.rate_ppm) * seconds_after, PPM * period_seconds
        )
        detail = (
            f"rate change {c.rate_ppm} -> {new_rate} ppm for {seconds_after} of {period_seconds} s"
        )
        parts.append(
            NoteComponent(
                i,
                TaxComponent(
                    jurisdiction=c.jurisdiction,
                    tax_type=c.tax_type,
                    rate_ppm=new_rate,
                    taxable_amount=0,
                    tax_amount=delta,
                    reason=c.reason,
                    detail=detail,
                ),
            )
        )
    return NoteLineTax(state.line_id, 0, sum(p.component.tax_amount for p in parts), tuple(parts))


def _clamp(value: int, limit: int) -> int:
    """``value`` limited to ``limit`` in magnitude (both carry the line's sign)."""
    return min(value, limit) if limit >= 0 else max(value, limit)


def _share(c: TaxComponent, taxable: int, tax: int, how: str) -> TaxComponent:
    return TaxComponent(
        jurisdiction=c.jurisdiction,
        tax_type=c.tax_type,
        rate_ppm=c.rate_ppm,
        taxable_amount=taxable,
        tax_amount=tax,
        reason=c.reason,
        detail=f"{how} at the invoice's frozen rate",
    )
