"""Why a portal action is refused, as the ``ApplicationError`` the update answers with.

Every rejection and refusal is an ``ApplicationError`` whose ``type`` is the
machine-readable reason code (``billing.lifecycle.ReasonCode``,
``billing.proration.RefusalCode``, or one of ``unknown_plan``,
``invalid_payment_method``, ``not_started``). Validators raise them before anything
reaches history; handlers raise them again when the state moved on meanwhile.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from billing.lifecycle import InvalidTransition, PortalAction, check_action
    from billing.proration import PlanChangeRefused
    from workflows.manual_review import PAYMENT_METHOD_TOKEN
    from workflows.subscription.state import SubscriptionState


def refusal(exc: InvalidTransition | PlanChangeRefused) -> ApplicationError:
    return ApplicationError(exc.message, type=str(exc.reason_code), non_retryable=True)


def not_started() -> ApplicationError:
    return ApplicationError("the subscription has not started", type="not_started")


def check_portal_action(state: SubscriptionState, action: PortalAction, now: datetime) -> None:
    """Refuse an action the subscription's lifecycle does not allow now."""
    if not state.activated or state.period_end is None:
        raise not_started()
    try:
        check_action(state.snapshot(), action, now=now)
    except InvalidTransition as exc:
        raise refusal(exc) from None


def check_payment_method(state: SubscriptionState, payment_method_id: str, now: datetime) -> None:
    """A new default card must be a gateway token, and the lifecycle must allow it."""
    if not PAYMENT_METHOD_TOKEN.fullmatch(payment_method_id):
        raise ApplicationError(
            "a payment method must be a gateway token (pm_…)",
            type="invalid_payment_method",
            non_retryable=True,
        )
    check_portal_action(state, PortalAction.SET_DEFAULT_PAYMENT_METHOD, now)
