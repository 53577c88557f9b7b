"""Dunwell's Temporal workflows; ``WORKFLOWS`` is what a worker registers."""

from workflows.manual_review import ManualReviewWorkflow
from workflows.subscription import SubscriptionWorkflow

WORKFLOWS: tuple[type, ...] = (SubscriptionWorkflow, ManualReviewWorkflow)

__all__ = ["WORKFLOWS", "ManualReviewWorkflow", "SubscriptionWorkflow"]
