"""Dunwell's Temporal workflows; ``WORKFLOWS`` is what a worker registers."""

from workflows.dunning import DunningWorkflow
from workflows.manual_review import ManualReviewWorkflow
from workflows.subscription import SubscriptionWorkflow

WORKFLOWS: tuple[type, ...] = (SubscriptionWorkflow, ManualReviewWorkflow, DunningWorkflow)

__all__ = ["WORKFLOWS", "DunningWorkflow", "ManualReviewWorkflow", "SubscriptionWorkflow"]
