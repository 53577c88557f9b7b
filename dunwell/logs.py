"""Logging setup: every handler passes through the card-number redaction filter."""

from __future__ import annotations

import logging

from billing.pan import RedactingFilter

_installed = False


def install_redaction() -> None:
    """Attach the redaction filter to the root logger's handlers and to new records."""
    global _installed
    if _installed:
        return
    redactor = RedactingFilter()
    old_factory = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = old_factory(*args, **kwargs)
        redactor.filter(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
