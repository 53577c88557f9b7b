"""The ``dunwell`` command and what the processes share: settings, wiring, the dev stack.

``cli`` and its subcommands (``ledger_cli``, ``tax_cli``, ``dunning_cli``,
``review_cli``, ``gateway_cli``, ``audit_cli``), the settings (``settings``) and the API
keys by role they hold (``api_keys``), the factories the worker and the API
both build from settings (``components``), the Temporal client and payload converter
(``temporal``, ``converter``), log redaction, and the local stack (``devstack``,
``fake_gateway``, ``smtp_sink``, ``demo``; ``local_stack`` says which packages of the
``local`` extra they need, absent from a production install).

May import every Dunwell package: it is the command that serves the API and runs the
worker, and the only package besides the API itself that may import ``api``. The
exception is ``dunwell.client``, the typed client a SaaS backend installs: it imports
httpx, pydantic, standardwebhooks and the standard library only (its own docstring).
"""
