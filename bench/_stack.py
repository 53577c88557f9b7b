"""The real components the end-to-end benchmarks run against, started and stopped for them.

``Stack`` starts what a benchmark asks for, each as a subprocess in its own process group
on a free loopback port: the Temporal dev server (in memory, headless, Dunwell's search
attributes registered), localstripe (``python -m dunwell.fake_gateway``), the API
(``dunwell api``), the worker (``dunwell worker``; only its workflow cache may be raised,
through ``DUNWELL_WORKER_MAX_CACHED_WORKFLOWS``) and any other process a benchmark
spawns (``Stack.spawn``). Every child is stopped at exit (SIGTERM to its group, SIGKILL
after a grace period). Each benchmark gets a PostgreSQL database of its own, migrated and
seeded with the dev tax registrations, and dropped at the end.

CPU is read per process from /proc. PostgreSQL's is that of the backends serving the
benchmark's own database (``PostgresCpu``): the server is shared with whatever else runs
on the machine, test suites included.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Keep this folder off the import path (bench/tax.py would shadow the tax package).
if sys.path and Path(sys.path[0] or ".").resolve() == REPO / "bench":
    sys.path[0] = str(REPO)
elif str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

BIN = Path(sys.executable).parent
ADMIN_URL = os.environ.get(
    "DUNWELL_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
START_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0
WEBHOOK_SECRET = "whsec_dunwell_bench"
STRIPE_API_KEY = "sk_test_dunwell_bench"
API_KEY = "dw_bench_api_key"
OPS_API_KEY = "dw_bench_ops_key"
# temporalio's Worker(max_cached_workflows=...) default, which `dunwell worker` keeps.
PRODUCT_WORKER_CACHE = 1000


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def stop_on_sigterm() -> None:
    """SIGTERM leaves like Ctrl-C, so a ``Stack`` still stops its children."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def vm_rss_kb(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status (kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> tuple[str, list[str]] | None:
    """The command name and the fields after it in /proc/<pid>/stat; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.index("(") + 1 : text.rindex(")")], text.rsplit(")", 1)[1].split()


def gateway_rate_limit() -> str:
    """The gateway request limit a benchmark's processes run with: off unless
    ``DUNWELL_GATEWAY_REQUESTS_PER_SECOND`` is set, since localstripe has no limit to
    stay under and the figures measure Dunwell; each run prints the value."""
    return os.environ.get("DUNWELL_GATEWAY_REQUESTS_PER_SECOND", "0")


class PostgresCpu:
    """CPU seconds of the PostgreSQL backends connected to one database.

    The server is shared: other test suites use it while a benchmark runs, so the
    machine-wide PostgreSQL CPU says nothing about the benchmark's own work. A backend
    names its database in its process title, so the backends serving ours are found
    among the postmaster's children. A backend's CPU is only readable while it lives:
    ``sample`` keeps the last value seen for each, so call it often (``watch``); a
    backend that exits between two samples loses what it used since the last one. The
    server's shared processes (WAL writer, checkpointer, background writer) serve every
    database and are left out."""

    def __init__(self, database: str) -> None:
        self._title = f" {database} ".encode()
        self._seen: dict[tuple[int, str], float] = {}
        self._postmasters = [
            pid
            for pid in (int(p.name) for p in Path("/proc").glob("[0-9]*"))
            if (fields := _stat_fields(pid)) is not None
            and fields[0] == "postgres"
            and (parent := _stat_fields(int(fields[1][1]))) is not None
            and parent[0] != "postgres"
        ]

    def sample(self) -> float:
        """CPU seconds used so far by the backends of the database, exited ones included."""
        tick = os.sysconf("SC_CLK_TCK")
        for postmaster in self._postmasters:
            try:
                children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text()
            except OSError:
                continue
            for pid in map(int, children.split()):
                try:
                    title = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if self._title not in title:
                    continue
                fields = _stat_fields(pid)
                if fields is not None:
                    stat = fields[1]
                    # Keyed with the start time too: a pid can be reused meanwhile.
                    self._seen[pid, stat[19]] = (int(stat[11]) + int(stat[12])) / tick
        return sum(self._seen.values())

    async def watch(self, every: float = 0.5) -> None:
        """Sample until cancelled (run it as a task for as long as the database is used)."""
        while True:
            self.sample()
            await asyncio.sleep(every)


def machine_load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


# --- PostgreSQL ---------------------------------------------------------------------------


def create_database(prefix: str) -> str:
    """A fresh database, migrated and seeded like ``dunwell dev``; its SQLAlchemy URL."""
    from dunwell.devstack import seed_dev_registrations
    from ledger.migrate import upgrade

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    url = f"{base}/{name}"
    upgrade(url)
    seed_dev_registrations(url)
    return url


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def psycopg_url(url: str) -> str:
    """The plain libpq URL of a SQLAlchemy ``postgresql+psycopg://`` URL."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


