"""Errors raised by the reconciliation stores; when one is raised nothing was written.

ReconciliationError
├── InvalidExceptionAction   malformed request: unknown action, no actor, a resolution
│                            without an adjusting entry, an entry that does not exist
├── ExceptionNotFound        no exception with that id
└── ExceptionStateError      the exception's status does not allow the action
"""

from __future__ import annotations


class ReconciliationError(Exception):
    """Base class of every reconciliation store error."""


class InvalidExceptionAction(ReconciliationError):
    """The request is malformed."""


class ExceptionNotFound(ReconciliationError):
    """No exception has that id."""


class ExceptionStateError(ReconciliationError):
    """The exception's status does not allow the action."""
