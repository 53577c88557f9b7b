"""Dunwell's Temporal workflows; ``WORKFLOWS`` is what a worker registers.

Deterministic code only (``workflow.now()``, timers, no I/O), guarded by replay tests.
May import: ``billing`` and ``tax`` (pure), and ``activities`` only under
``workflow.unsafe.imports_passed_through()``, to call them by name with their request
and result types. Never ``api``, and nothing that does I/O of its own.
"""

from workflows.disputes import DisputeWorkflow
from workflows.dunning import DunningWorkflow
from workflows.manual_review import ManualReviewWorkflow
from workflows.nexus_watch import NexusWatchWorkflow
from workflows.outbound_delivery import OutboundDeliveryWorkflow
from workflows.recon_sweep import ReconSweepWorkflow
from workflows.reconcile_payout import ReconcilePayoutWorkflow
from workflows.refunds import ChargeRefundsWorkflow, RefundWorkflow
from workflows.subscription import SubscriptionWorkflow

WORKFLOWS: tuple[type, ...] = (
    SubscriptionWorkflow,
    ManualReviewWorkflow,
    DunningWorkflow,
    ReconcilePayoutWorkflow,
    ReconSweepWorkflow,
    RefundWorkflow,
    ChargeRefundsWorkflow,
    DisputeWorkflow,
    NexusWatchWorkflow,
    OutboundDeliveryWorkflow,
)

__all__ = [
    "WORKFLOWS",
    "ChargeRefundsWorkflow",
    "DisputeWorkflow",
    "DunningWorkflow",
    "ManualReviewWorkflow",
    "NexusWatchWorkflow",
    "OutboundDeliveryWorkflow",
    "ReconSweepWorkflow",
    "ReconcilePayoutWorkflow",
    "RefundWorkflow",
    "SubscriptionWorkflow",
]
