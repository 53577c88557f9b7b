"""Outbound event delivery: events/s to one receiver, change-to-delivery latency, and
lost or duplicated deliveries as the receiver sees them.

Each run starts the real components afresh (``bench/_stack.py``): the Temporal dev
server (in memory), PostgreSQL (a database of its own, dropped at the end), the worker
(``dunwell worker``, which runs the endpoint's delivery workflow and its activities)
and the receiver (``bench/_receiver.py``, uvicorn, verifying every signature), each a
subprocess. Phases of a run:

1. Baseline: ``--baseline-posts`` bare signed POSTs to the receiver from this one
   process (httpx, Standard Webhooks signatures, as many in flight as the delivery
   activity allows): POSTs/s, the most one process gets out of this receiver here.
2. Throughput: ``--events`` events across ``--subscriptions`` subscriptions written to
   the outbox (as the changes that cause them write them), then the endpoint's
   delivery workflow is woken; delivered events/s from the wake to the last arrival.
3. Latency: events written one transaction each, open loop at ``--rate``/s for
   ``--latency-seconds``; p99 from the commit of the change to its arrival at the
   receiver (both wall clock, on this machine).
4. Accounting: every event id of phases 2 and 3 against what the receiver accepted:
   ``lost`` = never arrived; ``duplicated`` = copies beyond the first (before dedupe;
   after dedupe by id there are none by construction).

The ratio is delivered/s over the same run's baseline POSTs/s. With ``--runs`` N the
figures are medians over the runs (the ratio is the median of the runs' ratios). The
last line is the JSON the targets are read from:
``{"delivered_per_s", "baseline_posts_per_s", "ratio", "p99_ms", "lost", "duplicated"}``.
Targets (issue 17): ratio >= 0.5; p99 < 1 s at 100 events/s; 0 lost, 0 duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._phases import percentile
from bench._stack import Stack, free_port, port_answers, progress, stop_on_sigterm

CONCURRENCY = 32  # the delivery activity's default


@dataclass(frozen=True)
class RunFigures:
    delivered_per_s: float
    baseline_posts_per_s: float
    p99_ms: float
    lost: int
    duplicated: int

    @property
    def ratio(self) -> float:
        if self.baseline_posts_per_s <= 0:
            return float("nan")
        return self.delivered_per_s / self.baseline_posts_per_s


async def baseline(url: str, secret: str, posts: int) -> float:
    """Bare signed POSTs/s from this process to the receiver."""
    from activities.outbound_http import event_body, signature

    now = datetime.now(UTC)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(posts):
        queue.put_nowait(n)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=CONCURRENCY)) as client:

        async def lane() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                event_id = f"evt_baseline_{n}"
                body = event_body(event_id, "invoice.paid", now, {"object": {"n": n}})
                at = datetime.now(UTC).replace(microsecond=0)
                headers = {
                    "content-type": "application/json",
                    "webhook-id": event_id,
                    "webhook-timestamp": str(int(at.timestamp())),
                    "webhook-signature": signature([secret], event_id, at, body),
                }
                response = await client.post(url, content=body, headers=headers)
                response.raise_for_status()

        started = time.monotonic()
        await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))
        return posts / (time.monotonic() - started)


class Arrivals:
    """What the receiver has accepted, fetched incrementally."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.ids: list[str] = []
        self.times: list[float] = []
        self.refused = 0

    async def refresh(self, client: httpx.AsyncClient) -> None:
        data = (await client.get(f"{self.base}/_stats", params={"since": len(self.ids)})).json()
        self.ids += data["ids"]
        self.times += data["times"]
        self.refused = data["refused"]

    async def wait_for(self, client: httpx.AsyncClient, wanted: set[str], timeout: float) -> float:
        """Until every wanted id arrived (or the timeout); the wall time of the last."""
        deadline = time.monotonic() + timeout
        while True:
            await self.refresh(client)
            missing = wanted - set(self.ids)
            if not missing or time.monotonic() > deadline:
                arrived = [t for i, t in zip(self.ids, self.times, strict=True) if i in wanted]
                return max(arrived, default=time.time())
            await asyncio.sleep(0.1)


