"""Builds clients and activity instances, and runs the Temporal worker.

Wiring happens here and in the API lifespan only. May import ``workflows``,
``activities``, ``ledger``, ``stores``, ``billing``, ``tax`` and ``dunwell``; never
``api``.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner

from activities import all_activities
from activities.billing import BillingActivities, RegistrationSource
from activities.disputes import DisputeActivities
from activities.dunning import DunningActivities
from activities.gateway_rate import SharedRateLimit, store_take
from activities.gateway_reconciler import GatewayReconciler
from activities.ledger import LedgerActivities
from activities.nexus import NexusActivities
from activities.notifications import Notifier
from activities.outbound import OutboundActivities
from activities.outbound_delivery import OutboundDeliveryActivities
from activities.reconciliation import ReconciliationActivities
from activities.refunds import RefundActivities
from activities.settlement_stripe import StripeSettlementSource
from billing.catalog import load_catalog
from billing.disputes import DisputePolicy
from billing.gateway import PaymentGateway
from billing.reconciliation.source import SettlementSource
from dunwell import temporal
from dunwell.components import build_gateway, build_tax_engine
from dunwell.converter import warm_type_adapters
from dunwell.heap import freeze_startup_heap
from dunwell.logs import install_redaction
from dunwell.nexus_schedule import ensure_nexus_schedule
from dunwell.outbound_start import ensure_delivery_workflows
from dunwell.recon_schedule import ensure_sweep_schedule
from dunwell.settings import Environment, Settings
from ledger.compliance import ComplianceLedger
from ledger.db import make_engine
from ledger.disputes.store import DisputeStore
from ledger.invoices import InvoiceStore
from ledger.posting import Ledger
from ledger.rate_change_notes import RateChangePolicy
from ledger.reconciliation.exceptions import ExceptionStore
from stores.card_attempts import CardAttemptLedger
from tax import Registration
from tax.nexus import load_thresholds
from tax.rate_changes import load_rate_change_rules
from tax.rates import load_rate_table
from workflows import WORKFLOWS


def build_activities(
    settings: Settings,
    *,
    engine: Engine | None = None,
    gateway: PaymentGateway | None = None,
    registrations: Sequence[Registration] | RegistrationSource | None = None,
    settlement: SettlementSource | None = None,
) -> list[Callable[..., Any]]:
    """Every activity a worker registers, wired from ``settings``. A deployment passes
    nothing else; a test hands in the engine and gateway it also uses itself (and closes),
    and a fixed list of tax registrations in place of the compliance ledger's."""
    if engine is None:
        engine = make_engine(settings.database_url)
    if gateway is None:
        gateway = build_gateway(settings, engine)
    compliance = ComplianceLedger(engine)
    if registrations is None:
        registrations = compliance
    invoices = InvoiceStore(engine, issuer=settings.invoice_issuer)
    cards = CardAttemptLedger(engine)
    billing = BillingActivities(
        invoices=invoices,
        cards=cards,
        tax_engine=build_tax_engine(settings),
        gateway=gateway,
        registrations=registrations,
        catalog=load_catalog(),
        certificates=compliance,
        # Stripe Tax quotes with its own rates; the built-in engine's table is the one
        # a rate change is read from.
        rate_changes=RateChangePolicy(load_rate_table(), load_rate_change_rules())
        if settings.tax_engine == "builtin"
        else None,
    )
    notifier = Notifier(
        engine,
        smtp_host=settings.smtp_host,
        smtp_port=settings.smtp_port,
        mail_from=settings.mail_from,
        public_base_url=settings.public_base_url,
    )
    dunning = DunningActivities(gateway=gateway, notifier=notifier, invoices=invoices, cards=cards)
    if settlement is None:
        limit = settings.gateway_requests_per_second
        settlement = StripeSettlementSource(
            settings.stripe_api_key.get_secret_value(),
            settings.settlement_base,
            gateway_base=settings.stripe_api_base,
            # Reads from the gateway count against its limit; the simulator has none.
            rate_limit=SharedRateLimit(store_take(engine), limit)
            if settings.settlement_api_base is None and limit > 0
            else None,
        )
    recon = ReconciliationActivities(engine, settlement)
    reconciler = GatewayReconciler(gateway, ExceptionStore(engine))
    refunds = RefundActivities(gateway, invoices, ExceptionStore(engine))
    disputes = DisputeActivities(
        settlement,
        invoices,
        DisputeStore(engine),
        ExceptionStore(engine),
        DisputePolicy(settings.dispute_policy),
    )
    return [
        *all_activities(billing, LedgerActivities(Ledger(engine))),
        reconciler.verify,
        *dunning.all(),
        *recon.all(),
        refunds.issue,
        refunds.sync_charge,
        disputes.sync,
        *NexusActivities(engine, load_thresholds()).all(),
        OutboundActivities(engine).record_events,
        OutboundDeliveryActivities(
            engine, allow_loopback=settings.env is not Environment.PRODUCTION
        ).deliver_due,
    ]


# The production worker runs workflows without the sandbox. Re-importing modules for every
# run (each renewal is a new run after continue-as-new) dominated a renewal's cost and a
# cached workflow's memory in bench/renewals.py; passing Dunwell's modules through left the
# sandbox checking nothing in them while its per-activation machinery still cost about a
# fifth of the worker's CPU there. Determinism is checked where it can fail loudly: the
# test suite runs the same workflows under the default, strict sandbox (every module
# re-imported, restricted calls refused), and the replay tests check recorded histories.
def workflow_runner() -> WorkflowRunner:
    return UnsandboxedWorkflowRunner()


def build_worker(
    client: Client,
    settings: Settings,
    *,
    task_queue: str | None = None,
    activities: Sequence[Callable[..., Any]] | None = None,
    workflows: Sequence[type] = WORKFLOWS,
    runner: WorkflowRunner | None = None,
) -> Worker:
    """The worker a deployment runs. Tests hand in the activities they built with
    ``build_activities``, the workflows they exercise and the strict sandbox as runner."""
    if activities is None:
        activities = build_activities(settings)
    warm_type_adapters(workflows, activities)
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=list(workflows),
        activities=activities,
        workflow_runner=workflow_runner() if runner is None else runner,
        max_cached_workflows=settings.worker_max_cached_workflows,
    )


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set, or until SIGINT/SIGTERM."""
    install_redaction()
    client = await temporal.connect(settings)
    await ensure_sweep_schedule(client, settings.task_queue)
    await ensure_nexus_schedule(client, settings.task_queue)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    async with build_worker(client, settings):
        # Endpoints registered while Temporal was unreachable get their workflow here.
        engine = make_engine(settings.database_url)
        try:
            await ensure_delivery_workflows(client, settings.task_queue, engine)
        finally:
            engine.dispose()
        freeze_startup_heap()
        await stop.wait()
