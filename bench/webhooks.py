"""Webhook intake throughput, acknowledgement latency and exactly-once application.

Each run starts the real components afresh (``bench/_stack.py``): the Temporal dev
server (in memory), PostgreSQL (a database of its own, dropped at the end of the run),
localstripe, the API (``dunwell api``, uvicorn) and the worker (``dunwell worker``),
each a subprocess. Phases of a run:

0. ``--subscriptions`` subscription workflows are started first, idle, as the intake's
   signal-with-start would start them (so intake and baseline both signal running
   workflows).
1. Baseline: bare Temporal signals/s, ``gateway_event`` signalled to those workflows
   straight from a client, ``--concurrency`` in flight, as many as phase 3 sends.
2. Bare-signal latency: as many signals as phase 4 sends, open loop at ``--rate``/s,
   with the same bound on signals in flight as phase 4 has on requests; p50/p99 of each
   call (issued -> answered, the wait for a free slot included): Temporal's own share of
   the intake's latency, measured at the same rate in the same run.
3. Throughput: Stripe-shaped events signed with ``Stripe-Signature`` POSTed to
   ``/webhooks/stripe``, ``--concurrency`` in flight; events/s acknowledged (HTTP 200,
   duplicates included) over the wall time of the phase.
4. Latency: more events sent open loop at ``--rate`` events/s; p50/p99 acknowledgement
   latency (request issued -> response read, per attempt, measured in this process; a
   timed-out attempt counts with its waiting time). Events never acknowledged are
   delivered again afterwards, as Stripe retries. Above the intake's capacity the
   latency is queueing time and grows with the run's length.
5. Accounting: each workflow's ``state`` query, once every event has been handled.

Between phases the bench waits until the worker and Temporal are idle, so a phase is
not measured while the worker still applies the previous phase's signals. Requests go
through ``bench/_http.py`` (keep-alive connections): the sender shares the machine's two
cores with what it measures and must cost little.

Every run ends. Requests and signals in flight are bounded: a fixed number of lanes
(``--concurrency``) in the closed-loop phases, 200 connections or signal slots in the
paced ones. Each request or signal times out after 10 s, the wait for a free connection
or slot included (it is then an unacknowledged attempt; a request is tried 3 times).
Unacknowledged events are delivered again after their phase, in a few rounds, as Stripe
retries; those never acknowledged are reported. Each phase also stops after
``--phase-timeout`` seconds: what is still in flight is cancelled, what is not sent yet
is dropped, and the run reports how many were done, cut off and never started, marks
itself as timed out, and goes on. Only events sent at least once are accounted for.

Events. Each subscription gets ``--events`` events on one invoice in phase 3
(``invoice.created``, ``.finalized``, ``.paid``, ...) and two on one PaymentIntent in
phase 4, with increasing ``created``. Sends go round-robin over the subscriptions, so
with 1,000 subscriptions two events of one subscription are not in flight together and
arrive in send order (timeouts and retries can still reorder them).
``--out-of-order`` (10 %) of the events swap places with the next event of their
object; ``--duplicates`` (10 %) of the events are sent again, at a random later place
(sometimes while the first copy is still in flight).

Exactly once. Stripe events carry no sequence number; the workflow applies an event
when its order key (lifecycle rank, created, id) is above the last applied for the same
object, and records it as *stale* (handled, not applied) otherwise (see
``billing/events.py``), so an invoice never moves backwards. An out-of-order event
therefore ends up stale when a later event of its object came first. Per unique event
sent: ``lost`` = neither applied nor recorded stale when the run ends (an event never
acknowledged counts there too unless the intake took it after all); ``double_applied`` =
applied more than once. The outcome predicted by that rule for the send order is compared too
(printed as "outcome differs from the ordering rule").

Run: .venv/bin/python bench/webhooks.py [--runs 3] [--subscriptions 1000] [--events 3]
Each run prints its figures on a line of stdout; progress goes to stderr. The last line
of stdout is one JSON object over the runs:
{"events_per_s", "baseline_signals_per_s", "ratio", "p99_ms", "bare_p99_ms", "lost",
 "double_applied"}
Each figure is the median of the runs (``ratio`` is the median of the runs' own ratios,
so it need not equal the quotient of the two medians), except ``lost`` and
``double_applied``: the worst run's, i.e. the largest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == REPO / "bench":
    sys.path[0] = str(REPO)  # bench/tax.py would shadow the tax package

from temporalio.client import Client  # noqa: E402
from temporalio.service import RPCError  # noqa: E402

from bench._http import HttpError, Pool  # noqa: E402
from bench._phases import bounded, paced, percentile  # noqa: E402
from bench._stack import (  # noqa: E402
    WEBHOOK_SECRET,
    Stack,
    machine_load,
    progress,
    stop_on_sigterm,
)
from bench._webhook_events import (  # noqa: E402
    INTENT_TYPES,
    INVOICE_TYPES,
    Event,
    account,
    letters,
    plan_sends,
    predicted_outcomes,
    signature,
)
from billing.events import GatewayEvent, SubscriptionStart, stripe_event  # noqa: E402
from dunwell import temporal  # noqa: E402
from dunwell.settings import Settings  # noqa: E402
from workflows.subscription import SubscriptionWorkflow  # noqa: E402
from workflows.subscription.state import SubscriptionState  # noqa: E402

SEND_ATTEMPTS = 3  # a 5xx or a timeout is retried at once, as Stripe retries later
REQUEST_TIMEOUT_SECONDS = 10.0
REDELIVERY_ROUNDS = 5
PACED_IN_FLIGHT = 200  # the paced runs' bound on requests in flight
SETTLE_TIMEOUT_SECONDS = 180.0
IDLE_TIMEOUT_SECONDS = 120.0


# --- sending ------------------------------------------------------------------------------


@dataclass
class Tally:
    statuses: Counter[str]
    latencies_ms: list[float]
    unacknowledged: list[Event]
    errors: int = 0

    @classmethod
    def new(cls) -> Tally:
        return cls(Counter(), [], [])


async def post(http: Pool, event: Event, tally: Tally) -> None:
    """One delivery attempt cycle; an event still unacknowledged is left for ``redeliver``
    (also when its phase timed out and cancelled it)."""
    try:
        for attempt in range(SEND_ATTEMPTS):
            headers = {
                "Stripe-Signature": signature(event.body, WEBHOOK_SECRET),
                "Content-Type": "application/json",
            }
            started = time.perf_counter()
            try:
                response = await http.post("/webhooks/stripe", event.body, headers)
            except (HttpError, asyncio.CancelledError) as err:
                # The sender waited this long without an acknowledgement (a wait for a
                # free connection included).
                tally.latencies_ms.append((time.perf_counter() - started) * 1000)
                if isinstance(err, asyncio.CancelledError):
                    raise
                tally.errors += 1
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code == 200:
                tally.latencies_ms.append(elapsed)
                tally.statuses[response.json()["status"]] += 1
                return
            tally.errors += 1
            if response.status_code < 500:
                raise SystemExit(
                    f"intake refused {event.event_id}: {response.status_code} {response.text}"
                )
            await asyncio.sleep(0.2 * (attempt + 1))
    except asyncio.CancelledError:
        tally.unacknowledged.append(event)
        raise
    tally.unacknowledged.append(event)


async def redeliver(http: Pool, tally: Tally, concurrency: int, timeout: float) -> tuple[int, int]:
    """Send again what was never acknowledged, as Stripe retries (a few rounds, further
    apart each time); how many events needed it, and how many were still never
    acknowledged after the last round."""
    pending, tally.unacknowledged = tally.unacknowledged, []
    late = len(pending)
    for round_ in range(REDELIVERY_ROUNDS):
        if not pending:
            break
        progress(f"{len(pending)} events unacknowledged; delivering them again")
        await asyncio.sleep(2.0 * round_)
        retry = Tally.new()
        phase = await bounded(
            pending, concurrency, lambda e, t=retry: post(http, e, t), "redelivery", timeout
        )
        pending = retry.unacknowledged + list(pending[phase.started :])
    if pending:
        progress(f"WARNING: {len(pending)} events never acknowledged")
    return late, len(pending)


async def quiesce(running: Stack, what: str) -> None:
    """Let the worker apply one phase's signals before the next phase is measured."""
    waited = await running.wait_idle(timeout=IDLE_TIMEOUT_SECONDS)
    if waited >= IDLE_TIMEOUT_SECONDS:
        progress(f"WARNING: worker and Temporal still busy {waited:.0f} s after {what}")
    else:
        progress(f"worker and Temporal idle {waited:.1f} s after {what}")


