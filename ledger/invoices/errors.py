"""Errors raised by the invoice store; when one is raised nothing was written.

InvoiceError
├── InvalidInvoiceInput        malformed request (naive datetime, bad amount, unknown line, ...)
│   └── QuoteMismatch          the tax quote does not match the draft's lines or currency
├── InvoiceNotFound            no invoice with that id
├── InvoiceStateError          the invoice's status does not allow the operation
├── CreditExceedsRemaining     a credit note larger than what remains creditable
├── PaymentExceedsRemaining    a payment larger than the amount remaining
└── InvoiceIdempotencyConflict a key used before with different content
"""

from __future__ import annotations


class InvoiceError(Exception):
    """Base class of every invoice store error."""


class InvalidInvoiceInput(InvoiceError):
    """The request is malformed."""


class QuoteMismatch(InvalidInvoiceInput):
    """The tax quote's lines or currency differ from the draft's."""


class InvoiceNotFound(InvoiceError):
    """No invoice has that id."""


class InvoiceStateError(InvoiceError):
    """The invoice's status does not allow the operation."""


class CreditExceedsRemaining(InvoiceError):
    """The credit note exceeds what remains creditable, per line or in total."""


class PaymentExceedsRemaining(InvoiceError):
    """The payment exceeds the amount remaining on the invoice."""


class InvoiceIdempotencyConflict(InvoiceError):
    """The idempotency key was used before for a different request."""
