"""A document as a PDF, laid out with ReportLab's platypus (see the package docstring
for why ReportLab). The fonts are the Bitstream Vera TrueType files ReportLab ships,
embedded, so the text reads the same everywhere and can be extracted."""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from api.documents.model import Document, Party

_FONT, _BOLD = "DunwellVera", "DunwellVeraBold"


def _register_fonts() -> None:
    if _FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(_FONT, "Vera.ttf"))
        pdfmetrics.registerFont(TTFont(_BOLD, "VeraBd.ttf"))


_BODY = ParagraphStyle("body", fontName=_FONT, fontSize=9, leading=12)
_TITLE = ParagraphStyle("title", fontName=_BOLD, fontSize=16, leading=20, spaceAfter=6)
_HEAD = ParagraphStyle("head", fontName=_BOLD, fontSize=10, leading=13, spaceBefore=6)


def _p(text: str, style: ParagraphStyle = _BODY) -> Paragraph:
    return Paragraph(escape(text), style)


def _party(heading: str, party: Party) -> list[Paragraph]:
    rows = [_p(heading, _HEAD), _p(party.name, _HEAD)]
    rows += [_p(line) for line in party.address_lines]
    rows.append(_p(f"VAT ID: {party.vat_id or '—'}"))
    return rows


def _grid(rows: list[list[object]], widths: list[float], numeric: tuple[int, ...]) -> Table:
    table = Table(rows, colWidths=widths, repeatRows=1)
    style = [
        ("FONT", (0, 0), (-1, 0), _BOLD, 8.5),
        ("FONT", (0, 1), (-1, -1), _FONT, 8.5),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#c9ced6")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
    style += [("ALIGN", (i, 0), (i, -1), "RIGHT") for i in numeric]
    table.setStyle(TableStyle(style))
    return table


def render_pdf(doc: Document) -> bytes:
    _register_fonts()
    out = io.BytesIO()
    pdf = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=f"{doc.title} {doc.number}",
        author=doc.seller.name,
    )
    facts = [
        [f"{doc.title} number", doc.number],
        ["Issue date", doc.issue_date],
        ["Supply period", doc.supply_period or "—"],
        ["Currency", doc.currency],
        ["Status", doc.status],
    ]
    if doc.refers_to:
        facts.insert(2, ["Amends", doc.refers_to])
    if doc.reason:
        facts.append(["Reason", doc.reason])
    fact_table = Table(facts, colWidths=[40 * mm, 120 * mm])
    fact_table.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), _FONT, 9)]))
    parties = Table(
        [[_party("Seller", doc.seller), _party("Buyer", doc.buyer)]],
        colWidths=[87 * mm, 87 * mm],
    )
    parties.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    lines: list[list[object]] = [["Description", "Excl. tax", "Tax rate", "Tax", "Total"]]
    for line in doc.lines:
        text = line.description + (f" ({line.period})" if line.period else "")
        lines.append(
            [
                _p(text),
                line.amount_excluding_tax,
                _p(line.tax_rates),
                line.tax_amount,
                line.amount_including_tax,
            ]
        )
    rates: list[list[object]] = [
        ["Jurisdiction", "Tax", "Rate", "Note", "Taxable amount", "Tax amount"]
    ]
    rates += [
        [r.jurisdiction, r.tax_type, r.rate, r.note or "—", r.taxable_amount, r.tax_amount]
        for r in doc.tax_rows
    ]
    totals: list[list[object]] = [
        ["Total excluding tax", doc.subtotal],
        ["Tax", doc.tax_total],
        [f"Total ({doc.currency})", doc.total],
    ]
    if doc.amount_paid is not None:
        totals.append(["Paid", doc.amount_paid])
    if doc.amount_due is not None:
        totals.append(["Amount due", doc.amount_due])
    total_table = Table(totals, colWidths=[50 * mm, 35 * mm], hAlign="RIGHT")
    total_table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), _FONT, 9),
                ("FONT", (0, 2), (-1, 2), _BOLD, 9),
                ("ALIGN", (1, 0), (1, -1), "RIGHT"),
            ]
        )
    )
    story: list[object] = [
        _p(f"{doc.title} {doc.number}", _TITLE),
        fact_table,
        Spacer(1, 6 * mm),
        parties,
        Spacer(1, 6 * mm),
        _grid(lines, [70 * mm, 26 * mm, 34 * mm, 22 * mm, 22 * mm], (1, 3, 4)),
        _p("Tax per rate", _HEAD),
        _grid(rates, [26 * mm, 18 * mm, 16 * mm, 34 * mm, 40 * mm, 40 * mm], (2, 4, 5)),
        Spacer(1, 4 * mm),
        total_table,
    ]
    if doc.legal_mentions:
        story.append(_p("Legal mentions", _HEAD))
        story += [_p(m) for m in doc.legal_mentions]
    pdf.build(story)
    return out.getvalue()
