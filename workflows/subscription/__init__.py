"""The subscription workflow: one durable workflow per subscription (id
``subscription-<subscription id>``), as a package with one module per concern.

    workflow.py         the class: state, message handlers, the main loop
    renewal.py          the first period and each renewal at a period end
    payments.py         invoices and charges, and recording what was paid
    outage.py           a charge retried through a gateway outage, with the ops alert
    authentication.py   3-D Secure on renewals: the customer confirms on-session
    card.py             the card on file: details, expiry notice, account updater
    plan_change.py      plan changes with proration, and ops' review of failed ones
    cancellation.py     cancellation at the period end, and its undo
    gateway_events.py   gateway events in order, and re-sync from the gateway on a gap
    dunning_link.py     a dunning child per unpaid invoice, and applying its result
    notices.py          customer notices, sent once
    publishing.py       search attributes and current details for ops
    refusals.py         why a portal action is refused (the updates' error types)
    run.py              one run: state, lock, generation, publisher, background work
    generations.py      patches and code generations (what keeps old runs replaying)
    state.py            the state carried through continue-as-new, and portal messages

The concern modules are plain functions the class calls, each taking the ``Run``.
Decisions that need no Temporal (which trigger a renewal fires, what an unpaid invoice
records, what a notice says) are pure functions beside them, tested without a server.

Imports: this package may import ``billing``, ``tax``, ``activities`` (activity
methods and their request and result types, never called directly) and the other
workflows; never ``api``, ``ledger``, ``stores`` or anything doing I/O. Everything from
outside this package, and ``state.py``, is imported under
``workflow.unsafe.imports_passed_through()``: workflow code is re-imported for each run
in the sandbox, plain data and domain code is shared.
"""

from workflows.subscription.generations import (
    CHANGE_VERSION,
    GENERATION,
    PATCH_GENERATION_2,
    PATCH_GENERATION_3,
    PATCH_GENERATION_4,
    PATCH_GENERATION_5,
)
from workflows.subscription.workflow import SubscriptionRunInput, SubscriptionWorkflow

__all__ = [
    "CHANGE_VERSION",
    "GENERATION",
    "PATCH_GENERATION_2",
    "PATCH_GENERATION_3",
    "PATCH_GENERATION_4",
    "PATCH_GENERATION_5",
    "SubscriptionRunInput",
    "SubscriptionWorkflow",
]
