"""Renewals/s when N subscription periods end at the same instant, end to end.

Runs on the real components (``bench/_stack.py``): the Temporal dev server (in memory),
PostgreSQL (a database of its own, dropped at the end), localstripe, and the worker as a
subprocess. Phases:

1. Baseline: N starts of a no-op workflow defined here, on its own task queue with a
   worker inside this process; prints bare workflow starts/s (start calls acknowledged).
2. Warm-up: ``--warmup`` subscriptions started now (periods end in a month); their
   first invoices are billed at once. The worker's RSS is read after they are paid, so
   the sandbox's one-time imports are not charged to the measured workflows.
3. N subscriptions whose first period ends at the same instant T. A ``start_at`` in the
   past is billed at once, for the whole period [start_at, period end), with no
   proration, and the period ends on the anchor's grid: so ``start_at`` is T moved back
   one billing period, and each start bills its first invoice immediately. T is set far
   enough ahead (from the warm-up's first-invoice rate) for all first invoices to be
   paid before it. The worker's RSS is read again once all N first invoices are paid
   and every workflow waits on its period-end timer (cached): the difference over N is
   the memory per cached subscription workflow. The worker's cache must hold them all:
   ``dunwell worker`` keeps 1000 by default, so above that the bench raises
   ``DUNWELL_WORKER_MAX_CACHED_WORKFLOWS`` (``--product-worker`` keeps the default; its
   cache then evicts and the figure is not per workflow).
4. From T until all N renewal invoices (``period_start = T``) are paid, polling the
   invoices table: renewals/s = N / (time all are paid - T).
5. Temporal actions per renewal, from the histories of ``--sample`` subscriptions. The
   renewal segment runs from the period-end timer firing in the first run to the next
   run's first ``TimerStarted`` (it is waiting for the following period end again).
   *Actions* follow Temporal Cloud's billing: workflow started (the continue-as-new
   run), activities scheduled (and each retry attempt), timers started, search
   attribute upserts, markers, signals, updates, child workflows started, external
   signals/cancels. The number of history events in the segment is printed too.

Gateway customers: by default all subscriptions share one localstripe customer with one
``pm_card_visa`` payment method (``--gateway-customers K`` creates K and spreads the
subscriptions over them). One customer takes four gateway calls, so N of them would
add 4 N calls to a setup phase that already takes longer than the renewals; the renewal
charge (one off-session PaymentIntent per invoice) is the same call either way.

Run: .venv/bin/python bench/renewals.py [--n 2000] [--warmup 50] [--sample 20]
Progress goes to stderr; the last line of stdout is one JSON object:
{"renewals_per_s", "baseline_starts_per_s", "actions_per_renewal", "kb_per_cached_workflow"}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == REPO / "bench":
    sys.path[0] = str(REPO)  # bench/tax.py would shadow the tax package

import psycopg  # noqa: E402
import stripe  # noqa: E402
from temporalio import workflow  # noqa: E402
from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.api.history.v1 import HistoryEvent  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.common import SearchAttributePair, TypedSearchAttributes  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from activities.stripe_gateway import StripeGateway  # noqa: E402
from bench._stack import (  # noqa: E402
    PRODUCT_WORKER_CACHE,
    STRIPE_API_KEY,
    Stack,
    machine_load,
    progress,
    psycopg_url,
    stop_on_sigterm,
    vm_rss_kb,
)
from billing.catalog import BillingAddress, CustomerProfile  # noqa: E402
from billing.periods import boundary, months_per_period, period_end  # noqa: E402
from dunwell import temporal  # noqa: E402
from dunwell.settings import Settings  # noqa: E402
from workflows import search_attributes as sa  # noqa: E402
from workflows.subscription import SubscriptionWorkflow  # noqa: E402
from workflows.subscription.state import SubscriptionInput, static_summary  # noqa: E402

CURRENCY = "EUR"
PLANS = ("starter-monthly", "starter-yearly")  # the first whose grid lands exactly on T
CACHE_HEADROOM = 100
POLL_SECONDS = 0.25


@workflow.defn(name="BenchNoop", sandboxed=False)
class NoopWorkflow:
    @workflow.run
    async def run(self) -> None:
        return None


# --- helpers ------------------------------------------------------------------------------


async def bounded(
    count: int, concurrency: int, job: Callable[[int], Awaitable[None]], label: str
) -> float:
    """Run ``job(0..count-1)`` with at most ``concurrency`` in flight; elapsed seconds."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    done = 0
    last_report = time.monotonic()

    async def lane() -> None:
        nonlocal done, last_report
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await job(i)
            done += 1
            if time.monotonic() - last_report > 5:
                last_report = time.monotonic()
                progress(f"{label}: {done}/{count}")

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(min(concurrency, count) or 1)))
    return time.perf_counter() - started


