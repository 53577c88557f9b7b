"""A manual review opened when a plan change's proration charge failed.

The subscription has already reverted to its original plan and the proration invoice
has been neutralized by a credit note; the review is the ticket ops resolve, visible in
the Temporal UI (id ``review-<invoice id>``, search attribute ``DunwellReviewReason``).
Ops resolve it with one of three updates (the ops API and CLI send them):

- ``retry``: try the same plan change again on the customer's current payment method;
- ``accept_with_payment_method``: make the given ``pm_…`` token the default, then retry;
- ``write_off``: close the review; the subscription stays on its original plan.

The resolution is signalled to ``subscription-<id>``, which owns the subscription's
state and runs the change again (a new proration invoice; a new review if it fails).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ApplicationError

REVIEW_RESOLVED_SIGNAL = "review_resolved"
PAYMENT_METHOD_TOKEN = re.compile(r"pm_[A-Za-z0-9_]{1,200}")

ReviewAction = Literal["retry", "accept_with_payment_method", "write_off"]


@dataclass(frozen=True)
class ReviewInput:
    subscription_id: str
    reason: str  # e.g. proration_charge_failed
    invoice_id: str  # the voided proration invoice
    credit_note_id: str
    change_id: str
    from_plan: str
    to_plan: str
    amount: int
    currency: str
    decline_family: str | None
    decline_reason: str | None
    opened_at: datetime


@dataclass(frozen=True)
class AcceptPaymentMethodRequest:
    payment_method_id: str


@dataclass(frozen=True)
class WriteOffRequest:
    note: str = ""


@dataclass(frozen=True)
class ReviewResolution:
    review_id: str
    action: ReviewAction
    change_id: str
    to_plan: str
    payment_method_id: str | None
    resolved_at: datetime
    note: str = ""


@workflow.defn(name="ManualReviewWorkflow")
class ManualReviewWorkflow:
    def __init__(self) -> None:
        self._resolution: ReviewResolution | None = None
        self._input: ReviewInput | None = None

    @workflow.run
    async def run(self, review: ReviewInput) -> ReviewResolution:
        self._input = review
        self._details("open: waiting for ops (retry, accept with payment method, write off)")
        await workflow.wait_condition(lambda: self._resolution is not None)
        resolution = self._resolution
        assert resolution is not None
        parent = workflow.get_external_workflow_handle(f"subscription-{review.subscription_id}")
        await parent.signal(REVIEW_RESOLVED_SIGNAL, resolution)
        self._details(f"resolved: {resolution.action} at {resolution.resolved_at.isoformat()}")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return resolution

    @workflow.query
    def review(self) -> ReviewInput | None:
        return self._input

    @workflow.query
    def resolution(self) -> ReviewResolution | None:
        return self._resolution

    @workflow.update
    def retry(self) -> ReviewResolution:
        return self._resolve("retry", None, "")

    @retry.validator
    def _validate_retry(self) -> None:
        self._require_open()

    @workflow.update
    def accept_with_payment_method(self, request: AcceptPaymentMethodRequest) -> ReviewResolution:
        return self._resolve("accept_with_payment_method", request.payment_method_id, "")

    @accept_with_payment_method.validator
    def _validate_accept(self, request: AcceptPaymentMethodRequest) -> None:
        self._require_open()
        if not PAYMENT_METHOD_TOKEN.fullmatch(request.payment_method_id):
            raise ApplicationError(
                "a payment method must be a gateway token (pm_…)", type="invalid_payment_method"
            )

    @workflow.update
    def write_off(self, request: WriteOffRequest) -> ReviewResolution:
        return self._resolve("write_off", None, request.note)

    @write_off.validator
    def _validate_write_off(self, request: WriteOffRequest) -> None:
        self._require_open()

    def _require_open(self) -> None:
        if self._input is None:
            raise ApplicationError("the review has not started yet", type="review_not_started")
        if self._resolution is not None:
            raise ApplicationError(
                f"the review is already resolved ({self._resolution.action})",
                type="review_already_resolved",
            )

    def _resolve(
        self, action: ReviewAction, payment_method_id: str | None, note: str
    ) -> ReviewResolution:
        assert self._input is not None
        self._resolution = ReviewResolution(
            review_id=workflow.info().workflow_id,
            action=action,
            change_id=self._input.change_id,
            to_plan=self._input.to_plan,
            payment_method_id=payment_method_id,
            resolved_at=workflow.now(),
            note=note,
        )
        return self._resolution

    def _details(self, status: str) -> None:
        review = self._input
        assert review is not None
        workflow.set_current_details(
            f"**{status}**\n\n"
            f"- subscription: `{review.subscription_id}`\n"
            f"- change: `{review.from_plan}` → `{review.to_plan}` (reverted)\n"
            f"- proration invoice `{review.invoice_id}` voided by credit note "
            f"`{review.credit_note_id}`\n"
            f"- charge of {review.amount} {review.currency} failed: "
            f"{review.decline_family or '—'}/{review.decline_reason or '—'}"
        )
