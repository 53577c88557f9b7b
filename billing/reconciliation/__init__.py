"""Reconciliation of the ledger with the gateway's settlement: pure matching.

``model`` holds what both sides say (the gateway's balance transactions and payouts,
the ledger's records of payments, refunds and disputes), ``tolerances`` the versioned
data the matcher judges by (``data/tolerances.json``: the account's fee schedule, the
fee tolerance, when an unsettled payment counts as aged), and ``matcher`` the
functions that compare them and say what to post and which exceptions to open.

Nothing here does I/O or reads a clock: callers pass ``now``. May import: the standard
library and ``billing.money``.
"""
