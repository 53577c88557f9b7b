"""A document as a self-contained HTML page: inline style, no script, no remote asset."""

from __future__ import annotations

from html import escape

from api.documents.model import Document, Party

_STYLE = """
body{font-family:system-ui,sans-serif;color:#1d2330;max-width:52rem;margin:2rem auto;
padding:0 1rem}
h1{font-size:1.6rem;margin:0 0 .25rem}
.parties{display:flex;gap:2rem;margin:1.5rem 0}.parties section{flex:1}
h2{font-size:1rem;margin:0 0 .3rem;color:#3d4656}
table{border-collapse:collapse;width:100%;margin:.75rem 0}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #d9dde3;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem;margin:0}
dt{color:#3d4656}dd{margin:0}
.totals{margin-left:auto;width:auto;min-width:20rem}
.mentions{border-left:4px solid #2f5fd0;padding:.5rem .75rem;background:#eef3ff}
"""


def _party(heading: str, party: Party) -> str:
    lines = "".join(f"{escape(line)}<br>" for line in party.address_lines)
    vat = f"VAT ID: {escape(party.vat_id)}" if party.vat_id else "VAT ID: —"
    return (
        f'<section aria-label="{escape(heading)}"><h2>{escape(heading)}</h2>'
        f"<strong>{escape(party.name)}</strong><br>{lines}{vat}</section>"
    )


def render_html(doc: Document) -> str:
    facts = [
        (f"{doc.title} number", doc.number),
        ("Issue date", doc.issue_date),
        ("Supply period", doc.supply_period or "—"),
        ("Currency", doc.currency),
        ("Status", doc.status),
    ]
    if doc.refers_to:
        facts.insert(2, ("Amends", doc.refers_to))
    if doc.reason:
        facts.append(("Reason", doc.reason))
    fact_rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts)
    line_rows = "".join(
        "<tr>"
        f"<td>{escape(line.description)}"
        + (f"<br><small>{escape(line.period)}</small>" if line.period else "")
        + f'</td><td class="num">{escape(line.amount_excluding_tax)}</td>'
        f"<td>{escape(line.tax_rates)}</td>"
        f'<td class="num">{escape(line.tax_amount)}</td>'
        f'<td class="num">{escape(line.amount_including_tax)}</td></tr>'
        for line in doc.lines
    )
    tax_rows = "".join(
        f"<tr><td>{escape(row.jurisdiction)}</td><td>{escape(row.tax_type)}</td>"
        f'<td class="num">{escape(row.rate)}</td><td>{escape(row.note) or "—"}</td>'
        f'<td class="num">{escape(row.taxable_amount)}</td>'
        f'<td class="num">{escape(row.tax_amount)}</td></tr>'
        for row in doc.tax_rows
    )
    totals = [("Total excluding tax", doc.subtotal), ("Tax", doc.tax_total)]
    totals.append((f"Total ({doc.currency})", doc.total))
    if doc.amount_paid is not None:
        totals.append(("Paid", doc.amount_paid))
    if doc.amount_due is not None:
        totals.append(("Amount due", doc.amount_due))
    total_rows = "".join(
        f'<tr><th scope="row">{escape(k)}</th><td class="num">{escape(v)}</td></tr>'
        for k, v in totals
    )
    mentions = "".join(f"<p>{escape(m)}</p>" for m in doc.legal_mentions)
    mention_block = (
        f'<section class="mentions" aria-label="Legal mentions">{mentions}</section>'
        if mentions
        else ""
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(doc.title)} {escape(doc.number)}</title><style>{_STYLE}</style>"
        f'</head><body><main data-document="{doc.kind}">'
        f"<h1>{escape(doc.title)} {escape(doc.number)}</h1><dl>{fact_rows}</dl>"
        f'<div class="parties">{_party("Seller", doc.seller)}{_party("Buyer", doc.buyer)}</div>'
        '<table aria-label="Lines"><thead><tr><th scope="col">Description</th>'
        '<th scope="col" class="num">Amount excl. tax</th><th scope="col">Tax rate</th>'
        '<th scope="col" class="num">Tax</th><th scope="col" class="num">Total</th></tr></thead>'
        f"<tbody>{line_rows}</tbody></table>"
        '<h2>Tax per rate</h2><table aria-label="Tax per rate"><thead><tr>'
        '<th scope="col">Jurisdiction</th><th scope="col">Tax</th>'
        '<th scope="col" class="num">Rate</th><th scope="col">Note</th>'
        '<th scope="col" class="num">Taxable amount</th><th scope="col" class="num">Tax amount</th>'
        f"</tr></thead><tbody>{tax_rows}</tbody></table>"
        f'<table class="totals" aria-label="Totals"><tbody>{total_rows}</tbody></table>'
        f"{mention_block}</main></body></html>"
    )
