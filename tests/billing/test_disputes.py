"""The dispute model: each balance transaction's kind and net, and which states close a
dispute or count it against the customer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing.disputes import DisputeSnapshot, DisputeTxn

AT = datetime(2026, 5, 1, tzinfo=UTC)


def test_withdrawn_and_reinstated_transactions() -> None:
    withdrawn = DisputeTxn("txn_a", -4_000, 1_500, "EUR", "dispute", AT)
    assert (withdrawn.kind, withdrawn.net) == ("withdrawn", -5_500)
    reinstated = DisputeTxn("txn_b", 4_000, 0, "EUR", "dispute_reversal", AT)
    assert (reinstated.kind, reinstated.net) == ("reinstated", 4_000)
    fee_back = DisputeTxn("txn_c", 4_000, -1_500, "EUR", "dispute_reversal", AT)
    assert fee_back.net == 5_500


@pytest.mark.parametrize(
    ("status", "closed", "counts"),
    [
        ("warning_needs_response", False, True),
        ("needs_response", False, True),
        ("under_review", False, True),
        ("won", True, False),
        ("lost", True, True),
        ("warning_closed", True, False),
        ("prevented", True, True),
    ],
)
def test_which_states_close_and_count(status: str, closed: bool, counts: bool) -> None:
    dispute = DisputeSnapshot("dp_a", "ch_a", "pi_a", 4_000, "EUR", "fraudulent", status, AT, ())
    assert (dispute.closed, dispute.counts_against) == (closed, counts)
