"""Recovery simulation: Dunwell's dunning against two baselines, in three settings.

The world (``bench/_dunning_world.py``: customers, cards, issuers, pay dates, card
updaters, new cards, with its sources and assumptions) is drawn up front from one
seeded RNG per setting, so every strategy meets the same customers and events; the
rules (``bench/_dunning_rules.py``) re-count every charge per card, across invoices,
independently of the scheduler.

Strategies
----------
- ``dunwell``: the real ``billing.dunning.decide`` with the policy a new hand-over gets
  (``policy_for``), one run per invoice, the runs of one card interleaved in time. Each
  charge first passes the card's attempt ledger as the charge activity does: a blocked
  card or a network cap counted over every invoice on the card refuses it
  (``AttemptRefused``). Shown also: ``standard@v2`` (what runs already in dunning keep).
- ``baseline``: a naive fixed schedule, every 3 days, 4 times, whatever the decline
  (hard ones included), on the card on file at the time.
- ``smart baseline``: "8 tries in 2 weeks" on days 1, 2, 3, 5, 7, 9, 11 and 14 after the
  failure, at its time of day, stopping on a hard decline; a new card the customer adds
  is tried at once and the schedule goes on with it (as Stripe's default does).

Every strategy sees the same on-session confirmations (authentication required).

Figures per setting and strategy: recovered share (recovered amount / failed amount),
violations (network rules), night share (background charges at 01:00-05:00 local /
all background charges), attempts per recovery (charges after the renewal's own, divided
by recovered invoices). Target: Dunwell above both baselines in all three settings,
0 violations, night share under 2 %.

Run: ``.venv/bin/python bench/dunning_sim.py [--seed N] [--accounts N]`` (tens of
seconds on one core). The last line is JSON for the central setting.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._dunning_rules import (
    Charge,
    at_night,
    count_violations,
    is_hard,
    load_rule_tables,
)
from bench._dunning_world import (
    DAY,
    SETTINGS,
    Account,
    Renewal,
    Setting,
    World,
    make_account,
    refreshed,
)
from billing.declines import DeclineInfo
from billing.dunning import (
    AttemptFailed,
    AttemptRefused,
    AttemptSucceeded,
    CardRef,
    CardUpdaterEvent,
    Decision,
    DunningEvent,
    DunningState,
    Paused,
    PaymentMethodUpdated,
    Policy,
    Recovered,
    RetryAt,
    RetryNow,
    Started,
    TimerFired,
    WaitForCustomer,
    decide,
    load_policy,
    policy_for,
)
from billing.dunning.network_rules import CardAttempt, earliest_allowed, network_rules

SEED = 20261208
ACCOUNTS = 8_000
BACKGROUND = frozenset({"scheduled_retry", "outage_retry", "card_updater"})
SMART_DAYS = (1, 2, 3, 5, 7, 9, 11, 14)


@dataclass
class Result:
    recovered: set[str] = field(default_factory=set)  # invoice ids
    charges: list[Charge] = field(default_factory=list)
    retries: int = 0


# --- the card's attempt ledger, as the charge activity keeps it ---------------------------


class CardLedger:
    def __init__(self) -> None:
        self.attempts: dict[str, list[CardAttempt]] = {}
        self.blocked: set[str] = set()

    def refusal(self, card: CardRef, at: datetime) -> AttemptRefused | None:
        if card.fingerprint in self.blocked:
            return AttemptRefused(at, None)
        history = self.attempts.get(card.fingerprint, [])
        earliest = earliest_allowed(network_rules().for_brand(card.brand), history, at)
        if earliest is None:
            return AttemptRefused(at, None)
        return AttemptRefused(at, earliest) if earliest > at else None

    def record(self, card: CardRef, at: datetime, decline: DeclineInfo | None) -> None:
        attempt = CardAttempt(
            at,
            decline.network_decline_code if decline else None,
            decline.network_advice_code if decline else None,
        )
        self.attempts.setdefault(card.fingerprint, []).append(attempt)
        table = TABLES.get(card.brand, TABLES["default"])
        if decline is not None and is_hard(decline, card.brand, table):
            self.blocked.add(card.fingerprint)


TABLES = load_rule_tables()


# --- dunwell --------------------------------------------------------------------------------


@dataclass
class _Run:
    renewal: Renewal
    state: DunningState | None = None
    decision: Decision | None = None
    now: datetime | None = None


def run_dunwell(account: Account, setting: Setting, rng: random.Random, policy: Policy) -> Result:
    world, ledger, result = World(account, setting), CardLedger(), Result()
    runs = [_Run(r) for r in account.renewals]
    pending = account.customer_events()
    card = account.card
    # (time, order, kind, run index): a renewal's failure, or a run's next decision time
    queue: list[tuple[datetime, int, str, int]] = []
    order = 0
    for index, run in enumerate(runs):
        heapq.heappush(queue, (run.renewal.failed_at, order, "renewal", index))
        order += 1
    for at, kind in pending:
        heapq.heappush(queue, (at, order, kind, -1))
        order += 1

    def feed(index: int, event: DunningEvent, now: datetime) -> None:
        nonlocal order
        run = runs[index]
        run.state, run.decision = decide(run.state, event, now, rng.random())
        run.now = now
        if isinstance(run.decision, Recovered):
            result.recovered.add(run.renewal.invoice_id)
        due = _due(run.decision)
        if isinstance(run.decision, RetryNow):
            heapq.heappush(queue, (now, order, "charge", index))
        elif due is not None:
            heapq.heappush(queue, (max(due, now), order, "timer", index))
        order += 1

    while queue:
        now, _, kind, index = heapq.heappop(queue)
        if kind == "renewal":
            run = runs[index]
            refused = ledger.refusal(card, now)
            decline: DeclineInfo | None = None
            if refused is None:
                decline = world.charge(card, now)
                ledger.record(card, now, decline)
                result.charges.append(Charge(now, card, decline, background=False))
                if decline is None:  # the renewal went through: never in dunning
                    result.recovered.add(run.renewal.invoice_id)
                    continue
            started = Started(
                run.renewal.invoice_id, run.renewal.amount, "USD", card, account.offset,
                now, policy, decline,
            )  # fmt: skip
            feed(index, started, now)
            continue
        if index == -1:  # a customer event reaches every live run
            if kind != "confirm":
                card = refreshed(card, kind)
            for i, run in enumerate(runs):
                if run.state is None or run.state.finished:
                    continue
                event: DunningEvent
                if kind == "confirm":
                    event = AttemptSucceeded(now)
                elif kind == "updater":
                    event = CardUpdaterEvent(now, card)
                else:
                    event = PaymentMethodUpdated(card, now)
                feed(i, event, now)
            continue
        run = runs[index]
        assert run.state is not None
        if run.state.finished or run.now is None or now < run.now:
            continue
        if kind == "timer":
            if _due(run.decision) != now and not (
                isinstance(run.decision, RetryAt) and run.decision.when <= now
            ):
                continue  # a stale timer: the run decided again since
            feed(index, TimerFired(now), now)
            continue
        if not isinstance(run.decision, RetryNow):
            continue
        charge_card = run.state.card
        refused = ledger.refusal(charge_card, now)
        if refused is not None:
            feed(index, refused, now)
            continue
        decline = world.charge(charge_card, now)
        ledger.record(charge_card, now, decline)
        background = run.decision.reason in BACKGROUND
        result.charges.append(Charge(now, charge_card, decline, background))
        result.retries += 1
        feed(index, AttemptSucceeded(now) if decline is None else AttemptFailed(now, decline), now)
    return result


def _due(decision: Decision | None) -> datetime | None:
    if isinstance(decision, RetryAt):
        return decision.when
    if isinstance(decision, WaitForCustomer):
        return decision.deadline
    if isinstance(decision, Paused):
        return decision.until
    return None


# --- baselines ------------------------------------------------------------------------------


def run_fixed(account: Account, setting: Setting, _rng: random.Random) -> Result:
    """Every 3 days, 4 times, whatever the decline, on the card on file at the time."""
    return _scheduled(account, setting, (3, 6, 9, 12), stop_on_hard=False, new_card_at_once=False)


def run_smart(account: Account, setting: Setting, _rng: random.Random) -> Result:
    """8 tries in 2 weeks, stopping on hard declines; a new card is tried at once."""
    return _scheduled(account, setting, SMART_DAYS, stop_on_hard=True, new_card_at_once=True)


def _scheduled(
    account: Account,
    setting: Setting,
    days: tuple[int, ...],
    *,
    stop_on_hard: bool,
    new_card_at_once: bool,
) -> Result:
    world, result = World(account, setting), Result()
    table_of = TABLES.get
    # One timeline for the account: each invoice's tries, and the customer's events.
    timeline: list[tuple[datetime, int, str, int]] = []
    for index, renewal in enumerate(account.renewals):
        timeline.append((renewal.failed_at, 0, "renewal", index))
        for n, day in enumerate(days):
            timeline.append((renewal.failed_at + day * DAY, 2, f"try{n}", index))
    for at, kind in account.customer_events():
        timeline.append((at, 1, kind, -1))
    timeline.sort()
    card = account.card
    dead: set[int] = set()  # invoices stopped on a hard decline
    open_invoices: set[int] = set()

    def attempt(index: int, at: datetime, background: bool) -> None:
        decline = world.charge(card, at)
        result.charges.append(Charge(at, card, decline, background))
        result.retries += 1
        if decline is None:
            result.recovered.add(account.renewals[index].invoice_id)
            open_invoices.discard(index)
        elif stop_on_hard and is_hard(decline, card.brand, table_of(card.brand, TABLES["default"])):
            dead.add(index)

    for at, _, kind, index in timeline:
        if kind == "renewal":
            decline = world.charge(card, at)
            result.charges.append(Charge(at, card, decline, background=False))
            if decline is None:
                result.recovered.add(account.renewals[index].invoice_id)
            else:
                open_invoices.add(index)
                if stop_on_hard and is_hard(
                    decline, card.brand, table_of(card.brand, TABLES["default"])
                ):
                    dead.add(index)
            continue
        if index == -1:
            if kind == "confirm":
                for i in sorted(open_invoices):
                    result.recovered.add(account.renewals[i].invoice_id)
                open_invoices.clear()
                continue
            card = refreshed(card, kind)
            dead.clear()  # a new card: the hard decline was the old card's
            if new_card_at_once and kind == "new_card":
                for i in sorted(open_invoices):
                    if at <= account.renewals[i].failed_at + days[-1] * DAY:
                        attempt(i, at, background=False)
            continue
        if index in open_invoices and index not in dead:
            attempt(index, at, background=True)
    return result


# --- report ---------------------------------------------------------------------------------


@dataclass
class Totals:
    amount: int = 0
    recovered_amount: int = 0
    recovered: int = 0
    retries: int = 0
    violations: int = 0
    background: int = 0
    night: int = 0

    def add(self, account: Account, result: Result) -> None:
        for renewal in account.renewals:
            self.amount += renewal.amount
            if renewal.invoice_id in result.recovered:
                self.recovered += 1
                self.recovered_amount += renewal.amount
        self.retries += result.retries
        self.violations += count_violations(result.charges, TABLES)
        for charge in result.charges:
            if charge.background:
                self.background += 1
                self.night += at_night(charge.at, account.offset)

    @property
    def share(self) -> float:
        return self.recovered_amount / self.amount

    @property
    def night_share(self) -> float:
        return self.night / max(1, self.background)

    @property
    def retries_per_recovery(self) -> float:
        return self.retries / max(1, self.recovered)


Strategy = Callable[[Account, Setting, random.Random], Result]


def strategies() -> dict[str, Strategy]:
    current = policy_for("pro_monthly", "smb")
    previous = load_policy("standard", 2)
    return {
        f"dunwell {current.key}": lambda a, s, r: run_dunwell(a, s, r, current),
        f"dunwell {previous.key}": lambda a, s, r: run_dunwell(a, s, r, previous),
        "baseline 4x3d": run_fixed,
        "smart 8-in-14": run_smart,
    }


def simulate(setting: Setting, seed: int, accounts: int) -> dict[str, Totals]:
    world_rng = random.Random(f"{seed}:{setting.name}")
    drawn = [make_account(world_rng, i, setting) for i in range(accounts)]
    totals: dict[str, Totals] = {}
    for name, strategy in strategies().items():
        jitter = random.Random(seed + 1)
        total = Totals()
        for account in drawn:
            total.add(account, strategy(account, setting, jitter))
        totals[name] = total
    return totals


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--accounts", type=int, default=ACCOUNTS)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    names = list(strategies())
    ours, _previous, fixed, smart = names
    print(f"accounts: {args.accounts} per setting, seed {args.seed}")
    print(f"{'setting':<12} {'strategy':<28} {'recovered':>9} {'violations':>10} "
          f"{'night':>7} {'att/rec':>7}")  # fmt: skip
    by_setting: dict[str, dict[str, Totals]] = {}
    for setting in SETTINGS:
        totals = simulate(setting, args.seed, args.accounts)
        by_setting[setting.name] = totals
        for name in names:
            t = totals[name]
            print(
                f"{setting.name:<12} {name:<28} {t.share:>9.4f} {t.violations:>10d} "
                f"{t.night_share:>7.2%} {t.retries_per_recovery:>7.2f}"
            )
    met = all(
        t[ours].share > max(t[fixed].share, t[smart].share)
        and t[ours].violations == 0
        and t[ours].night_share < 0.02
        for t in by_setting.values()
    )
    print(f"target (above both baselines, 0 violations, night < 2 %) in all settings: {met}")
    print(f"elapsed: {time.perf_counter() - began:.1f} s")
    central = by_setting["central"]
    figures = {
        "recovered_share": round(central[ours].share, 4),
        "baseline_recovered_share": round(central[fixed].share, 4),
        "smart_baseline_recovered_share": round(central[smart].share, 4),
        "violations": central[ours].violations,
        "night_attempt_share": round(central[ours].night_share, 4),
        "attempts_per_recovery": round(central[ours].retries_per_recovery, 3),
    }
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