async def one_run(args: argparse.Namespace, run: int) -> RunFigures:
    from temporalio.client import Client

    from dunwell.converter import data_converter
    from dunwell.outbound_start import wake_delivery
    from ledger import unit_of_work
    from ledger.db import make_engine
    from ledger.outbound import OutboxEvent, endpoints, outbox

    with Stack(f"outbound{run}") as running:
        database_url = running.start_database()
        running.start_temporal()
        port = free_port()
        receiver_url = f"http://127.0.0.1:{port}/hooks"
        engine = make_engine(database_url, pool_size=4, max_overflow=4)
        endpoint, secret = endpoints.register(
            engine,
            url=receiver_url,
            event_types=["subscription.updated", "invoice.paid"],
            description="bench",
            at=datetime.now(UTC),
        )
        running.spawn(
            "receiver",
            [sys.executable, str(Path(__file__).parent / "_receiver.py"),
             "--port", str(port), "--secret", secret],
        )  # fmt: skip
        running._wait_until("receiver", lambda: port_answers(port))
        running.start_worker()
        client = await Client.connect(running.temporal_address, data_converter=data_converter)
        await running.wait_for_worker(client)
        base = f"http://127.0.0.1:{port}"

        progress(f"run {run}: baseline, {args.baseline_posts} bare signed POSTs")
        posts_per_s = await baseline(receiver_url, secret, args.baseline_posts)
        arrivals = Arrivals(base)
        async with httpx.AsyncClient(timeout=30) as http:
            await arrivals.refresh(http)

            progress(f"run {run}: writing {args.events} events to the outbox")
            subscriptions = [f"sub_bench_{n:05d}" for n in range(args.subscriptions)]
            batch: list[OutboxEvent] = []
            throughput_ids: set[str] = set()
            at = datetime.now(UTC)
            for n in range(args.events):
                subscription_id = subscriptions[n % len(subscriptions)]
                event = OutboxEvent(
                    key=f"bench:{run}:{n}",
                    type="invoice.paid" if n % 2 else "subscription.updated",
                    occurred_at=at,
                    data={"subscription_id": subscription_id, "n": n},
                    subscription_id=subscription_id,
                )
                batch.append(event)
                throughput_ids.add(event.id)
                if len(batch) == 1_000 or n == args.events - 1:
                    written = list(batch)
                    unit_of_work.transact(engine, lambda c, w=written: outbox.record(c, w, at=at))
                    batch.clear()
            progress(f"run {run}: delivering")
            started = time.time()
            await wake_delivery(client, running.task_queue, endpoint.id)
            last = await arrivals.wait_for(http, throughput_ids, args.phase_timeout)
            delivered = len(throughput_ids & set(arrivals.ids))
            delivered_per_s = delivered / max(last - started, 1e-6)

            progress(f"run {run}: latency at {args.rate:g} events/s")
            committed: dict[str, float] = {}
            interval = 1 / args.rate
            total = int(args.rate * args.latency_seconds)
            begin = time.monotonic()
            for n in range(total):
                await asyncio.sleep(max(0.0, begin + n * interval - time.monotonic()))
                subscription_id = subscriptions[n % len(subscriptions)]
                event = OutboxEvent(
                    key=f"bench:{run}:latency:{n}:{uuid.uuid4().hex}",
                    type="invoice.paid",
                    occurred_at=datetime.now(UTC),
                    data={"subscription_id": subscription_id, "n": n},
                    subscription_id=subscription_id,
                )
                await asyncio.to_thread(
                    unit_of_work.transact,
                    engine,
                    lambda c, e=event: outbox.record(c, [e], at=e.occurred_at),
                )
                committed[event.id] = time.time()
            await arrivals.wait_for(http, set(committed), args.phase_timeout)
            first_arrival: dict[str, float] = {}
            for event_id, t in zip(arrivals.ids, arrivals.times, strict=True):
                first_arrival.setdefault(event_id, t)
            latencies = [
                (first_arrival[i] - committed[i]) * 1000 for i in committed if i in first_arrival
            ]
            wanted = throughput_ids | set(committed)
            received = [i for i in arrivals.ids if i in wanted]
            lost = len(wanted - set(received))
            duplicated = len(received) - len(set(received))
            if arrivals.refused:
                progress(f"run {run}: the receiver refused {arrivals.refused} signatures")
        engine.dispose()
        figures = RunFigures(
            delivered_per_s=delivered_per_s,
            baseline_posts_per_s=posts_per_s,
            p99_ms=percentile(latencies, 0.99),
            lost=lost,
            duplicated=duplicated,
        )
        print(
            f"run {run}: delivered {delivered_per_s:.0f} events/s, baseline "
            f"{posts_per_s:.0f} POSTs/s, ratio {figures.ratio:.2f}, p99 {figures.p99_ms:.0f} ms "
            f"at {args.rate:g}/s, lost {lost}, duplicated {duplicated}",
            flush=True,
        )
        return figures


def summarize(runs: list[RunFigures]) -> dict[str, float | int]:
    return {
        "delivered_per_s": round(statistics.median(r.delivered_per_s for r in runs), 1),
        "baseline_posts_per_s": round(statistics.median(r.baseline_posts_per_s for r in runs), 1),
        "ratio": round(statistics.median(r.ratio for r in runs), 3),
        "p99_ms": round(statistics.median(r.p99_ms for r in runs), 1),
        "lost": max(r.lost for r in runs),
        "duplicated": max(r.duplicated for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--subscriptions", type=int, default=1_000)
    parser.add_argument("--baseline-posts", type=int, default=5_000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--phase-timeout", type=float, default=600.0)
    args = parser.parse_args()
    stop_on_sigterm()
    runs = [asyncio.run(one_run(args, run)) for run in range(1, args.runs + 1)]
    summary = summarize(runs)
    print(
        f"median of {len(runs)}: delivered {summary['delivered_per_s']} events/s, "
        f"baseline {summary['baseline_posts_per_s']} POSTs/s (same runs), ratio "
        f"{summary['ratio']} (target >= 0.5), p99 {summary['p99_ms']} ms at {args.rate:g}/s "
        f"(target < 1000), lost {summary['lost']}, duplicated {summary['duplicated']}",
        flush=True,
    )
    print(json.dumps(summary))
    # The process held a Temporal client: leave without the interpreter's teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