# --- processes ------------------------------------------------------------------------------


class StackError(RuntimeError):
    """A component did not start; the message carries the tail of its log."""


class Stack:
    """The components one benchmark run needs; use as a context manager."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"dunwell-{name}-"))
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.database_url: str | None = None
        self.postgres_cpu: PostgresCpu | None = None
        self.temporal_address = ""
        self.stripe_api_base = ""
        self.api_base = ""
        self.task_queue = f"dunwell-{name}"

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.close(keep_logs=exc_type is not None)

    # children

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        """Start ``argv`` as a child named ``name`` (its log is ``<log_dir>/<name>.log``)."""
        log = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=REPO,
            start_new_session=True,  # its own process group, stopped as a whole
        )
        log.close()
        self.children.append((name, proc))
        return proc.pid

    def _wait_until(self, name: str, ready: object) -> None:
        proc = dict(self.children)[name]
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not ready():  # type: ignore[operator]
            if proc.poll() is not None:
                raise StackError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            if time.monotonic() > deadline:
                raise StackError(f"{name} did not become ready:\n{self.log_tail(name)}")
            time.sleep(0.1)

    def kill(self, name: str) -> None:
        """SIGKILL the child ``name`` and its process group, and wait for it."""
        proc = dict(self.children)[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self.children = [(n, p) for n, p in self.children if p is not proc]

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def pid(self, name: str) -> int:
        return dict(self.children)[name].pid

    def cpu_by_component(self) -> dict[str, float]:
        """CPU seconds used so far by each child and by this process."""
        used = {name: cpu_seconds(proc.pid) for name, proc in self.children if proc.poll() is None}
        used["bench"] = cpu_seconds(os.getpid())
        if self.postgres_cpu is not None:
            used["postgres"] = self.postgres_cpu.sample()
        return used

    async def wait_idle(
        self,
        names: tuple[str, ...] = ("temporal", "worker"),
        *,
        busy_below: float = 0.15,
        window: float = 0.5,
        timeout: float = 120.0,
    ) -> float:
        """Until the named children together use less than ``busy_below`` of a CPU over
        ``window`` seconds; the seconds waited. A worker still applying one phase's
        signals would otherwise take the CPU the next phase is measured on."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            before = self.cpu_by_component()
            await asyncio.sleep(window)
            after = self.cpu_by_component()
            used = sum(after.get(n, 0.0) - before.get(n, 0.0) for n in names)
            if used < busy_below * window:
                break
        return time.monotonic() - started

    def check_alive(self) -> None:
        for name, proc in self.children:
            if proc.poll() is not None:
                raise StackError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")

    # components

    def start_database(self) -> str:
        self.database_url = create_database(f"dunwell_bench_{self.name}")
        self.postgres_cpu = PostgresCpu(self.database_url.rsplit("/", 1)[1])
        progress(f"database {self.database_url.rsplit('/', 1)[1]} migrated")
        return self.database_url

    def start_temporal(self, *, db_file: Path | None = None, port: int | None = None) -> str:
        """The dev server, in memory; with ``db_file``, in that SQLite file, so that it can
        be killed and started again on the same ``port`` with its state (bench/chaos.py)."""
        from workflows.search_attributes import cli_flags

        port = port or free_port()
        persistence = ["--db-filename", str(db_file)] if db_file is not None else []
        self.spawn(
            "temporal",
            [
                str(BIN / "temporal"),
                "server",
                "start-dev",
                "--headless",
                "--ip",
                "127.0.0.1",
                "--port",
                str(port),
                "--http-port",
                str(free_port()),
                "--metrics-port",
                str(free_port()),
                "--log-level",
                "error",
                *persistence,
                *cli_flags(),
            ],
        )
        self._wait_until("temporal", lambda: port_answers(port))
        self.temporal_address = f"127.0.0.1:{port}"
        where = f"in {db_file.name}" if db_file is not None else "in memory"
        progress(f"temporal dev server on {self.temporal_address} ({where})")
        return self.temporal_address

    def start_localstripe(self) -> str:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        self.spawn(
            "localstripe", [sys.executable, "-m", "dunwell.fake_gateway", "--port", str(port)]
        )
        self._wait_until("localstripe", lambda: http_ok(f"{base}/js.stripe.com/v3/"))
        self.stripe_api_base = base
        progress(f"localstripe on {base}")
        limit = gateway_rate_limit()
        progress(
            f"gateway request limit: {limit + ' per second' if limit != '0' else 'off'} "
            "(DUNWELL_GATEWAY_REQUESTS_PER_SECOND)"
        )
        return base

    def env(self) -> dict[str, str]:
        """The ``DUNWELL_*`` settings every Dunwell child of this stack reads."""
        env = dict(os.environ)
        env.update(
            {
                "DUNWELL_ENV": "test",
                "DUNWELL_STATE_DIR": str(self.log_dir / "state"),
                "DUNWELL_DATABASE_URL": self.database_url or "",
                "DUNWELL_TEMPORAL_ADDRESS": self.temporal_address,
                "DUNWELL_TASK_QUEUE": self.task_queue,
                "DUNWELL_STRIPE_API_BASE": self.stripe_api_base,
                "DUNWELL_STRIPE_API_KEY": STRIPE_API_KEY,
                "DUNWELL_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "DUNWELL_GATEWAY_REQUESTS_PER_SECOND": gateway_rate_limit(),
                "DUNWELL_API_KEY": API_KEY,
                "DUNWELL_OPS_API_KEY": OPS_API_KEY,
                # The benchmarks drive one API key and one address far past what a
                # client should send; they measure Dunwell, not its request limits.
                "DUNWELL_RATE_LIMITS_ENABLED": os.environ.get(
                    "DUNWELL_RATE_LIMITS_ENABLED", "false"
                ),
                "PYTHONUNBUFFERED": "1",
                # The workflow sandbox re-imports the workflow modules for every workflow
                # run: without bytecode each run would compile them from source again.
                "PYTHONDONTWRITEBYTECODE": "",
                # This tree first, also when it is a copy of the repository.
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
                ),
            }
        )
        return env

    def start_api(self, name: str = "api", port: int | None = None) -> str:
        port = port or free_port()
        env = self.env()
        env.update({"DUNWELL_API_HOST": "127.0.0.1", "DUNWELL_API_PORT": str(port)})
        env["DUNWELL_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
        pid = self.spawn(name, [str(BIN / "dunwell"), "api"], env)
        base = f"http://127.0.0.1:{port}"
        self._wait_until(name, lambda: http_ok(f"{base}/healthz"))
        self.api_base = base
        progress(f"{name} on {base} (dunwell api, pid {pid})")
        return base

    def start_worker(self, *, max_cached_workflows: int | None = None, name: str = "worker") -> int:
        """``dunwell worker`` as shipped; its pid. Only the cache size may be raised,
        through the product's own setting."""
        env = self.env()
        cache = max_cached_workflows or PRODUCT_WORKER_CACHE
        env["DUNWELL_WORKER_MAX_CACHED_WORKFLOWS"] = str(cache)
        pid = self.spawn(name, [str(BIN / "dunwell"), "worker"], env)
        progress(f"{name} pid {pid}: dunwell worker (max_cached_workflows={cache})")
        return pid

    async def wait_for_worker(self, client: object, task_queue: str | None = None) -> None:
        """Until a worker polls the task queue (the worker has no port to probe)."""
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
        from temporalio.client import Client

        assert isinstance(client, Client)
        request = DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue or self.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            self.check_alive()
            response = await client.workflow_service.describe_task_queue(request)
            if response.pollers:
                return
            if time.monotonic() > deadline:
                raise StackError(f"no worker polls {request.task_queue.name}")
            await asyncio.sleep(0.2)

    def close(self, *, keep_logs: bool = False) -> None:
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for _name, proc in reversed(self.children):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            # The group may hold grandchildren even when the leader has gone.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.children.clear()
        if self.database_url:
            drop_database(self.database_url)
            self.database_url = None
        if keep_logs:
            progress(f"component logs kept in {self.log_dir}")
        else:
            shutil.rmtree(self.log_dir, ignore_errors=True)


@contextlib.contextmanager
def stack(name: str) -> Iterator[Stack]:
    with Stack(name) as running:
        yield running


def settings_for(running: Stack) -> object:
    """The bench process's own Settings (same values its Dunwell children read)."""
    from dunwell.settings import Settings

    return Settings(
        env="test",
        database_url=running.database_url or "",
        temporal_address=running.temporal_address,
        task_queue=running.task_queue,
        stripe_api_base=running.stripe_api_base or None,
        stripe_api_key=STRIPE_API_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
        api_key=API_KEY,
        ops_api_key=OPS_API_KEY,
    )
