"""The worker's wiring: a deployment registers every activity Dunwell defines, once; what
a test hands ``build_activities`` is what the activities use; test workers run the
strict sandbox, the deployment's worker does not."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

# This module also defines a workflow, so its imports pass through the sandbox.
with workflow.unsafe.imports_passed_through():
    import activities
    from activities.billing import InvoiceLineInput, TaxQuoteRequest
    from activities.dunning import DunningActivities
    from activities.ledger import AccountLine, JournalEntryInput
    from billing.gateway import PaymentMethodDetails
    from dunwell.settings import Settings
    from ledger.db import make_engine
    from ledger.migrate import upgrade
    from ledger.models import AccountType
    from ledger.posting import Ledger
    from tax import Registration
    from tests.conftest import create_database, drop_database
    from tests.support.worker import activity_name, dunwell_worker, registered
    from tests.workflows.harness import REGISTRATIONS, profile
    from worker import build_activities, build_worker

AT = datetime(2026, 3, 1, tzinfo=UTC)
CARD = PaymentMethodDetails("pm_1", "visa", "4242", 12, 2031, "DE", "cus_1")


def settings_on(tmp_path: Path) -> Settings:
    """Settings whose database has no tables: an activity that reaches it fails."""
    return Settings(env="test", database_url=f"sqlite+pysqlite:///{tmp_path}/settings.db")


def defined_activities() -> set[str]:
    """The name of every activity the ``activities`` package defines."""
    names: set[str] = set()
    for module_info in pkgutil.iter_modules(activities.__path__, "activities."):
        module = importlib.import_module(module_info.name)
        found = [f for _, f in inspect.getmembers(module, inspect.isfunction)]
        for _, cls in inspect.getmembers(module, inspect.isclass):
            found.extend(f for _, f in inspect.getmembers(cls, inspect.isfunction))
        for fn in found:
            if fn.__module__ != module.__name__:
                continue
            defn = activity._Definition.from_callable(fn)
            if defn is not None and defn.name is not None:
                names.add(defn.name)
    return names


def by_name(built: Sequence[Callable[..., Any]], name: str) -> Callable[..., Any]:
    (found,) = [a for a in built if activity_name(a) == name]
    return found


def test_a_deployment_registers_every_activity_once(tmp_path: Path) -> None:
    names = [activity_name(a) for a in build_activities(settings_on(tmp_path))]
    assert len(names) == len(set(names)), "an activity registered twice"
    assert set(names) == defined_activities()
    assert {"billing.charge_and_record", "dunning_notify", "ledger.post_entries"} <= set(names)


async def test_the_registrations_handed_in_are_the_ones_quoted(tmp_path: Path) -> None:
    class Recorded:
        def __init__(self) -> None:
            self.reads = 0

        def registrations(self) -> list[Registration]:
            self.reads += 1
            return list(REGISTRATIONS)

    source = Recorded()
    settings = settings_on(tmp_path)
    # The quote reads the customer's exemption certificates from the compliance ledger.
    upgrade(settings.database_url)
    quote_tax = by_name(build_activities(settings, registrations=source), "billing.quote_tax")
    line = InvoiceLineInput(line_id="pro", description="Pro", amount=1000, tax_inclusive=False)
    quote = await ActivityEnvironment().run(
        quote_tax, TaxQuoteRequest(profile("cust_1"), "EUR", [line], AT)
    )
    assert source.reads == 1
    # Registered for the One-Stop Shop, the seller charges the German customer German VAT.
    assert (quote.jurisdiction, quote.tax_total) == ("DE", 190)


async def test_the_gateway_handed_in_is_the_one_asked(tmp_path: Path) -> None:
    class Gateway:
        def __init__(self) -> None:
            self.asked: list[str] = []

        async def retrieve_payment_method(self, payment_method_id: str) -> PaymentMethodDetails:
            self.asked.append(payment_method_id)
            return CARD

    gateway = Gateway()
    describe = by_name(
        build_activities(settings_on(tmp_path), gateway=gateway),  # type: ignore[arg-type]
        "gateway.describe_payment_method",
    )
    assert await ActivityEnvironment().run(describe, "pm_1") == CARD
    assert gateway.asked == ["pm_1"]


@pytest.fixture
def migrated_url() -> Iterator[str]:
    url = create_database("dunwell_wiring")
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(url)


async def test_the_engine_handed_in_is_the_one_written(tmp_path: Path, migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        post = by_name(
            build_activities(settings_on(tmp_path), engine=engine), "ledger.post_entries"
        )
        entry = JournalEntryInput(
            idempotency_key="wiring:1",
            effective_at=AT,
            description="wiring",
            lines=[
                AccountLine("receivable:cus_1:EUR", AccountType.ASSET, "EUR", 100, "cus_1"),
                AccountLine("revenue:EUR", AccountType.REVENUE, "EUR", -100),
            ],
        )
        await ActivityEnvironment().run(post, [entry])
        assert Ledger(engine).balance("receivable:cus_1:EUR").amount == 100
    finally:
        engine.dispose()


def test_a_test_worker_leaves_out_and_replaces_activities_by_name(tmp_path: Path) -> None:
    built = build_activities(settings_on(tmp_path))

    @activity.defn(name="billing.charge_and_record")
    async def stand_in() -> None: ...

    kept = registered(built, without=[DunningActivities], replacing=[stand_in])
    names = {activity_name(a) for a in kept}
    assert not names & {"dunning_notify", "dunning_charge", "customer.utc_offset_minutes"}
    # The gateway activities hang off the billing ones' instance: they stay.
    assert {"gateway.resync", "billing.quote_tax", "ledger.post_entries"} <= names
    assert stand_in in kept and len(kept) == len(names)

    @activity.defn(name="billing.no_such_activity")
    async def stray() -> None: ...

    with pytest.raises(ValueError, match=r"billing\.no_such_activity"):
        registered(built, replacing=[stray])


@workflow.defn(name="SandboxProbe")
class SandboxProbe:
    """Reads the wall clock, which workflow code must not: True if that was refused."""

    @workflow.run
    async def run(self) -> bool:
        try:
            datetime.now(UTC)
        except Exception as exc:  # the sandbox's RestrictedWorkflowAccessError
            return type(exc).__name__ == "RestrictedWorkflowAccessError"
        return False


async def test_test_workers_run_the_strict_sandbox_and_a_deployment_does_not(
    tmp_path: Path, temporal_time_env: WorkflowEnvironment
) -> None:
    client = temporal_time_env.client
    settings = settings_on(tmp_path)
    refused: dict[str, bool] = {}
    for kind, make in {
        "test": lambda queue: dunwell_worker(
            client, settings, task_queue=queue, workflows=[SandboxProbe]
        ),
        "deployment": lambda queue: build_worker(
            client, settings, task_queue=queue, workflows=[SandboxProbe]
        ),
    }.items():
        queue = f"probe-{uuid.uuid4().hex[:8]}"
        async with make(queue):
            refused[kind] = await client.execute_workflow(
                SandboxProbe.run, id=f"probe-{kind}-{uuid.uuid4().hex[:8]}", task_queue=queue
            )
    assert refused == {"test": True, "deployment": False}