def report_cpu(
    running: Stack,
    before: dict[str, float],
    elapsed: float,
    label: str,
    count: int,
    *,
    after: dict[str, float] | None = None,
) -> None:
    """CPU each component used during a phase (the machine is small and shared)."""
    after = after or running.cpu_by_component()
    used = {name: seconds - before.get(name, 0.0) for name, seconds in after.items()}
    progress(
        f"CPU seconds during the {elapsed:.1f} s {label} run: "
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in used.items())
        + f" ({os.cpu_count()} CPUs = {(os.cpu_count() or 1) * elapsed:.1f} s); ms per "
        + f"{label} event: "
        + ", ".join(
            f"{name} {seconds * 1000 / max(count, 1):.2f}" for name, seconds in used.items()
        )
    )


# --- accounting ---------------------------------------------------------------------------


async def query_states(
    client: Client, subscriptions: Sequence[str], concurrency: int
) -> dict[str, SubscriptionState]:
    """The state of every workflow that answers; one whose task is failing (it is retried
    by Temporal) is left out this time."""
    states: dict[str, SubscriptionState] = {}
    failures: Counter[str] = Counter()

    async def one(sub: str) -> None:
        handle = client.get_workflow_handle_for(SubscriptionWorkflow.run, f"subscription-{sub}")
        try:
            states[sub] = await handle.query(
                SubscriptionWorkflow.state, rpc_timeout=timedelta(seconds=REQUEST_TIMEOUT_SECONDS)
            )
        except RPCError as err:
            failures[err.message[:80]] += 1

    await bounded(list(subscriptions), concurrency, one, "state queries", SETTLE_TIMEOUT_SECONDS)
    if failures:
        progress(f"queries not answered this time: {dict(failures)}")
    return states


