"""Dunning: the pure decision logic that recovers failed invoice payments.

``decide(state, event, now, rand)`` is the whole interface a workflow needs; policies
and network rules are data under ``billing/dunning/data/``.
"""

from billing.dunning.decisions import (
    AwaitingOutcome,
    Decision,
    Paused,
    Recovered,
    RetryAt,
    RetryNow,
    Stop,
    WaitForCustomer,
)
from billing.dunning.events import (
    AttemptFailed,
    AttemptSucceeded,
    CancellationUndone,
    CardRef,
    CardUpdaterEvent,
    CustomerCancelled,
    DunningEvent,
    OpsEnd,
    OpsPause,
    OpsResume,
    OpsRetryNow,
    PaymentMethodUpdated,
    Started,
    TimerFired,
)
from billing.dunning.messages import (
    Notification,
    NotificationKind,
    customer_message,
    notification_key,
    outcome_kind,
    planned_notifications,
)
from billing.dunning.policy import (
    DEFAULT_SEGMENT,
    EndAction,
    InvoiceEndAction,
    Policy,
    RevokeAccess,
    customer_segments,
    load_policy,
    policy_for,
)
from billing.dunning.scheduler import decide, standing
from billing.dunning.state import Attempt, DunningState, Ending, Phase, Trigger

__all__ = [
    "DEFAULT_SEGMENT",
    "Attempt",
    "AttemptFailed",
    "AttemptSucceeded",
    "AwaitingOutcome",
    "CancellationUndone",
    "CardRef",
    "CardUpdaterEvent",
    "CustomerCancelled",
    "Decision",
    "DunningEvent",
    "DunningState",
    "EndAction",
    "Ending",
    "InvoiceEndAction",
    "Notification",
    "NotificationKind",
    "OpsEnd",
    "OpsPause",
    "OpsResume",
    "OpsRetryNow",
    "Paused",
    "PaymentMethodUpdated",
    "Phase",
    "Policy",
    "Recovered",
    "RetryAt",
    "RetryNow",
    "RevokeAccess",
    "Started",
    "Stop",
    "TimerFired",
    "Trigger",
    "WaitForCustomer",
    "customer_message",
    "customer_segments",
    "decide",
    "load_policy",
    "notification_key",
    "outcome_kind",
    "planned_notifications",
    "policy_for",
    "standing",
]
