"""Disputes (chargebacks): their rows and the money each moved.

``tables`` describes the rows (revision ``0011_refunds_disputes``). May import the
ledger's own modules (``ledger.chart``, ``ledger.journal``, the invoice tables it
joins) and ``billing``; nothing built on the ledger.
"""