def customer_profile(subscription_id: str) -> CustomerProfile:
    return CustomerProfile(
        customer_id=f"cust-{subscription_id}",
        email=f"{subscription_id}@example.test",
        name=f"Customer {subscription_id}",
        address=BillingAddress(
            country="DE", state=None, postal_code="10115", city="Berlin", line1="Invalidenstr. 1"
        ),
    )


def plan_ending_at(when: datetime, catalog_plans: dict[str, Any]) -> tuple[str, datetime]:
    """A plan and a start one period before ``when`` whose first period ends exactly then
    (a day 29-31 may not come back from a shorter month: then try the yearly plan)."""
    for plan_id in PLANS:
        price = catalog_plans[plan_id]
        start = boundary(when, -months_per_period(price.interval, price.interval_count))
        if period_end(start, start, price.interval, price.interval_count) == when:
            return plan_id, start
    raise SystemExit(f"no catalog plan has a period ending exactly at {when.isoformat()}")


class Invoices:
    """Cheap counts on the invoices table, straight from PostgreSQL."""

    def __init__(self, database_url: str) -> None:
        self._conn = psycopg.connect(psycopg_url(database_url), autocommit=True)

    def paid(self, prefix: str, *, period_start: datetime | None = None) -> int:
        query = "SELECT count(*) FROM invoices WHERE status = 'paid' AND subscription_id LIKE %s"
        params: list[Any] = [f"{prefix}%"]
        if period_start is not None:
            query += " AND period_start = %s"
            params.append(period_start)
        row = self._conn.execute(query, params).fetchone()
        return int(row[0]) if row else 0

    def periods(self, prefix: str) -> list[tuple[datetime, datetime]]:
        rows = self._conn.execute(
            "SELECT DISTINCT period_start, period_end FROM invoices "
            "WHERE subscription_id LIKE %s ORDER BY 1",
            [f"{prefix}%"],
        ).fetchall()
        return [(a, b) for a, b in rows]

    def close(self) -> None:
        self._conn.close()


async def wait_for(
    what: str, count: Callable[[], int], target: int, timeout: float, check: Callable[[], None]
) -> float:
    """Poll ``count()`` until it reaches ``target``; the monotonic time it did."""
    deadline = time.monotonic() + timeout
    last_report = 0.0
    while True:
        now = time.monotonic()
        seen = count()
        if seen >= target:
            return now
        if now > deadline:
            raise SystemExit(f"{what}: only {seen}/{target} after {timeout:.0f} s")
        if now - last_report > 5:
            last_report = now
            progress(f"{what}: {seen}/{target}")
            check()
        await asyncio.sleep(POLL_SECONDS)


# --- phases -------------------------------------------------------------------------------


async def baseline_starts(client: Client, n: int, concurrency: int) -> float:
    task_queue = "bench-noop"
    async with Worker(client, task_queue=task_queue, workflows=[NoopWorkflow]):

        async def start(i: int) -> None:
            await client.start_workflow(
                NoopWorkflow.run, id=f"bench-noop-{i}", task_queue=task_queue
            )

        elapsed = await bounded(n, concurrency, start, "baseline starts")
    return n / elapsed


