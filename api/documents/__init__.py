"""Invoice and credit-note documents: what a customer and their accountant receive.

    model.py   the document as data, built only from the frozen invoice or note (its
               numbers, lines, tax components, buyer details and legal mentions as
               finalized) and the seller's details from settings
    html.py    the document as an HTML page (self-contained: no script, no remote asset)
    pdf.py     the same document as a PDF (ReportLab)

Why ReportLab for the PDF: it installs from PyPI as a pure-Python wheel with no system
library (WeasyPrint needs Pango and cairo, xhtml2pdf pulls cairo bindings in), it is
BSD-licensed (fpdf2, the other pure-Python option, is LGPL), it has been maintained
by ReportLab Inc. since 2000 with regular releases, and it ships the Bitstream Vera
TrueType fonts, which are embedded so that every reader shows, and can extract, the
same text ("€", "ü", "ß").

An EU invoice (Council Directive 2006/112/EC, Art. 226) shows: the seller's and the
buyer's names, addresses and VAT ids; the sequential number and issue date; the date
or period of supply; the taxable amount and the tax per rate; the reverse-charge or
exemption mention; the currency and totals. A credit note also names the invoice it
amends (Art. 219).
"""
