"""The dunning simulation runs small and ends with its JSON figures; its independent
rule counter finds the violations it is there to find."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench import dunning_sim
from bench._dunning_rules import Charge, count_violations, load_rule_tables
from billing.declines import DeclineInfo
from billing.dunning import CardRef

AT = datetime(2026, 2, 2, 12, 0, tzinfo=UTC)
VISA = CardRef("fp_v", "visa")
SOFT = DeclineInfo(decline_code="do_not_honor")


def test_the_simulation_ends_with_its_figures(capsys) -> None:  # type: ignore[no-untyped-def]
    figures = dunning_sim.main(["--accounts", "150", "--seed", "7"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("{") and '"smart_baseline_recovered_share"' in last
    assert set(figures) == {
        "recovered_share",
        "baseline_recovered_share",
        "smart_baseline_recovered_share",
        "violations",
        "night_attempt_share",
        "attempts_per_recovery",
    }
    assert 0 < figures["recovered_share"] <= 1
    # Properties of the scheduler and the card ledger, whatever the world's luck:
    assert figures["violations"] == 0
    assert figures["night_attempt_share"] < 0.02


def test_the_rule_counter_counts_caps_across_invoices_and_hard_declines() -> None:
    tables = load_rule_tables()
    # 16 charges on one Visa card in 30 days (two invoices' worth): one over the cap.
    charges = [Charge(AT + timedelta(days=n), VISA, SOFT, True) for n in range(16)]
    assert count_violations(charges, tables) == 1
    lost = [
        Charge(AT, VISA, DeclineInfo(decline_code="lost_card"), False),
        Charge(AT + timedelta(days=1), VISA, SOFT, True),
        Charge(AT + timedelta(days=1), CardRef("fp_new", "visa"), None, False),
    ]
    assert count_violations(lost, tables) == 1  # the new card is another card
    mac = CardRef("fp_m", "mastercard")
    advice = DeclineInfo(decline_code="do_not_honor", network_advice_code="25")  # 1 day
    early = [Charge(AT, mac, advice, True), Charge(AT + timedelta(hours=2), mac, SOFT, True)]
    assert count_violations(early, tables) == 1