async def gateway_customers(settings: Settings, count: int) -> list[tuple[str, str]]:
    """``count`` localstripe customers, each with a default ``pm_card_visa`` card."""
    assert settings.stripe_api_base is not None
    gateway = StripeGateway(STRIPE_API_KEY, settings.stripe_api_base)
    cards = stripe.StripeClient(STRIPE_API_KEY, base_addresses={"api": settings.stripe_api_base})
    made: list[tuple[str, str]] = []

    async def one(i: int) -> None:
        key = f"bench-customer-{i}"
        customer = await gateway.create_customer(idempotency_key=f"{key}:create")
        card = await asyncio.to_thread(cards.v1.payment_methods.retrieve, "pm_card_visa")
        await gateway.attach_payment_method(
            payment_method_id=card.id, customer_id=customer, idempotency_key=f"{key}:attach"
        )
        await gateway.set_default_payment_method(
            customer_id=customer, payment_method_id=card.id, idempotency_key=f"{key}:default"
        )
        made.append((customer, card.id))

    elapsed = await bounded(count, 8, one, "gateway customers")
    gateway.close()
    progress(f"{count} gateway customer(s) with a card in {elapsed:.1f} s")
    return made


async def start_subscriptions(
    client: Client,
    settings: Settings,
    ids: Sequence[str],
    plan_id: str,
    start_at: datetime,
    gateway: Sequence[tuple[str, str]],
    concurrency: int,
) -> dict[str, str]:
    """Start one SubscriptionWorkflow per id; workflow id -> first run id."""
    runs: dict[str, str] = {}

    async def start(i: int) -> None:
        subscription_id = ids[i]
        customer, card = gateway[i % len(gateway)]
        start_input = SubscriptionInput(
            subscription_id=subscription_id,
            customer=customer_profile(subscription_id),
            gateway_customer_id=customer,
            default_payment_method_id=card,
            plan_id=plan_id,
            currency=CURRENCY,
            start_at=start_at,
        )
        handle = await client.start_workflow(
            SubscriptionWorkflow.run,
            start_input,
            id=f"subscription-{subscription_id}",
            task_queue=settings.task_queue,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.CUSTOMER_ID, start_input.customer.customer_id),
                    SearchAttributePair(sa.PLAN, plan_id),
                ]
            ),
            static_summary=static_summary(start_input),
        )
        assert handle.first_execution_run_id is not None
        runs[handle.id] = handle.first_execution_run_id

    await bounded(len(ids), concurrency, start, "subscription starts")
    return runs


# Temporal Cloud counts these as actions (docs.temporal.io/cloud/actions).
ACTION_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    EventType.EVENT_TYPE_TIMER_STARTED,
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
    EventType.EVENT_TYPE_MARKER_RECORDED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
    EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
    EventType.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
}


def renewal_segment(
    first_run: Sequence[HistoryEvent], next_run: Sequence[HistoryEvent]
) -> list[HistoryEvent]:
    fired = [i for i, e in enumerate(first_run) if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED]
    if not fired:
        raise SystemExit("a sampled first run has no fired timer: it did not renew")
    segment = list(first_run[fired[-1] :])
    for event in next_run:
        segment.append(event)
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            break
    return segment


def actions_in(segment: Sequence[HistoryEvent]) -> int:
    actions = sum(1 for e in segment if e.event_type in ACTION_EVENTS)
    # Each activity retry is an action too.
    retries = sum(
        max(0, e.activity_task_started_event_attributes.attempt - 1)
        for e in segment
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    )
    return actions + retries