async def settle(
    client: Client, subscriptions: Sequence[str], unique: Sequence[Event], concurrency: int
) -> dict[str, SubscriptionState]:
    """Query until every workflow answers and every sent event is accounted for (signals
    are applied asynchronously, and a failed workflow task is retried by Temporal)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    states: dict[str, SubscriptionState] = {}
    while True:
        missing = [sub for sub in subscriptions if sub not in states]
        states.update(await query_states(client, missing, concurrency))
        lost, _double, _outcome = account(states, unique)
        if (lost == 0 and len(states) == len(subscriptions)) or time.monotonic() > deadline:
            if len(states) < len(subscriptions):
                progress(f"WARNING: {len(subscriptions) - len(states)} workflows never answered")
            return states
        progress(
            f"{len(states)}/{len(subscriptions)} workflows answered, {lost} events unaccounted"
        )
        await asyncio.sleep(2.0)
        # Events still in flight to a workflow that answered: ask it again.
        pending = {e.subscription_id for e in unique}
        for sub in list(states):
            if sub in pending and lost:
                del states[sub]


# --- one run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFigures:
    events_per_s: float
    baseline_signals_per_s: float
    p50_ms: float
    p99_ms: float
    bare_p50_ms: float
    bare_p99_ms: float
    lost: int
    double_applied: int
    never_acknowledged: int
    timed_out: tuple[str, ...]

    @property
    def ratio(self) -> float:
        if not self.baseline_signals_per_s:
            return math.nan  # no bare signal went through: nothing to compare with
        return self.events_per_s / self.baseline_signals_per_s

    def line(self) -> str:
        timed_out = f"; TIMED OUT: {', '.join(self.timed_out)}" if self.timed_out else ""
        return (
            f"{self.events_per_s:.1f} events/s vs {self.baseline_signals_per_s:.1f} bare "
            f"signals/s (ratio {self.ratio:.3f}); acknowledgement p50 {self.p50_ms:.1f} ms, "
            f"p99 {self.p99_ms:.1f} ms; bare signals p50 {self.bare_p50_ms:.1f} ms, p99 "
            f"{self.bare_p99_ms:.1f} ms; lost {self.lost}, double applied "
            f"{self.double_applied}, never acknowledged {self.never_acknowledged}{timed_out}"
        )


async def run_once(args: argparse.Namespace) -> RunFigures:
    rng = random.Random(args.seed)
    subscriptions = [f"whk{letters(i)}" for i in range(args.subscriptions)]
    now = int(time.time())
    throughput_sends, swapped_1 = plan_sends(
        rng,
        subscriptions,
        (*INVOICE_TYPES[: args.events - 1], "invoice.paid"),
        "in",
        now - 3600,
        args.out_of_order,
        args.duplicates,
    )
    paced_sends, swapped_2 = plan_sends(
        rng, subscriptions, INTENT_TYPES, "pi", now - 1800, args.out_of_order, args.duplicates
    )
    unique_planned = {e.event_id for e in throughput_sends + paced_sends}
    progress(
        f"{len(subscriptions)} subscriptions; throughput run {len(throughput_sends)} sends, "
        f"paced run {len(paced_sends)} sends; {len(unique_planned)} unique events, "
        f"{len(throughput_sends) + len(paced_sends) - len(unique_planned)} duplicates, "
        f"{swapped_1 + swapped_2} swapped pairs"
    )
    timeout = args.phase_timeout
    rpc_timeout = timedelta(seconds=REQUEST_TIMEOUT_SECONDS)
    timed_out: list[str] = []

    with Stack("webhooks") as running:
        running.start_database()
        running.start_temporal()
        running.start_localstripe()
        running.start_worker()
        api_base = running.start_api()
        settings = Settings(
            env="test",
            database_url=running.database_url or "",
            temporal_address=running.temporal_address,
            task_queue=running.task_queue,
        )
        assert running.postgres_cpu is not None
        watch_postgres = asyncio.create_task(running.postgres_cpu.watch())
        client = await temporal.connect(settings)
        await running.wait_for_worker(client)

        async def start(sub: str) -> None:
            await client.start_workflow(
                SubscriptionWorkflow.run,
                SubscriptionStart(subscription_id=sub),
                id=f"subscription-{sub}",
                task_queue=settings.task_queue,
                rpc_timeout=rpc_timeout,
            )

        phase = await bounded(subscriptions, 50, start, "workflow starts", timeout)
        if phase.timed_out:
            raise SystemExit("the subscription workflows did not all start; nothing to measure")
        progress(
            f"{len(subscriptions)} idle subscription workflows started in {phase.elapsed:.1f} s"
        )
        await quiesce(running, "the workflow starts")

        # Baseline: the same signal the intake sends, straight from a client.
        baseline_events = [
            stripe_event(json.loads(e.body))
            for e in plan_sends(
                rng,
                subscriptions,
                (*INVOICE_TYPES, "invoice.paid"),
                "in",
                now - 7200,
                0.0,
                0.0,
            )[0][: len(throughput_sends)]
        ]
        signal_failures: Counter[str] = Counter()

        async def signal(event: Any) -> None:
            assert isinstance(event, GatewayEvent)
            handle = client.get_workflow_handle(f"subscription-{event.subscription_id}")
            try:
                await handle.signal(
                    SubscriptionWorkflow.gateway_event, event, rpc_timeout=rpc_timeout
                )
            except RPCError as err:
                signal_failures[err.message[:80]] += 1
                raise

        async def counted_signal(event: Any) -> None:
            with contextlib.suppress(RPCError):
                await signal(event)

        cpu_before = running.cpu_by_component()
        phase = await bounded(
            baseline_events, args.concurrency, counted_signal, "baseline signals", timeout
        )
        timed_out += ["baseline signals"] if phase.timed_out else []
        signalled = phase.started - len(phase.cut) - sum(signal_failures.values())
        baseline = signalled / phase.elapsed
        progress(
            f"baseline: {baseline:.0f} bare signals/s ({args.concurrency} in flight"
            + (f"; failed: {dict(signal_failures)}" if signal_failures else "")
            + ")"
        )
        report_cpu(running, cpu_before, phase.elapsed, "baseline", signalled)
        running.check_alive()
        await quiesce(running, "the baseline signals")

        # The same signals at the paced run's rate, with the same bound on requests in
        # flight: Temporal's own share of the intake's latency.
        signal_ms: list[float] = []
        signal_failures.clear()
        slots = asyncio.Semaphore(PACED_IN_FLIGHT)

        async def timed_signal(event: Any) -> None:
            started = time.perf_counter()
            try:
                # As for a request, the wait for a free slot counts.
                async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS), slots:
                    await signal(event)
            except (RPCError, TimeoutError):
                pass
            finally:
                signal_ms.append((time.perf_counter() - started) * 1000)

        paced_baseline = [
            stripe_event(json.loads(e.body))
            for e in plan_sends(rng, subscriptions, INTENT_TYPES, "pi", now - 5400, 0.0, 0.0)[0][
                : len(paced_sends)
            ]
        ]
        phase, _behind = await paced(
            paced_baseline, args.rate, timed_signal, "paced bare signals", timeout
        )
        timed_out += ["paced bare signals"] if phase.timed_out else []
        bare_p50, bare_p99 = percentile(signal_ms, 0.5), percentile(signal_ms, 0.99)
        progress(
            f"bare signals at {args.rate:.0f}/s: p50 {bare_p50:.1f} ms, p99 {bare_p99:.1f} ms"
            + (f" (failed: {dict(signal_failures)})" if signal_failures else "")
        )
        await quiesce(running, "the paced bare signals")

        async with Pool(api_base, size=args.concurrency, timeout=REQUEST_TIMEOUT_SECONDS) as http:
            tally = Tally.new()
            cpu_before = running.cpu_by_component()
            phase = await bounded(
                throughput_sends,
                args.concurrency,
                lambda e: post(http, e, tally),
                "intake",
                timeout,
            )
            timed_out += ["intake"] if phase.timed_out else []
            throughput_sent = phase.started
            acknowledged = sum(tally.statuses.values())
            events_per_s = acknowledged / phase.elapsed
            cpu_after = running.cpu_by_component()
            late_1, never_1 = await redeliver(http, tally, args.concurrency, timeout)
            progress(
                f"intake: {events_per_s:.0f} events/s acknowledged ({dict(tally.statuses)}, "
                f"{tally.errors} errors, {late_1} redelivered later); latency under load p50 "
                f"{percentile(tally.latencies_ms, 0.5):.1f} ms, p99 "
                f"{percentile(tally.latencies_ms, 0.99):.1f} ms"
            )
            report_cpu(running, cpu_before, phase.elapsed, "intake", acknowledged, after=cpu_after)
            running.check_alive()
        await quiesce(running, "the intake run's events")

        async with Pool(api_base, size=PACED_IN_FLIGHT, timeout=REQUEST_TIMEOUT_SECONDS) as http:
            progress(f"paced run: {len(paced_sends)} events at {args.rate:.0f}/s")
            latency = Tally.new()
            phase, behind = await paced(
                paced_sends, args.rate, lambda e: post(http, e, latency), "paced run", timeout
            )
            timed_out += ["paced run"] if phase.timed_out else []
            paced_sent = phase.started
            late_2, never_2 = await redeliver(http, latency, args.concurrency, timeout)
        p50 = percentile(latency.latencies_ms, 0.5)
        p99 = percentile(latency.latencies_ms, 0.99)
        progress(
            f"paced run: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max "
            f"{max(latency.latencies_ms, default=math.nan):.1f} ms ({dict(latency.statuses)}, "
            f"{latency.errors} errors, {late_2} redelivered later; sender at most "
            f"{behind * 1000:.0f} ms behind)"
        )

        # Only what was sent at least once is accounted for.
        sent = list(throughput_sends[:throughput_sent]) + list(paced_sends[:paced_sent])
        unique = list({e.event_id: e for e in sent}.values())
        states = await settle(client, subscriptions, unique, args.concurrency)
        lost, double, outcome = account(states, unique)
        predicted = predicted_outcomes(sent)
        applied_ids = {i for s in states.values() for i in s.events.applied_ids}
        mismatches = sum(
            1 for e in unique if (predicted[e.event_id] == "applied") != (e.event_id in applied_ids)
        )
        progress(
            f"accounting over {len(unique)} unique events sent: {dict(outcome)}; lost {lost}, "
            f"double applied {double}; outcome differs from the ordering rule for {mismatches}"
        )
        running.check_alive()
        watch_postgres.cancel()

    return RunFigures(
        events_per_s=events_per_s,
        baseline_signals_per_s=baseline,
        p50_ms=p50,
        p99_ms=p99,
        bare_p50_ms=bare_p50,
        bare_p99_ms=bare_p99,
        lost=lost,
        double_applied=double,
        never_acknowledged=never_1 + never_2,
        timed_out=tuple(timed_out),
    )


def summarize(runs: Sequence[RunFigures]) -> dict[str, float | int]:
    """The last line: the median of the runs for each figure (the ratio is the median of
    the runs' ratios), and the worst run for lost and double-applied events."""

    def median(values: Iterable[float]) -> float:
        return statistics.median(values)

    return {
        "events_per_s": round(median(r.events_per_s for r in runs), 1),
        "baseline_signals_per_s": round(median(r.baseline_signals_per_s for r in runs), 1),
        "ratio": round(median(r.ratio for r in runs), 3),
        "p99_ms": round(median(r.p99_ms for r in runs), 2),
        "bare_p99_ms": round(median(r.bare_p99_ms for r in runs), 2),
        "lost": max(r.lost for r in runs),
        "double_applied": max(r.double_applied for r in runs),
    }


# --- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs, each on a fresh stack")
    parser.add_argument("--subscriptions", type=int, default=1000)
    parser.add_argument("--events", type=int, default=3, help="phase-3 events per subscription")
    parser.add_argument("--duplicates", type=float, default=0.10)
    parser.add_argument("--out-of-order", type=float, default=0.10)
    parser.add_argument("--concurrency", type=int, default=20, help="requests in flight")
    parser.add_argument("--rate", type=float, default=200.0, help="paced runs, events/s")
    parser.add_argument("--phase-timeout", type=float, default=300.0, help="limit per phase (s)")
    parser.add_argument("--seed", type=int, default=20261125)
    args = parser.parse_args()
    if args.subscriptions < 1 or not 2 <= args.events <= len(INVOICE_TYPES) + 1:
        parser.error(f"--subscriptions >= 1 and 2 <= --events <= {len(INVOICE_TYPES) + 1}")
    if args.runs < 1 or args.rate <= 0 or args.phase_timeout <= 0:
        parser.error("--runs, --rate and --phase-timeout must be positive")
    stop_on_sigterm()
    runs: list[RunFigures] = []
    for number in range(1, args.runs + 1):
        progress(f"run {number}/{args.runs} start: {machine_load()}")
        runs.append(asyncio.run(run_once(args)))
        print(f"run {number}/{args.runs}: {runs[-1].line()}", flush=True)
    progress(f"end: {machine_load()}")
    result = summarize(runs)
    timed_out = sum(1 for r in runs if r.timed_out)
    print(
        f"intake over {len(runs)} runs (medians): {result['events_per_s']} events/s vs "
        f"{result['baseline_signals_per_s']} bare signals/s (ratio {result['ratio']}, target "
        f">= 0.7); acknowledgement p99 at {args.rate:.0f}/s {result['p99_ms']} ms vs bare "
        f"signals {result['bare_p99_ms']} ms (target: at most 20 ms more); worst run: lost "
        f"{result['lost']}, double applied {result['double_applied']}"
        + (f"; {timed_out} run(s) had a phase time out" if timed_out else "")
    )
    print(json.dumps(result), flush=True)
    # The temporalio bridge can abort the interpreter at shutdown (sdk-python issue 300).
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
