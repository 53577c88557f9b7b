"""``dunwell dev``: the whole stack on one machine, started for real.

Starts, in order: the Temporal dev server (SQLite file under the state folder, UI,
Dunwell's search attributes registered), localstripe (its webhook pointed at our
API), the settlement simulator beside it (unless ``DUNWELL_SETTLEMENT_API_BASE`` is
empty), the SMTP sink, the demo receiver (the SaaS product's side of outbound events;
its endpoint is registered through the API once the API answers), the API and the
worker. Applies migrations first and prints every URL. Each child runs in its own process group; on Ctrl-C or SIGTERM the stack
stops them in reverse order (SIGTERM, then SIGKILL after a grace period) so nothing
is left behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from billing.outbound import EVENT_TYPES
from dunwell.api_keys import Role
from dunwell.codec import ensure_dev_keys
from dunwell.local_stack import INSTALL_HINT, missing_local_packages
from dunwell.settings import PLACEHOLDER_API_KEY, PLACEHOLDER_OPS_API_KEY, Settings
from workflows import search_attributes

DEV_API_KEYS = frozenset({PLACEHOLDER_API_KEY, PLACEHOLDER_OPS_API_KEY})

STOP_GRACE_SECONDS = 10.0
START_TIMEOUT_SECONDS = 60.0


class DevStackError(RuntimeError):
    """The dev stack could not start (a port is taken, a component died)."""


@dataclass
class Service:
    name: str
    argv: list[str]
    host: str
    port: int
    urls: list[tuple[str, str]] = field(default_factory=list)
    after_start: Callable[[], None] | None = None
    process: subprocess.Popen[bytes] | None = None


def bin_path(name: str) -> str:
    """A console script installed beside this interpreter (the project's virtualenv)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    raise DevStackError(f"{name} is not installed in {candidate.parent}; run `make dev`")


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class DevStack:
    def __init__(self, settings: Settings, *, out: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.out = out
        self.state_dir = settings.state_dir.resolve()
        self.log_dir = self.state_dir / "logs"
        self.services = self._plan()

    def _child_env(self) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ)
        env.update(
            {
                "DUNWELL_ENV": s.env.value,
                "DUNWELL_STATE_DIR": str(self.state_dir),
                "DUNWELL_DATABASE_URL": s.database_url,
                "DUNWELL_TEMPORAL_ADDRESS": s.temporal_address,
                "DUNWELL_TEMPORAL_NAMESPACE": s.temporal_namespace,
                "DUNWELL_TASK_QUEUE": s.task_queue,
                "DUNWELL_STRIPE_API_BASE": s.stripe_api_base or "",
                "DUNWELL_SETTLEMENT_API_BASE": s.settlement_api_base or "",
                "DUNWELL_STRIPE_WEBHOOK_SECRET": s.stripe_webhook_secret.get_secret_value(),
                "DUNWELL_API_HOST": s.api_host,
                "DUNWELL_API_PORT": str(s.api_port),
                "DUNWELL_PUBLIC_BASE_URL": s.public_base_url,
                "DUNWELL_SMTP_HOST": s.smtp_host,
                "DUNWELL_SMTP_PORT": str(s.smtp_port),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def _plan(self) -> list[Service]:
        s = self.settings
        t_host, t_port = host_port(s.temporal_address)
        if not s.stripe_api_base:
            raise DevStackError("dunwell dev needs DUNWELL_STRIPE_API_BASE (localstripe)")
        stripe = urlsplit(s.stripe_api_base)
        ls_host, ls_port = stripe.hostname or "127.0.0.1", stripe.port or 8420
        dunwell = bin_path("dunwell")
        temporal_argv = [
            bin_path("temporal"),
            "server",
            "start-dev",
            "--db-filename",
            str(self.state_dir / "temporal.db"),
            "--ip",
            t_host,
            "--port",
            str(t_port),
            "--ui-ip",
            t_host,
            "--ui-port",
            str(s.temporal_ui_port),
            "--ui-disable-news-fetch",
            # The UI decodes encrypted payloads through the API (api.routes.codec).
            "--ui-codec-endpoint",
            f"{s.public_base_url.rstrip('/')}/codec",
            "--namespace",
            s.temporal_namespace,
            "--log-level",
            "warn",
            *search_attributes.cli_flags(),
        ]
        services = [
            Service(
                "temporal",
                temporal_argv,
                t_host,
                t_port,
                urls=[
                    ("Temporal frontend", f"{t_host}:{t_port}"),
                    ("Temporal UI", f"http://{t_host}:{s.temporal_ui_port}"),
                ],
            ),
            Service(
                "localstripe",
                [dunwell, "localstripe", "--host", ls_host, "--port", str(ls_port)],
                ls_host,
                ls_port,
                urls=[
                    ("localstripe API", s.stripe_api_base),
                    ("Stripe.js (fake)", f"{s.stripe_api_base}/js.stripe.com/v3/"),
                ],
                after_start=self._register_localstripe_webhook,
            ),
            Service(
                "smtp-sink",
                [
                    dunwell,
                    "smtp-sink",
                    "--host",
                    s.smtp_host,
                    "--port",
                    str(s.smtp_port),
                    "--dir",
                    str(self.state_dir / "mail"),
                ],
                s.smtp_host,
                s.smtp_port,
                urls=[("SMTP sink", f"smtp://{s.smtp_host}:{s.smtp_port}")],
            ),
            Service(
                "demo-receiver",
                [
                    dunwell,
                    "demo-receiver",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(s.demo_receiver_port),
                    "--secret-file",
                    str(self.demo_secret_file),
                ],
                "127.0.0.1",
                s.demo_receiver_port,
                urls=[("Demo receiver log", str(self.log_dir / "demo-receiver.log"))],
            ),
            Service(
                "api",
                [dunwell, "api"],
                s.api_host,
                s.api_port,
                urls=[
                    ("API", s.public_base_url),
                    ("API docs", f"{s.public_base_url}/docs"),
                    ("Mail sink (web)", f"{s.public_base_url}/dev/mail"),
                ],
                after_start=self._register_demo_endpoint,
            ),
            Service("worker", [dunwell, "worker"], "", 0),
        ]
        if s.settlement_api_base:
            services.insert(2, self._settlement_sim(dunwell))
        return services

    def _settlement_sim(self, dunwell: str) -> Service:
        """The settlement simulator, paying out every minute with no availability delay,
        so a payout follows the demo's charges within a minute."""
        s = self.settings
        base = urlsplit(s.settlement_api_base or "")
        host, port = base.hostname or "127.0.0.1", base.port or 8421
        config = self.state_dir / "settlement_sim.json"
        argv = [
            dunwell, "settlement-sim", "--host", host, "--port", str(port),
            "--localstripe", s.stripe_api_base or "",
            "--webhook-url", f"{s.public_base_url}/webhooks/stripe",
            "--tick-seconds", "5", "--config", str(config),
        ]  # fmt: skip
        return Service(
            "settlement-sim",
            argv,
            host,
            port,
            urls=[("Settlement simulator", f"{s.settlement_api_base}/v1/balance")],
            after_start=None,
        )

    def _register_localstripe_webhook(self) -> None:
        base = self.settings.stripe_api_base
        response = httpx.post(
            f"{base}/_config/webhooks/dunwell",
            data={
                "url": f"{self.settings.public_base_url}/webhooks/stripe",
                "secret": self.settings.stripe_webhook_secret.get_secret_value(),
            },
            timeout=10,
        )
        response.raise_for_status()

    @property
    def demo_secret_file(self) -> Path:
        return self.state_dir / "demo-receiver.secret"

    def _register_demo_endpoint(self) -> None:
        """The demo receiver's endpoint, for every event type, registered once per state
        folder; its secret goes to the file the receiver reads."""
        s = self.settings
        url = f"http://127.0.0.1:{s.demo_receiver_port}/events"
        headers = {"Authorization": f"Bearer {s.api_key.get_secret_value()}"}
        api = f"{s.public_base_url.rstrip('/')}/v1/webhook-endpoints"
        listed = httpx.get(api, headers=headers, timeout=10)
        listed.raise_for_status()
        known = [e for e in listed.json()["items"] if e["url"] == url]
        if known and self.demo_secret_file.is_file():
            return
        if known:  # the secret file was lost: a new secret, the old one ends now
            response = httpx.post(
                f"{api}/{known[0]['id']}/rotate-secret",
                json={"overlap_seconds": 0},
                headers=headers,
                timeout=10,
            )
        else:
            response = httpx.post(
                api,
                json={"url": url, "event_types": list(EVENT_TYPES), "description": "demo"},
                headers=headers,
                timeout=10,
            )
        response.raise_for_status()
        self.demo_secret_file.write_text(response.json()["secret"] + "\n")
        self.demo_secret_file.chmod(0o600)

    def check_ports(self) -> None:
        taken = [
            f"{svc.name} ({svc.host}:{svc.port})"
            for svc in self.services
            if svc.port and not port_is_free(svc.host, svc.port)
        ]
        if self.settings.temporal_ui_port and not port_is_free(
            host_port(self.settings.temporal_address)[0], self.settings.temporal_ui_port
        ):
            taken.append(f"temporal UI (port {self.settings.temporal_ui_port})")
        if taken:
            raise DevStackError(
                "ports already in use: " + ", ".join(taken) + " — is another stack running?"
            )

    def start(self) -> None:
        self.check_ports()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "settlement_sim.json").write_text(DEV_SETTLEMENT_SIM)
        self.out(f"Dunwell dev stack — state in {self.state_dir}")
        if self.settings.payload_keys is None:
            keys = ensure_dev_keys(self.state_dir)
            self.out(f"  workflow payloads encrypted with the dev key in {keys}")
        self._migrate()
        env = self._child_env()
        for svc in self.services:
            self._start_one(svc, env)
        self._print_urls()

    def _migrate(self) -> None:
        from ledger.migrate import upgrade

        upgrade(self.settings.database_url)
        self.out(f"  migrations applied to {self.settings.database_url}")
        seeded = seed_dev_registrations(self.settings.database_url)
        if seeded:
            self.out(f"  recorded dev tax registrations: {', '.join(seeded)}")

    def _start_one(self, svc: Service, env: dict[str, str]) -> None:
        log = (self.log_dir / f"{svc.name}.log").open("ab")
        svc.process = subprocess.Popen(
            svc.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=os.getcwd(),
            start_new_session=True,  # its own process group: Ctrl-C is ours to relay
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while svc.port and not port_answers(svc.host, svc.port):
            if svc.process.poll() is not None:
                raise DevStackError(
                    f"{svc.name} exited with {svc.process.returncode}; "
                    f"see {self.log_dir / (svc.name + '.log')}"
                )
            if time.monotonic() > deadline:
                raise DevStackError(f"{svc.name} did not answer on {svc.host}:{svc.port}")
            time.sleep(0.1)
        if svc.after_start:
            svc.after_start()
        self.out(f"  started {svc.name:<12} pid {svc.process.pid}")

    def _print_urls(self) -> None:
        self.out("")
        for svc in self.services:
            for label, url in svc.urls:
                self.out(f"  {label:<20} {url}")
        self.out(f"  {'Database':<20} {self.settings.database_url}")
        self.out(f"  {'Logs':<20} {self.log_dir}")
        for label, role in (("Server API key", Role.SERVER), ("Ops API key", Role.OPS)):
            for entry in self.settings.key_ring().of_role(role):
                # Dev's placeholders are printed; a key set in the environment is not.
                shown = entry.secret if entry.secret in DEV_API_KEYS else "(as configured)"
                self.out(f"  {label:<20} {shown}  (key id {entry.key_id})")
        self.out("")
        self.out("Dunwell dev stack is up. Press Ctrl-C to stop everything.")

    def dead_services(self) -> list[Service]:
        return [s for s in self.services if s.process is not None and s.process.poll() is not None]

    def stop(self) -> None:
        for svc in reversed(self.services):
            proc = svc.process
            if proc is None or proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for svc in reversed(self.services):
            proc = svc.process
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            # The group may hold grandchildren even when the leader has gone.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        self.out("Dunwell dev stack stopped.")


DEV_SETTLEMENT_SIM = (
    '{"available_after_seconds": 0, "payout_interval_seconds": 60, "arrival_after_seconds": 0}'
)

# A development seller registered where the demo customers live, so that quotes show
# collected tax (and EU reverse charge) instead of "not collecting" everywhere.
DEV_REGISTRATIONS = (
    ("EU", "vat", "EU372000041"),  # One-Stop Shop, established in Ireland
    ("IE", "vat", "IE3720000AH"),
    ("GB", "vat", "GB123456789"),
    ("US-NY", "sales_tax", "NY-DEV-0001"),
    ("CA", "gst", "123456789RT0001"),
)


def seed_dev_registrations(database_url: str) -> list[str]:
    """Record the dev registrations once, on an empty compliance ledger."""
    from datetime import UTC, date, datetime

    from ledger.compliance import ComplianceLedger
    from ledger.db import make_engine
    from tax import Registration, TaxType

    engine = make_engine(database_url)
    try:
        ledger = ComplianceLedger(engine)
        if ledger.registrations():
            return []
        for jurisdiction, tax_type, number in DEV_REGISTRATIONS:
            ledger.record_registration(
                Registration(jurisdiction, TaxType(tax_type), date(2020, 1, 1), None, number),
                at=datetime.now(UTC),
                note="dunwell dev default",
            )
        return [j for j, _, _ in DEV_REGISTRATIONS]
    finally:
        engine.dispose()


def run_dev(settings: Settings) -> int:
    missing = missing_local_packages()
    if missing:
        print(
            f"dunwell dev: {', '.join(missing)} not installed (a production install); "
            f"{INSTALL_HINT}",
            file=sys.stderr,
        )
        return 2
    stack = DevStack(settings)
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        stack.start()
        while not stopping:
            dead = stack.dead_services()
            if dead:
                names = ", ".join(s.name for s in dead)
                print(f"{names} stopped unexpectedly; see {stack.log_dir}", file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0
    except DevStackError as err:
        print(f"dunwell dev: {err}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
