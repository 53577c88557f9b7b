"""Which code a subscription run follows: its patches and its generation.

Runs recorded by older code must replay unchanged, so behaviour that changes a run's
commands is switched on by a ``workflow.patched()`` marker (the patches below) or, since
generation 2, by the generation the run was started with.

Generations:

    1  PATCH_BASELINE: every patch below applies, the tax quote and the invoice run as
       local activities, one activity charges an invoice and records the payment, and
       search attributes carried over by continue-as-new are not upserted again. Each
       patch marker costs an event and a TemporalChangeVersion upsert, in every run.
    2  the tax quote and the invoice are one local activity (``billing.issue_invoice``);
       no card-expiry timer is started that would only fire after the period end (the
       run continues as new first; the next run starts it when it is due); and the
       search attributes a renewal changes go to the next run with continue-as-new
       instead of an upsert just before it.
    3  a charge's first attempt is a local activity, in the workflow task that issued
       the invoice: a renewal then takes no activity task and one workflow task fewer.
       Only a definitive (non-retryable) failure of that attempt stands; a timeout, a
       cancellation (a stopping worker) or a retryable gateway error falls back to the
       normal charge activity with its retries, under the same idempotency key.
    4  a period's invoice is issued and charged by one local activity
       (``billing.bill``): one activation and one marker fewer per renewal. Anything
       that attempt leaves undecided is finished by the steps of generation 3 (issue,
       then the charge activity), which find under their keys what it did.
    5  the run emits outbound events (``outbound.py``): subscription and access
       changes, payment failures and dunning runs, recorded in state with the change
       and written to the outbox by an activity; access timers at each known change.

A first run learns its generation from a patch marker (one per run: the newest it
knows); a run continued as new reads it from the carried state, so it records no marker
and no TemporalChangeVersion upsert at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import workflow
from temporalio.common import SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from workflows.subscription.state import SubscriptionState

# Behaviour added to running workflows; each name is a workflow.patched() marker.
PATCH_GAP_RESYNC = "gateway-gap-resync"
PATCH_CARD_DETAILS = "card-details-and-expiry"
PATCH_CARD_UPDATER = "card-updater-retry"
PATCH_ACTION_REQUIRED = "renewal-action-required"
PATCH_DUNNING_CHILD = "dunning-child"
PATCH_CUSTOMER_NOTICES = "customer-notices"
PATCH_UNDO_RESUMES_DUNNING = "undo-resumes-dunning"
PATCH_NOTICES_OUTSIDE_LOCK = "notices-outside-lock"
# A charge that gave up on an infrastructure failure is retried until the gateway
# answers, with an ops alert, instead of leaving the invoice unpaid (see outage.py).
# Checked with workflow.patched() itself, in every generation: only runs that met an
# outage record it.
PATCH_GATEWAY_OUTAGE = "gateway-outage-retry"
# A payment event for an unpaid invoice is recorded only once the gateway's own record of
# the PaymentIntent matches the invoice (gateway_events.verify); checked with
# workflow.patched() itself, so only runs that received such an event record it.
PATCH_VERIFY_PAYMENTS = "verify-payment-events"
# New dunning runs get the generation-2 policy assignments (standard@v3: a hard decline
# waits for a new card, outage budget, daytime retries). Checked with workflow.patched()
# itself, at each hand-over to dunning.
PATCH_DUNNING_POLICY_V3 = "dunning-policy-v3"
PATCH_BASELINE = "baseline-2026-11"
PATCH_GENERATION_2 = "generation-2"
PATCH_GENERATION_3 = "generation-3"
PATCH_GENERATION_4 = "generation-4"
PATCH_GENERATION_5 = "generation-5"

GENERATION = 5
# The marker a first run of each generation records (TemporalChangeVersion shows it).
GENERATION_MARKERS = {
    2: PATCH_GENERATION_2,
    3: PATCH_GENERATION_3,
    4: PATCH_GENERATION_4,
    5: PATCH_GENERATION_5,
}
CHANGE_VERSION = SearchAttributeKey.for_keyword_list("TemporalChangeVersion")


@dataclass(frozen=True)
class Generation:
    """The generation of the code this run follows, and how the run learnt it."""

    number: int
    # The run recorded the generation's marker (a first run of generation 2 or later):
    # the SDK upserted TemporalChangeVersion for it, which the run's info does not show.
    marked: bool

    @classmethod
    def of_run(cls, carried: SubscriptionState | None) -> Generation:
        """The first commands of every run, so runs recorded before them replay without
        them: the carried generation, else the newest patch marker this run has."""
        if carried is not None and carried.generation:
            return cls(carried.generation, marked=False)
        if workflow.patched(PATCH_GENERATION_5):
            return cls(5, marked=True)
        if workflow.patched(PATCH_GENERATION_4):
            return cls(4, marked=True)
        if workflow.patched(PATCH_GENERATION_3):
            return cls(3, marked=True)
        if workflow.patched(PATCH_GENERATION_2):
            return cls(2, marked=True)
        return cls(1 if workflow.patched(PATCH_BASELINE) else 0, marked=False)

    @property
    def baseline(self) -> bool:
        return self.number >= 1

    @property
    def emits_events(self) -> bool:
        """Generation 5 on: the run emits outbound events."""
        return self.number >= 5

    def patched(self, patch_id: str) -> bool:
        """Whether a behaviour added by ``patch_id`` applies: always from the baseline
        on; before it, as the run's own marker says."""
        return self.baseline or workflow.patched(patch_id)

    def change_version(self) -> str:
        """What TemporalChangeVersion holds for a run that recorded its marker."""
        return GENERATION_MARKERS[self.number]
