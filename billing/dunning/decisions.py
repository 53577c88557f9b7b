"""What the scheduler tells the dunning workflow to do next.

RetryAt(when)            sleep until ``when`` (durable timer), then send TimerFired
RetryNow                 charge now, then send AttemptFailed / AttemptSucceeded
AwaitingOutcome          a charge is in flight: report its outcome first
WaitForCustomer(deadline) no automatic retry; send TimerFired at ``deadline``
Paused(until)            no retry; if ``until`` is set, send TimerFired then
Stop                     dunning is over: apply the end actions, revoke access at
                         ``revoke_access_at``
Recovered                the invoice is paid
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from billing.dunning.policy import EndAction, InvoiceEndAction


@dataclass(frozen=True)
class RetryAt:
    when: datetime
    reason: str  # backoff | pay_date | local_morning | issuer_outage | network_delay | <trigger>
    kind: Literal["retry_at"] = "retry_at"


@dataclass(frozen=True)
class RetryNow:
    reason: (
        str  # initial_attempt | scheduled_retry | payment_method_updated | card_updater | ops_retry
    )
    kind: Literal["retry_now"] = "retry_now"


@dataclass(frozen=True)
class AwaitingOutcome:
    reason: str  # the trigger of the attempt in flight
    kind: Literal["awaiting_outcome"] = "awaiting_outcome"


@dataclass(frozen=True)
class WaitForCustomer:
    reason: str  # authentication_required | fix_data
    deadline: datetime
    kind: Literal["wait_for_customer"] = "wait_for_customer"


@dataclass(frozen=True)
class Paused:
    reason: str  # ops_pause | customer_cancelled
    until: datetime | None = None
    kind: Literal["paused"] = "paused"


@dataclass(frozen=True)
class Stop:
    end_action: EndAction
    invoice_end_action: InvoiceEndAction
    reason: str  # hard_decline | retries_exhausted | window_elapsed | customer_did_not_act | network_cap | customer_cancelled | ops_ended
    revoke_access_at: datetime
    kind: Literal["stop"] = "stop"


@dataclass(frozen=True)
class Recovered:
    at: datetime
    kind: Literal["recovered"] = "recovered"


Decision = RetryAt | RetryNow | AwaitingOutcome | WaitForCustomer | Paused | Stop | Recovered
