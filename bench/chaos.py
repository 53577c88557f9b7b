"""Chaos: a billing run while faults are injected, then the invariants checked.

Real components only: the Temporal dev server in a SQLite file (so it can be killed and
started again with its state), PostgreSQL (a database of its own), localstripe behind a
fault-injecting proxy (``bench/_faults.py``), two ``dunwell worker`` and two
``dunwell api`` processes.

The run: ``--subscriptions`` subscriptions, each paid at start and renewed in waves of
five spread over ``--duration`` seconds. For those seconds (and until every class has
been injected once), a fault is injected every ``--interval`` seconds in each of three lanes (processes, the
gateway, the rest), chosen at random (``--seed``) from:

    worker-kill     SIGKILL one worker; it is started again 0.5-2 s later
    api-kill        SIGKILL one API process; started again on the same port
    gateway-refuse  the gateway refuses connections for 0.5-2 s
    gateway-stall   the gateway holds connections without an answer for 0.5-2 s
    gateway-500     the gateway answers 500 for 0.5-2 s
    postgres-drop   every connection to the run's database terminated (the server
                    is shared with other work on this machine, so it is not restarted;
                    the processes see what a restart shows them: their connections die)
    temporal-kill   SIGKILL the Temporal dev server; started again on its port and file
    webhook-storm   every payment's ``payment_intent.succeeded``, signed, sent two or
                    three times each, shuffled, to both API processes

Then, with the faults stopped, it waits for every invoice to be paid (or held by a
dunning run), and checks:

    double_charges         invoices with more than one succeeded PaymentIntent at the
                           gateway
    lost_events            webhook events acknowledged (200) but not recorded
    unbalanced_currencies  currencies whose trial balance is not zero
    stuck_invoices         invoices neither paid, in dunning, nor written off
    five_xx                answers 500-599 to the bench's requests, except 503 (the
                           API's documented "nothing changed, try again" while Temporal
                           or the database is away), which is counted apart
    secrets_found          card numbers or secrets in any component log, any database
                           row, or any workflow history

Last, the card-data guard under attack: 1 MiB bodies of ``"1 1 1 …"`` posted while
another client calls ``/healthz``: ``guard_worst_ms`` is the slowest refusal and
``healthz_p99_ms_under_attack`` the p99 of ``/healthz`` meanwhile.

Targets: at least 200 faults per run across every class, every count 0,
``guard_worst_ms`` <= 50 for 1 MiB, ``healthz_p99_ms_under_attack`` <= 100. The default
run fits in 10 minutes; ``--quick`` (CI, tests/bench/test_bench_chaos.py) runs a few
subscriptions and every fault class at least once.

Last line: ``{"faults_injected", "double_charges", "lost_events", "unbalanced_currencies",
"stuck_invoices", "five_xx", "secrets_found", "guard_worst_ms",
"healthz_p99_ms_under_attack"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import re
import sys
import time
import traceback
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == REPO / "bench":
    sys.path[0] = str(REPO)  # bench/tax.py would shadow the tax package

import httpx  # noqa: E402
import psycopg  # noqa: E402
import stripe  # noqa: E402
from temporalio.client import Client  # noqa: E402

from bench._faults import FaultProxy  # noqa: E402
from bench._stack import (  # noqa: E402
    API_KEY,
    OPS_API_KEY,
    STRIPE_API_KEY,
    WEBHOOK_SECRET,
    Stack,
    free_port,
    progress,
    psycopg_url,
)
from bench._webhook_events import make_event, signature  # noqa: E402
from bench.renewals import (  # noqa: E402
    CURRENCY,
    PLANS,
    gateway_customers,
    plan_ending_at,
    start_subscriptions,
)
from billing.pan import luhn_valid  # noqa: E402
from dunwell import temporal  # noqa: E402
from dunwell.settings import Settings  # noqa: E402

FAULTS = (
    "worker-kill",
    "api-kill",
    "gateway-refuse",
    "gateway-stall",
    "gateway-500",
    "postgres-drop",
    "temporal-kill",
    "webhook-storm",
)
# Three lanes, each one fault at a time, so that faults of different kinds overlap.
LANES = (
    ("worker-kill", "api-kill", "temporal-kill"),
    ("gateway-refuse", "gateway-stall", "gateway-500"),
    ("postgres-drop", "webhook-storm"),
)
# A Temporal restart takes seconds of everyone's time: about one in this many process
# faults.
TEMPORAL_KILL_SHARE = 8
SECRETS = (STRIPE_API_KEY, WEBHOOK_SECRET, API_KEY, OPS_API_KEY)
CLIENT_SECRET = re.compile(r"pi_[A-Za-z0-9]+_secret_[A-Za-z0-9]+")


# A card number as it would be stored or logged: 13-19 digits in one run, or in the
# groups a card shows (4-4-4-4 with up to 7 in the last, or Amex's 4-6-5) split by
# single spaces or dashes. (The API's guard reads far more loosely, since a request can
# disguise one; stored data is read for what it is, so timestamps and UUIDs don't count.)
DIGIT_RUN = re.compile(
    r"(?<![\w.\-])(?:\d{13,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}|\d{4}([ -])\d{6}\2\d{5})"
    r"(?![\w.\-])"
)
# Issuer prefixes of the card networks (Visa, Mastercard, Amex, Discover, JCB, Diners).
NETWORK_PREFIX = re.compile(r"^(4|5[1-5]|2[2-7]|3[47]|6011|65|35|3[0689])")


def card_numbers(text: str) -> list[str]:
    digits = (re.sub(r"[ -]", "", m.group()) for m in DIGIT_RUN.finditer(text))
    return [d for d in digits if NETWORK_PREFIX.match(d) and luhn_valid(d)]


def masked(digits: str) -> str:
    """First six and last four, as a receipt shows a card number."""
    return f"{digits[:6]}{'*' * (len(digits) - 10)}{digits[-4:]}"


PAYLOAD_DATA = re.compile(r'"data":\s*"([A-Za-z0-9+/=]+)"')


def metadata(intent: Any) -> dict[str, str]:
    return intent.metadata.to_dict() if intent.metadata else {}


class Chaos:
    def __init__(self, running: Stack, args: argparse.Namespace, proxy: FaultProxy) -> None:
        self.running = running
        self.args = args
        self.proxy = proxy
        self.rng = random.Random(args.seed)
        self.injected: Counter[str] = Counter()
        self.api_ports: dict[str, int] = {}
        self.temporal_port = 0
        self.temporal_db: Path = running.log_dir / "temporal.db"
        self.statuses: Counter[int] = Counter()
        self.acked_events: set[str] = set()
        self.gateway = stripe.StripeClient(
            STRIPE_API_KEY, base_addresses={"api": args.localstripe_direct}
        )

    # -- faults -----------------------------------------------------------------------

    def pick(self, lane: tuple[str, ...]) -> str:
        missing = [f for f in lane if not self.injected[f]]
        if missing:
            return missing[0]
        choices = [f for f in lane if f != "temporal-kill"]
        if "temporal-kill" in lane and self.rng.randrange(TEMPORAL_KILL_SHARE) == 0:
            choices.append("temporal-kill")
        return self.rng.choice(choices)

    async def inject(self, fault: str) -> None:
        self.injected[fault] += 1
        if fault == "worker-kill":
            name = self.rng.choice(("worker-1", "worker-2"))
            self.running.kill(name)
            await asyncio.sleep(self.rng.uniform(0.5, 2.0))
            self.running.start_worker(name=name)
        elif fault == "api-kill":
            name = self.rng.choice(sorted(self.api_ports))
            self.running.kill(name)
            await asyncio.sleep(self.rng.uniform(0.2, 1.0))
            await asyncio.to_thread(self.running.start_api, name, self.api_ports[name])
        elif fault.startswith("gateway-"):
            mode = {"gateway-refuse": "refuse", "gateway-stall": "stall"}.get(fault, "error500")
            self.proxy.set_mode(mode)  # type: ignore[arg-type]
            await asyncio.sleep(self.rng.uniform(0.5, 2.0))
            self.proxy.set_mode("pass")
        elif fault == "postgres-drop":
            await asyncio.to_thread(self.drop_connections)
        elif fault == "temporal-kill":
            self.running.kill("temporal")
            await asyncio.sleep(self.rng.uniform(0.5, 1.5))
            await asyncio.to_thread(
                self.running.start_temporal, db_file=self.temporal_db, port=self.temporal_port
            )
        elif fault == "webhook-storm":
            await self.storm()

    def drop_connections(self) -> None:
        database = (self.running.database_url or "").rsplit("/", 1)[1]
        with psycopg.connect(
            "postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True
        ) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [database],
            )

    async def storm(self) -> None:
        intents = await asyncio.to_thread(self.succeeded_intents)
        sends = []
        for intent in intents:
            subscription_id = metadata(intent).get("dunwell_subscription_id")
            if not subscription_id:
                continue
            event = make_event(
                self.rng, subscription_id, intent.id, "payment_intent.succeeded", intent.created
            )
            sends += [event] * self.rng.randint(2, 3)
        self.rng.shuffle(sends)
        async with httpx.AsyncClient(timeout=30) as http:
            for event in sends:
                port = self.api_ports[self.rng.choice(sorted(self.api_ports))]
                headers = {
                    "Content-Type": "application/json",
                    "Stripe-Signature": signature(event.body, WEBHOOK_SECRET),
                }
                try:
                    response = await http.post(
                        f"http://127.0.0.1:{port}/webhooks/stripe",
                        content=event.body,
                        headers=headers,
                    )
                except httpx.TransportError:
                    continue  # the API process is down (api-kill): not acknowledged
                self.statuses[response.status_code] += 1
                if response.status_code == 200:
                    self.acked_events.add(event.event_id)

    def succeeded_intents(self) -> list[Any]:
        listing = self.gateway.v1.payment_intents.list(params={"limit": 100})
        return [pi for pi in listing.auto_paging_iter() if pi.status == "succeeded"]

    async def faults_until(self, stop: asyncio.Event, lane: tuple[str, ...]) -> None:
        while not stop.is_set():
            await self.inject(self.pick(lane))
            try:
                await asyncio.wait_for(stop.wait(), self.args.interval)
            except TimeoutError:
                pass

    # -- checks -----------------------------------------------------------------------

    def invoice_counts(self) -> Counter[str]:
        with psycopg.connect(psycopg_url(self.running.database_url or "")) as conn:
            rows = conn.execute("SELECT status, count(*) FROM invoices GROUP BY 1").fetchall()
        return Counter({status: int(n) for status, n in rows})

    def double_charges(self) -> int:
        per_invoice = Counter(
            metadata(pi).get("dunwell_invoice_id") for pi in self.succeeded_intents()
        )
        return sum(1 for invoice, n in per_invoice.items() if invoice and n > 1)

    def lost_events(self) -> int:
        with psycopg.connect(psycopg_url(self.running.database_url or "")) as conn:
            recorded = {r[0] for r in conn.execute("SELECT event_id FROM processed_events")}
        return len(self.acked_events - recorded)

    def unbalanced_currencies(self) -> int:
        from ledger.db import make_engine
        from ledger.queries import trial_balance

        engine = make_engine(self.running.database_url or "")
        try:
            with engine.connect() as conn:
                balance = trial_balance(conn)
        finally:
            engine.dispose()
        return sum(1 for totals in balance.currencies if totals.net != 0)

    async def stuck_invoices(self, client: Client) -> int:
        with psycopg.connect(psycopg_url(self.running.database_url or "")) as conn:
            open_ids = [r[0] for r in conn.execute("SELECT id FROM invoices WHERE status = 'open'")]
        stuck = 0
        for invoice_id in open_ids:
            try:
                described = await client.get_workflow_handle(f"dunning-{invoice_id}").describe()
            except Exception:  # no dunning run for it
                stuck += 1
                continue
            if described.status is None or described.status.name != "RUNNING":
                stuck += 1
        return stuck

    async def secrets_found(self, client: Client) -> int:
        texts: list[tuple[str, str]] = []
        for path in sorted(self.running.log_dir.glob("*.log")):
            if path.name != "localstripe.log":  # the gateway's own record, not Dunwell's
                texts.append((path.name, path.read_text(errors="replace")))
        with psycopg.connect(psycopg_url(self.running.database_url or "")) as conn:
            tables = [
                r[0]
                for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ]
            for table in tables:
                # Text and JSON cells one by one: numbers and timestamps are no card data,
                # and joined together they would read as one long digit run.
                cells = [
                    value if isinstance(value, str) else json.dumps(value, default=str)
                    for row in conn.execute(f'SELECT * FROM "{table}"')
                    for value in row
                    if isinstance(value, str | dict | list)
                ]
                texts += [(f"table {table}", cell) for cell in cells]
        async for execution in client.list_workflows():
            history = await client.get_workflow_handle(
                execution.id, run_id=execution.run_id
            ).fetch_history()
            raw = history.to_json()
            # Payloads are base64 in the history's JSON: read them decoded as well.
            decoded = [
                base64.b64decode(data).decode(errors="replace")
                for data in PAYLOAD_DATA.findall(raw)
            ]
            texts.append((f"history {execution.id}", "\n".join([raw, *decoded])))
        found = 0
        for where, text in texts:
            kinds = [f"secret #{SECRETS.index(s)}" for s in SECRETS if s in text]
            kinds += ["client secret"] * len(CLIENT_SECRET.findall(text))
            kinds += [f"card number {masked(d)}" for d in card_numbers(text)]
            if kinds:
                progress(f"found in {where}: {', '.join(kinds)}")
                found += len(kinds)
        return found

    async def guard_under_attack(self) -> tuple[float, float]:
        port = self.api_ports["api-1"]
        body = ("1 " * (512 * 1024)).encode()  # 1 MiB
        guard_ms: list[float] = []
        healthz_ms: list[float] = []
        attacking = True

        async def probe() -> None:
            async with httpx.AsyncClient(timeout=30) as http:
                while attacking:
                    started = time.perf_counter()
                    await http.get(f"http://127.0.0.1:{port}/healthz")
                    healthz_ms.append((time.perf_counter() - started) * 1000)
                    await asyncio.sleep(0.01)

        prober = asyncio.create_task(probe())
        async with httpx.AsyncClient(timeout=60) as http:
            for _ in range(self.args.attacks):
                started = time.perf_counter()
                response = await http.post(
                    f"http://127.0.0.1:{port}/v1/customers",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                guard_ms.append((time.perf_counter() - started) * 1000)
                self.statuses[response.status_code] += 1
        attacking = False
        await prober
        healthz_ms.sort()
        p99 = healthz_ms[min(len(healthz_ms) - 1, int(len(healthz_ms) * 0.99))]
        return max(guard_ms), p99


async def wait_settled(chaos: Chaos, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = await asyncio.to_thread(chaos.invoice_counts)
        if counts["paid"] + counts["uncollectible"] + counts["void"] >= expected:
            return
        progress(f"invoices: {dict(counts)} of {expected}")
        await asyncio.sleep(2)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from billing.catalog import load_catalog

    catalog = load_catalog()
    prices = {p: catalog.price(p, CURRENCY) for p in PLANS}
    with Stack("chaos") as running:
        running.start_database()
        localstripe = running.start_localstripe()
        args.localstripe_direct = localstripe
        split = urlsplit(localstripe)
        proxy = FaultProxy(split.hostname or "127.0.0.1", split.port or 80)
        proxy_port = proxy.start()
        # Every Dunwell process reaches the gateway through the proxy.
        running.stripe_api_base = f"http://127.0.0.1:{proxy_port}"
        chaos = Chaos(running, args, proxy)
        chaos.temporal_port = free_port()
        running.start_temporal(db_file=chaos.temporal_db, port=chaos.temporal_port)
        for name in ("api-1", "api-2"):
            chaos.api_ports[name] = free_port()
            running.start_api(name, chaos.api_ports[name])
        for name in ("worker-1", "worker-2"):
            running.start_worker(name=name)
        settings = Settings(
            env="test",
            database_url=running.database_url or "",
            temporal_address=running.temporal_address,
            task_queue=running.task_queue,
            stripe_api_base=localstripe,
            stripe_api_key=STRIPE_API_KEY,
        )
        client = await temporal.connect(settings)
        await running.wait_for_worker(client)
        try:
            gateway = await gateway_customers(settings, min(args.subscriptions, 20))
            # Renewals in waves of five spread over the fault window, so that the gateway
            # and the workers are busy while the faults come.
            ids = [f"chaos{i:05d}" for i in range(args.subscriptions)]
            waves = [ids[i : i + 5] for i in range(0, len(ids), 5)]
            spacing = max(args.duration, 1.0) / len(waves)
            now = datetime.now(UTC)
            for n, wave in enumerate(waves):
                t_end = (now + timedelta(seconds=args.lead + n * spacing)).replace(microsecond=0)
                plan_id, start_at = plan_ending_at(t_end, prices)
                await start_subscriptions(client, settings, wave, plan_id, start_at, gateway, 8)
            progress(
                f"{len(ids)} subscriptions; renewals in {len(waves)} waves {spacing:.0f} s apart"
            )
            expected = 2 * len(ids)  # the first period at start, the renewal in its wave

            stop = asyncio.Event()
            faults = asyncio.gather(*(chaos.faults_until(stop, lane) for lane in LANES))
            started = time.monotonic()
            while time.monotonic() - started < args.duration or not all(
                chaos.injected[f] for f in FAULTS
            ):
                await asyncio.sleep(1)
            stop.set()
            await faults
            proxy.set_mode("pass")
            progress(f"faults injected: {dict(chaos.injected)}")
            # Temporal may have been away for a while: a fresh client.
            client = await temporal.connect(settings)
            await wait_settled(chaos, expected, args.settle)
            guard_worst, healthz_p99 = await chaos.guard_under_attack()
            counts = await asyncio.to_thread(chaos.invoice_counts)
            progress(f"invoices at the end: {dict(counts)} (expected {expected})")
            five_xx = sum(n for s, n in chaos.statuses.items() if s >= 500 and s != 503)
            progress(f"answers seen: {dict(sorted(chaos.statuses.items()))}")
            result = {
                "faults_injected": sum(chaos.injected.values()),
                "double_charges": await asyncio.to_thread(chaos.double_charges),
                "lost_events": await asyncio.to_thread(chaos.lost_events),
                "unbalanced_currencies": await asyncio.to_thread(chaos.unbalanced_currencies),
                "stuck_invoices": await chaos.stuck_invoices(client)
                + max(0, expected - sum(counts.values())),
                "five_xx": five_xx,
                "secrets_found": await chaos.secrets_found(client),
                "guard_worst_ms": round(guard_worst, 1),
                "healthz_p99_ms_under_attack": round(healthz_p99, 1),
            }
            progress(
                f"faults by class: {dict(chaos.injected)}; proxy answered {dict(proxy.faults)};"
                f" 503s: {chaos.statuses[503]}"
            )
            return result
        finally:
            proxy.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscriptions", type=int, default=60)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of faults")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between faults")
    parser.add_argument("--lead", type=float, default=20.0, help="seconds from start to T")
    parser.add_argument("--settle", type=float, default=240.0, help="seconds to settle")
    parser.add_argument("--attacks", type=int, default=10, help="1 MiB guard attacks")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="CI: small, every class once")
    args = parser.parse_args()
    if args.quick:
        args.subscriptions, args.duration, args.interval = 6, 0.0, 0.5
        args.lead, args.settle, args.attacks = 10.0, 180.0, 3
    try:
        result = asyncio.run(run(args))
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)  # a Temporal client was open: no interpreter teardown (see README)
    print(json.dumps(result), flush=True)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
