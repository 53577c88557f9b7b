"""Reconciliation records: the exceptions queue, settlement lines, payout runs, and the
settlement postings (fees, conversions, payouts, payout failures).

``tables`` describes the rows (revision ``0008_reconciliation`` makes them),
``postings`` books what a settlement calls for once per gateway transaction,
``exceptions`` is the ops queue. The matching itself is pure and lives in
``billing.reconciliation``.
"""
