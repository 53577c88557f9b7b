"""Renewals/s when N subscription periods end at the same instant, against a same-run floor.

Runs on the real components (``bench/_stack.py``): the Temporal dev server (in memory),
PostgreSQL (a database of its own, dropped at the end), localstripe, the worker
(``dunwell worker``) and the floor worker (``bench/_floor.py``), each a subprocess, all
on one server instance for the whole run.

The floor is what the same components do for a renewal with no Dunwell code in the
way: N no-op workflows whose first run waits on a timer ending at one instant and then
continues as new once, the new run starting a timer a month away, as a renewed
subscription's next run does (``bench/_floor.py``). They run on their own task queue
with a no-op worker process: temporalio's ``Worker`` with the ``UnsandboxedWorkflowRunner``
the production worker uses and the default data converter. A floor phase is measured
like the renewals: from the instant T until all N have continued as new (the new run's
first task has reached the worker), floor/s = N / that time.

Phases, in this order:

1. Floor warm-up: ``--warmup`` floor workflows whose timers lie a day away; how fast
   they start sizes the first floor phase's lead.
2. Floor before: N floor workflows, timers ending at T1.
3. Subscription warm-up: ``--warmup`` subscriptions started now (periods end in a
   month); their first invoices are billed at once. The worker's RSS is read after they
   are paid, so one-time imports are not charged to the measured workflows.
4. N subscriptions whose first period ends at the same instant T. A ``start_at`` in the
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
5. Renewals: from T until all N renewal invoices (``period_start = T``) are paid,
   polling the invoices table: renewals/s = N / (time all are paid - T).
6. Temporal actions per renewal, from the histories of ``--sample`` subscriptions. The
   renewal segment runs from the period-end timer firing in the first run to the next
   run's first ``TimerStarted`` (it is waiting for the following period end again).
   *Actions* follow Temporal Cloud's billing: workflow started (the continue-as-new
   run), activities scheduled (and each retry attempt), timers started, search
   attribute upserts, markers, signals, updates, child workflows started, external
   signals/cancels. The number of history events in the segment is printed too.
7. Floor after: N more floor workflows, timers ending at T2, once the worker and
   Temporal are idle.

Why a floor before and after. The server keeps every run's history for the whole bench
(it is in memory and never cleaned): the first floor phase runs on an almost empty
server, the renewals on one holding N floor workflows, the second floor phase on one
that also holds 2 N subscription runs. The machine's speed also drifts over the
minutes a run takes. Bracketing the renewals cancels both to first order: floor/s is
2 N over the two floor phases' time together (their time per workflow averaged, not
their rates). Interleaving them with the renewals is not possible: they would share the
instant T and each other's CPU. Both floor phases are printed, so a run whose drift was
not linear can be seen. Of the two, the machine matters more: three floor phases of
2,000 back to back on one server ran at 23, 36 and 38/s with Temporal's CPU per
workflow flat (26, 21, 24 ms), the slowest while other work loaded the machine, so a
growing server did not slow the floor; a busy machine did.

CPU. Each component's CPU over a measured window is read from /proc: per renewal for
Temporal, the worker, PostgreSQL (the backends serving the bench's database only) and
localstripe; per floor workflow for Temporal and the floor worker. The gap between
the two is what Dunwell adds. ``worker_cpu_ms_per_renewal`` is the worker process's
CPU from T until the last renewal is paid, over N.

Gateway customers: by default all subscriptions share one localstripe customer with one
``pm_card_visa`` payment method (``--gateway-customers K`` creates K and spreads the
subscriptions over them). One customer takes four gateway calls, so N of them would
add 4 N calls to a setup phase that already takes longer than the renewals; the renewal
charge (one off-session PaymentIntent per invoice) is the same call either way.

Run: .venv/bin/python bench/renewals.py [--n 2000] [--warmup 50] [--sample 20]
(``--margin`` is the slack in seconds added before each T beyond the estimated setup.)
Progress goes to stderr; the last line of stdout is one JSON object:
{"renewals_per_s", "floor_per_s", "ratio", "worker_cpu_ms_per_renewal",
 "actions_per_renewal", "kb_per_cached_workflow"}
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
from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.api.history.v1 import HistoryEvent  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.common import SearchAttributePair, TypedSearchAttributes  # noqa: E402

from activities.stripe_gateway import StripeGateway  # noqa: E402
from bench import _floor  # noqa: E402
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
MAX_LEAD_SECONDS = 900.0
FLOOR_TASK_QUEUE = "bench-floor"


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


def lead_seconds(n: int, setup_per_s: float, margin: float) -> float:
    """Time from now to T: the setup's estimated time with half again for a busy
    machine, plus the margin."""
    return min(n / max(setup_per_s, 5.0) * 1.5 + margin, MAX_LEAD_SECONDS)


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in sorted(after)}


def ms_each(used: dict[str, float], count: int) -> str:
    return ", ".join(f"{name} {seconds * 1000 / count:.1f}" for name, seconds in used.items())


class Floor:
    """Floor phases: N floor workflows whose timers end at one instant (``bench/_floor.py``)."""

    def __init__(
        self, running: Stack, client: Client, status: Path, args: argparse.Namespace
    ) -> None:
        self.running = running
        self.client = client
        self.status = status
        self.args = args
        self.setup_per_s = 0.0

    def count(self, what: str, phase: str) -> int:
        return int(_floor.read_status(self.status)[what].get(phase, 0))

    async def start(self, phase: str, n: int, until: float) -> float:
        """Start ``n`` floor workflows waiting until ``until`` (unix time); returns once
        all wait on their timer, and sets the setup rate from how long that took."""
        started = time.monotonic()

        async def start(i: int) -> None:
            await self.client.start_workflow(
                _floor.WORKFLOW_NAME,
                args=[phase, until],
                id=f"floor-{phase}-{i}",
                task_queue=FLOOR_TASK_QUEUE,
            )

        await bounded(n, self.args.concurrency, start, f"floor {phase}: starts")
        done = await wait_for(
            f"floor {phase}: runs waiting on their timer",
            lambda: self.count("waiting", phase),
            n,
            max(until - time.time(), 60.0),
            self.running.check_alive,
        )
        self.setup_per_s = n / (done - started)
        return self.setup_per_s

    async def warm_up(self, n: int) -> None:
        await self.start("warm-up", n, time.time() + 86400)
        progress(f"floor warm-up: {n} workflows started at {self.setup_per_s:.0f}/s")

    async def measure(self, phase: str, n: int) -> tuple[float, dict[str, float]]:
        """Seconds from T until all ``n`` have continued as new; CPU seconds meanwhile."""
        lead = lead_seconds(n, self.setup_per_s, self.args.margin)
        until = float(int(time.time() + lead))
        progress(f"floor {phase}: {n} workflows, timers ending at T (in {lead:.0f} s)")
        await self.start(phase, n, until)
        if time.time() >= until:
            progress(f"WARNING: floor {phase}: T passed before all {n} were waiting on it")
        await asyncio.sleep(max(0.0, until - time.time()))
        cpu_at_t = self.running.cpu_by_component()
        await wait_for(
            f"floor {phase}: continued as new",
            lambda: self.count("continued", phase),
            n,
            self.args.timeout,
            self.running.check_alive,
        )
        used = cpu_used(cpu_at_t, self.running.cpu_by_component())
        seconds = _floor.read_status(self.status)["last_continued"][phase] - until
        progress(
            f"floor {phase}: {n} continued as new {seconds:.1f} s after T: {n / seconds:.1f}/s; "
            f"CPU ms per floor workflow: {ms_each(used, n)}"
        )
        return seconds, used


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


# Temporal Cloud counts these as actions (docs.temporal.io/cloud/actions); markers
# (local activities) once per workflow task, however many the task recorded.
ACTION_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    EventType.EVENT_TYPE_TIMER_STARTED,
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
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
    actions += len(
        {
            e.marker_recorded_event_attributes.workflow_task_completed_event_id
            for e in segment
            if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        }
    )
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
        floor_status = running.log_dir / "floor-status.json"
        floor_pid = running.spawn(
            "floor-worker",
            [
                sys.executable,
                str(REPO / "bench" / "_floor.py"),
                "--address",
                running.temporal_address,
                "--task-queue",
                FLOOR_TASK_QUEUE,
                "--status",
                str(floor_status),
                # Every floor run stays cached, as every subscription does in the worker.
                "--max-cached-workflows",
                str(2 * n + warmup + CACHE_HEADROOM),
            ],
        )
        progress(f"floor worker pid {floor_pid}: bench/_floor.py")
        settings = Settings(
            env="test",
            database_url=running.database_url or "",
            temporal_address=running.temporal_address,
            task_queue=running.task_queue,
            stripe_api_base=running.stripe_api_base,
            stripe_api_key=STRIPE_API_KEY,
        )
        assert running.postgres_cpu is not None
        watch_postgres = asyncio.create_task(running.postgres_cpu.watch())
        client = await temporal.connect(settings)
        # The floor's workflows are started with the default data converter, as a
        # client with no Dunwell code would.
        floor_client = await Client.connect(running.temporal_address)
        await running.wait_for_worker(client)
        await running.wait_for_worker(floor_client, FLOOR_TASK_QUEUE)
        invoices = Invoices(settings.database_url)
        floor = Floor(running, floor_client, floor_status, args)
        try:
            await floor.warm_up(warmup)
            before_s, before_cpu = await floor.measure("before", n)

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
            lead = lead_seconds(n, first_rate, args.margin)
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
            renewal_cpu = cpu_used(cpu_at_t, running.cpu_by_component())
            progress(f"{n} renewals paid {done_at - t_mono:.1f} s after T: {renewals_per_s:.1f}/s")
            progress(f"CPU ms per renewal: {ms_each(renewal_cpu, n)}")

            await asyncio.sleep(1.0)  # let the last continue-as-new runs reach their timer
            actions, events, kinds = await sample_actions(client, runs, args.sample)
            progress(
                f"renewal segment of {min(args.sample, n)} sampled workflows: "
                f"{actions:.1f} actions, {events:.1f} history events; per renewal: "
                + ", ".join(f"{k}={v:g}" for k, v in sorted(kinds.items()))
            )

            waited = await running.wait_idle(("temporal", "worker", "floor-worker"))
            progress(f"worker and Temporal idle {waited:.1f} s after the renewals")
            after_s, after_cpu = await floor.measure("after", n)
        finally:
            invoices.close()
            watch_postgres.cancel()

    floor_per_s = 2 * n / (before_s + after_s)
    floor_cpu = {
        name: before_cpu.get(name, 0.0) + after_cpu.get(name, 0.0)
        for name in ("temporal", "floor-worker")
    }
    progress(
        f"floor: {n / before_s:.1f}/s before, {n / after_s:.1f}/s after, {floor_per_s:.1f}/s "
        f"together; CPU ms per floor workflow: {ms_each(floor_cpu, 2 * n)}"
    )
    result = {
        "renewals_per_s": round(renewals_per_s, 1),
        "floor_per_s": round(floor_per_s, 1),
        "ratio": round(renewals_per_s / floor_per_s, 3),
        "worker_cpu_ms_per_renewal": round(renewal_cpu["worker"] * 1000 / n, 1),
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
    parser.add_argument(
        "--margin", type=float, default=10.0, help="seconds before each T beyond the setup"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="wait limit per phase (s)")
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
        f"renewals: {result['renewals_per_s']}/s against a floor of {result['floor_per_s']}/s "
        f"(ratio {result['ratio']}, target >= 0.85); worker CPU "
        f"{result['worker_cpu_ms_per_renewal']} ms per renewal (target <= 12); "
        f"actions per renewal: {result['actions_per_renewal']}; worker memory: "
        f"{result['kb_per_cached_workflow']} KB per cached workflow (target <= 200)"
    )
    print(json.dumps(result), flush=True)
    # The temporalio bridge can abort the interpreter at shutdown (sdk-python issue 300).
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
