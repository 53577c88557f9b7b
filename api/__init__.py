"""The HTTP API (FastAPI): server API, portal API and page, webhook intake, ops API.

Routes in ``api.routes`` stay thin; ``api.services`` does the work a route needs and
``api.deps`` / ``api.services.runtime`` hold the typed dependencies. HTTP status codes
live only here.

May import: ``billing`` and ``tax`` (pure); the stores (``stores``) and the ledger's
store classes and reports (``ledger.invoices``, ``ledger.posting``,
``ledger.compliance``, ``ledger.tax_report``), never a table module or
``ledger.journal``; the workflows' message types and ids, to talk to them through
Temporal; the gateway adapter and the tax customer mapping in ``activities``; the
``dunwell`` settings and components. Nothing imports ``api`` except ``dunwell``, the
command that serves it.
"""
