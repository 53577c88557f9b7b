"""The suite-wide log scan itself: it must see a card number that reaches a handler."""

from __future__ import annotations

import logging

from tests.conftest import LOG_SCAN, PanScan


def test_the_scan_flags_a_card_number_and_names_only_where() -> None:
    scan = PanScan()
    # makeLogRecord bypasses the record factory, i.e. the redaction a real logger applies.
    scan.handle(logging.makeLogRecord({"msg": "paid with %s", "args": ("4242 4242 4242 4242",)}))
    scan.handle(logging.makeLogRecord({"msg": "charged pm_1Abc for invoice 2031"}))
    assert len(scan.leaks) == 1 and "4242" not in scan.leaks[0]


def test_the_scan_is_installed_on_the_root_logger() -> None:
    assert LOG_SCAN in logging.getLogger().handlers
    before = LOG_SCAN.records
    logging.getLogger("dunwell.test").info("a log line")
    assert LOG_SCAN.records == before + 1