async def sample_actions(
    client: Client, runs: dict[str, str], sample: int
) -> tuple[float, float, dict[str, float]]:
    chosen = random.Random(7).sample(sorted(runs), min(sample, len(runs)))
    actions: list[int] = []
    events: list[int] = []
    kinds: Counter[str] = Counter()
    for workflow_id in chosen:
        first = await client.get_workflow_handle(
            workflow_id, run_id=runs[workflow_id]
        ).fetch_history()
        deadline = time.monotonic() + 60
        while True:  # until the next run waits on its period-end timer
            latest = await client.get_workflow_handle(workflow_id).fetch_history()
            started = EventType.EVENT_TYPE_TIMER_STARTED
            if any(e.event_type == started for e in latest.events) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        segment = renewal_segment(first.events, latest.events)
        actions.append(actions_in(segment))
        events.append(len(segment))
        kinds.update(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in segment)
    per = len(chosen)
    return (
        statistics.mean(actions),
        statistics.mean(events),
        Counter({k: v // per for k, v in kinds.items()}),
    )


# --- main ---------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, float]:
    from billing.catalog import load_catalog

    catalog = load_catalog()
    prices = {p: catalog.price(p, CURRENCY) for p in PLANS}
    n, warmup = args.n, args.warmup
    cache = None
    if not args.product_worker and n + warmup > PRODUCT_WORKER_CACHE:
        cache = n + warmup + CACHE_HEADROOM
    with Stack("renewals") as running:
        running.start_database()
        running.start_temporal()
        running.start_localstripe()
        worker_pid = running.start_worker(max_cached_workflows=cache)
        settings = Settings(
            env="test",
            database_url=running.database_url or "",
            temporal_address=running.temporal_address,
            task_queue=running.task_queue,
            stripe_api_base=running.stripe_api_base,
            stripe_api_key=STRIPE_API_KEY,
        )
        client = await temporal.connect(settings)
        await running.wait_for_worker(client)
        invoices = Invoices(settings.database_url)
        try:
            progress(f"baseline: {n} no-op workflow starts, {args.concurrency} in flight")
            baseline = await baseline_starts(client, n, args.concurrency)
            progress(f"baseline: {baseline:.0f} bare workflow starts/s")

            gateway = await gateway_customers(settings, args.gateway_customers)

            # Warm-up: periods end a month (or a year) from now, far past the bench.
            warm_ids = [f"rbw{i:05d}" for i in range(warmup)]
            now = datetime.now(UTC).replace(microsecond=0)
            warm_started = time.monotonic()
            await start_subscriptions(
                client, settings, warm_ids, PLANS[0], now, gateway, args.concurrency
            )
            await wait_for(
                "warm-up first invoices paid",
                lambda: invoices.paid("rbw"),
                warmup,
                120,
                running.check_alive,
            )
            first_rate = warmup / (time.monotonic() - warm_started)
            await asyncio.sleep(1.0)
            rss_before = vm_rss_kb(worker_pid)
            progress(
                f"warm-up: {warmup} subscriptions billed at {first_rate:.1f}/s; "
                f"worker RSS {rss_before / 1024:.1f} MiB"
            )

            # T: after all N starts and first invoices, with a margin for a busy machine.
            lead = min(max(args.min_lead, n / max(first_rate, 5.0) * 1.5 + 10), 900)
            t_end = (datetime.now(UTC) + timedelta(seconds=lead)).replace(microsecond=0)
            plan_id, start_at = plan_ending_at(t_end, prices)
            progress(
                f"{n} subscriptions on {plan_id}: start_at {start_at.isoformat()}, "
                f"first period ends at T = {t_end.isoformat()} (in {lead:.0f} s)"
            )
            ids = [f"rbn{i:05d}" for i in range(n)]
            runs = await start_subscriptions(
                client, settings, ids, plan_id, start_at, gateway, args.concurrency
            )
            await wait_for(
                "first invoices paid",
                lambda: invoices.paid("rbn"),
                n,
                max(lead, 60),
                running.check_alive,
            )
            await asyncio.sleep(1.0)
            rss_after = vm_rss_kb(worker_pid)
            kb_per_workflow = (rss_after - rss_before) / n
            progress(
                f"worker RSS {rss_after / 1024:.1f} MiB with {n + warmup} cached workflows: "
                f"{kb_per_workflow:.1f} KB per cached subscription workflow"
            )
            periods = ", ".join(
                f"[{a.isoformat()}, {b.isoformat()})" for a, b in invoices.periods("rbn")
            )
            progress(f"first invoices billed at start for {periods}")
            if datetime.now(UTC) >= t_end:
                progress("WARNING: T passed before all first invoices were paid")

            # Renewals: all timers fire at T.
            wait = (t_end - datetime.now(UTC)).total_seconds()
            if wait > 0:
                progress(f"waiting {wait:.0f} s for T")
                await asyncio.sleep(wait)
            t_mono = time.monotonic() - max(0.0, (datetime.now(UTC) - t_end).total_seconds())
            cpu_at_t = running.cpu_by_component()
            done_at = await wait_for(
                "renewal invoices paid",
                lambda: invoices.paid("rbn", period_start=t_end),
                n,
                args.timeout,
                running.check_alive,
            )
            renewals_per_s = n / (done_at - t_mono)
            progress(f"{n} renewals paid {done_at - t_mono:.1f} s after T: {renewals_per_s:.1f}/s")
            used = running.cpu_by_component()
            progress(
                "CPU seconds during the renewals: "
                + ", ".join(
                    f"{name} {used[name] - cpu_at_t.get(name, 0.0):.1f}" for name in sorted(used)
                )
            )

            await asyncio.sleep(1.0)  # let the last continue-as-new runs reach their timer
            actions, events, kinds = await sample_actions(client, runs, args.sample)
            progress(
                f"renewal segment of {min(args.sample, n)} sampled workflows: "
                f"{actions:.1f} actions, {events:.1f} history events; per renewal: "
                + ", ".join(f"{k}={v:g}" for k, v in sorted(kinds.items()))
            )
        finally:
            invoices.close()

    result = {
        "renewals_per_s": round(renewals_per_s, 1),
        "baseline_starts_per_s": round(baseline, 1),
        "actions_per_renewal": round(actions, 1),
        "kb_per_cached_workflow": round(kb_per_workflow, 1),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="subscriptions renewing at once")
    parser.add_argument("--warmup", type=int, default=50, help="subscriptions before RSS")
    parser.add_argument("--concurrency", type=int, default=50, help="workflow starts in flight")
    parser.add_argument("--sample", type=int, default=20, help="histories read for actions")
    parser.add_argument("--gateway-customers", type=int, default=1)
    parser.add_argument("--min-lead", type=float, default=15.0, help="seconds from start to T")
    parser.add_argument("--timeout", type=float, default=600.0, help="renewal wait limit (s)")
    parser.add_argument(
        "--product-worker",
        action="store_true",
        help="keep the default worker cache, even when it cannot hold N workflows",
    )
    args = parser.parse_args()
    if args.n < 1 or args.warmup < 1 or args.gateway_customers < 1:
        parser.error("--n, --warmup and --gateway-customers must be positive")
    stop_on_sigterm()
    progress(f"start: {machine_load()}")
    result = asyncio.run(run(args))
    progress(f"end: {machine_load()}")
    print(
        f"renewals: {result['renewals_per_s']}/s (target >= 40); "
        f"bare starts: {result['baseline_starts_per_s']}/s; "
        f"actions per renewal: {result['actions_per_renewal']}; "
        f"worker memory: {result['kb_per_cached_workflow']} KB per cached workflow "
        f"(target <= 200)"
    )
    print(json.dumps(result), flush=True)
    # The temporalio bridge can abort the interpreter at shutdown (sdk-python issue 300).
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
