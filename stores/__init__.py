"""Dunwell's stores beside the ledger: the customer and subscription directory
(``stores.customers``), the webhook intake's processed and parked gateway events
(``stores.gateway_events``), the customer notifications (``stores.notifications``) and
the append-only audit log (``stores.audit``), with their tables in ``stores.tables``.

May import: ``billing`` (pure domain types), and from the ledger only the schema base
(``ledger.schema``) and the engine plumbing (``ledger.db``), never the journal or the
invoice tables. Used by ``api`` and ``activities``.
"""
