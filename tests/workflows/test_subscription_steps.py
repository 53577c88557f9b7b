"""The subscription workflow's decisions that need no Temporal server.

Each concern module of ``workflows/subscription`` keeps its decisions in pure functions
(which trigger a renewal fires, what an unpaid invoice records, what a notice says, which
search attributes changed); these tests call them directly.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.exceptions import ApplicationError

from activities.billing import InvoiceSummary
from activities.notifications import CustomerNoticeKind
from billing.catalog import load_catalog
from billing.declines import CustomerMessage, DeclineFamily, DeclineInfo, classify_decline
from billing.dunning import EndAction
from billing.events import GatewayEvent
from billing.gateway import (
    ChargeDeclined,
    ChargeOutcome,
    ChargeProcessing,
    ChargeRequiresAction,
)
from billing.lifecycle import SubscriptionStatus, Trigger
from billing.money import Money
from billing.proration import LineKind, decide_change, prorate
from tests.workflows.harness import profile
from workflows import search_attributes as sa
from workflows.dunning import DunningResult
from workflows.subscription import (
    authentication,
    card,
    dunning_link,
    gateway_events,
    notices,
    payments,
    plan_change,
    publishing,
    refusals,
    renewal,
)
from workflows.subscription.state import (
    ConfirmPaymentRequest,
    Notice,
    PaymentMethodInfo,
    PendingAction,
    SubscriptionInput,
    SubscriptionState,
    UnpaidInvoice,
)

T0 = datetime(2027, 1, 1, tzinfo=UTC)
CATALOG = load_catalog()


def active_state(plan_id: str = "pro-monthly") -> SubscriptionState:
    state = SubscriptionState.from_input(
        SubscriptionInput(
            subscription_id="sub_1",
            customer=profile("cust_1"),
            gateway_customer_id="cus_1",
            default_payment_method_id="pm_card_1",
            plan_id=plan_id,
            currency="EUR",
            start_at=T0,
        )
    )
    state.catalog = CATALOG
    state.status = SubscriptionStatus.ACTIVE
    state.anchor, state.period_start = T0, T0
    state.period_end = datetime(2027, 2, 1, tzinfo=UTC)
    return state


def invoice(amount: int = 2900) -> InvoiceSummary:
    return InvoiceSummary(
        invoice_id="inv_1",
        number="2027-000001",
        status="open",
        currency="EUR",
        subtotal=amount,
        tax_total=0,
        total=amount,
        amount_remaining=amount,
    )


def declined(code: str, decline_code: str | None = None) -> ChargeDeclined:
    info = DeclineInfo(code=code, decline_code=decline_code)
    return ChargeDeclined(
        payment_intent_id="pi_1",
        charge_id="ch_1",
        amount=Money(2900, "EUR"),
        decline=info,
        classification=classify_decline(info),
    )


# --- renewal ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "was_trialing", "paid", "expected"),
    [
        (SubscriptionStatus.TRIALING, True, True, Trigger.TRIAL_ENDED_PAID),
        (SubscriptionStatus.TRIALING, True, False, Trigger.TRIAL_ENDED_UNPAID),
        (SubscriptionStatus.ACTIVE, False, True, Trigger.RENEWAL_PAID),
        (SubscriptionStatus.ACTIVE, False, False, Trigger.RENEWAL_FAILED),
        # Paid while past due (an earlier invoice is still owed): the status stays.
        (SubscriptionStatus.PAST_DUE, False, True, None),
        (SubscriptionStatus.PAST_DUE, False, False, Trigger.RENEWAL_FAILED),
    ],
)
def test_a_renewal_moves_the_lifecycle_by_what_was_paid(
    status: SubscriptionStatus, was_trialing: bool, paid: bool, expected: Trigger | None
) -> None:
    assert renewal.renewal_trigger(status, was_trialing=was_trialing, paid=paid) is expected


def test_a_period_is_billed_in_advance_on_one_line() -> None:
    price = CATALOG.price("pro-monthly", "EUR")
    end = datetime(2027, 2, 1, tzinfo=UTC)
    line = renewal.period_line(price, T0, end)
    assert line.line_id == f"pro-monthly:{T0.isoformat()}"
    assert line.description == "pro-monthly from 2027-01-01 to 2027-02-01"
    assert (line.amount, line.plan_id, line.kind) == (2900, "pro-monthly", "subscription")
    assert (line.period_start, line.period_end) == (T0, end)
    assert line.tax_inclusive is price.tax_inclusive


def test_a_scheduled_change_in_the_same_cycle_keeps_the_anchor() -> None:
    state = active_state()
    state.pending_plan_id = "business-monthly"
    boundary = state.period_end
    assert boundary is not None
    renewal.apply_scheduled_change(state, boundary)
    assert (state.plan_id, state.pending_plan_id, state.anchor) == ("business-monthly", None, T0)
    (record,) = state.plan_changes
    assert (record.from_plan, record.to_plan, record.kind) == (
        "pro-monthly",
        "business-monthly",
        "scheduled",
    )
    assert record.effective_at == boundary
    assert record.change_id == f"scheduled:{boundary.isoformat()}"


def test_a_scheduled_change_of_cycle_starts_a_new_grid_at_the_boundary() -> None:
    state = active_state()
    state.pending_plan_id = "pro-yearly"
    boundary = state.period_end
    assert boundary is not None
    renewal.apply_scheduled_change(state, boundary)
    assert (state.plan_id, state.anchor) == ("pro-yearly", boundary)


def test_an_unpaid_invoice_records_the_decline_it_came_from() -> None:
    outcome = declined("card_declined", "insufficient_funds")
    unpaid, decline = renewal.unpaid_invoice(invoice(), outcome, T0)
    assert (unpaid.invoice_id, unpaid.amount, unpaid.currency, unpaid.attempts) == (
        "inv_1",
        2900,
        "EUR",
        1,
    )
    assert unpaid.decline_family == str(outcome.classification.family)
    assert unpaid.decline_reason == outcome.classification.reason
    assert unpaid.payment_intent_id == "pi_1"
    assert unpaid.recorded_at == T0
    assert decline == outcome.decline


def test_an_unpaid_invoice_without_a_charge_keeps_only_the_reason() -> None:
    unpaid, decline = renewal.unpaid_invoice(invoice(), "no_payment_method", T0)
    assert (unpaid.decline_family, unpaid.decline_reason, unpaid.payment_intent_id) == (
        None,
        "no_payment_method",
        None,
    )
    assert decline is None


def test_an_unpaid_invoice_waiting_for_3ds_reads_as_authentication_required() -> None:
    outcome = ChargeRequiresAction("pi_3ds", Money(2900, "EUR"))
    unpaid, decline = renewal.unpaid_invoice(invoice(), outcome, T0)
    assert (unpaid.decline_reason, unpaid.payment_intent_id) == ("requires_action", "pi_3ds")
    assert decline == DeclineInfo(code="authentication_required")


def test_an_unpaid_invoice_still_processing_has_no_decline() -> None:
    unpaid, decline = renewal.unpaid_invoice(
        invoice(), ChargeProcessing("pi_p", Money(2900, "EUR")), T0
    )
    assert (unpaid.decline_reason, unpaid.payment_intent_id, decline) == (
        "processing",
        "pi_p",
        None,
    )


# --- payments and authentication --------------------------------------------------------


def test_authentication_is_demanded_by_3ds_or_an_authentication_decline() -> None:
    auth = declined("authentication_required")
    assert auth.classification.family is DeclineFamily.AUTHENTICATION_REQUIRED
    assert payments.authentication_demanded(auth)
    assert payments.authentication_demanded(ChargeRequiresAction("pi_1", Money(1, "EUR")))
    assert not payments.authentication_demanded(declined("card_declined", "insufficient_funds"))
    assert not payments.authentication_demanded("charge_error")
    assert not payments.authentication_demanded(None)


def test_a_failed_charge_activity_reads_as_its_error_type() -> None:
    assert payments.error_type(ApplicationError("x", type="InvalidGatewayRequest")) == (
        "InvalidGatewayRequest"
    )
    assert payments.error_type(ApplicationError("x")) == "charge_error"
    assert payments.error_type(RuntimeError("x")) == "charge_error"
    assert payments.error_type(None) == "charge_error"


def test_a_pending_action_has_a_deadline_and_a_once_only_notice() -> None:
    state = active_state()
    unpaid, _ = renewal.unpaid_invoice(invoice(), "requires_action", T0)
    action, notice = authentication.pending_action(state, unpaid, "pi_3ds", T0)
    deadline = T0 + state.gateway_policy.action_required_deadline
    assert (action.invoice_id, action.payment_intent_id, action.amount, action.deadline) == (
        "inv_1",
        "pi_3ds",
        2900,
        deadline,
    )
    assert action.status == "waiting"
    assert (notice.kind, notice.key, notice.due_at) == (
        "action_required",
        "action_required:pi_3ds",
        deadline,
    )
    assert notice.portal_path == "/portal?subscription=sub_1"


def test_only_the_waiting_payment_can_be_confirmed() -> None:
    state = active_state()
    with pytest.raises(ApplicationError) as nothing_waits:
        authentication.waiting_action(state)
    assert nothing_waits.value.type == "no_pending_action"
    state.pending_action = PendingAction("inv_1", "pi_1", 2900, "EUR", T0, T0 + timedelta(days=3))
    with pytest.raises(ApplicationError) as other:
        authentication.action_to_confirm(state, _confirm("pi_2"))
    assert other.value.type == "payment_intent_mismatch"
    assert authentication.action_to_confirm(state, _confirm("pi_1")) is state.pending_action


def _confirm(payment_intent_id: str) -> ConfirmPaymentRequest:
    return ConfirmPaymentRequest(payment_intent_id)


# --- the card on file -------------------------------------------------------------------


def updater_event(object_id: str, customer: str | None, card_fields: object) -> GatewayEvent:
    return GatewayEvent(
        event_id="evt_1",
        subscription_id="sub_1",
        source="stripe",
        type="payment_method.automatically_updated",
        object_id=object_id,
        object_type="payment_method",
        sequence=None,
        order_key=(0, 0, "evt_1"),
        created=T0,
        payload={"id": object_id, "customer": customer, "card": card_fields},
    )


def test_the_account_updater_refreshes_the_card_on_file() -> None:
    fields = {
        "brand": "visa",
        "last4": "1881",
        "exp_month": 3,
        "exp_year": 2031,
        "fingerprint": "f",
    }
    refreshed = card.updated_card(active_state(), updater_event("pm_card_1", None, fields))
    assert refreshed == PaymentMethodInfo("pm_card_1", "visa", "1881", 3, 2031, "f")


def test_a_new_token_for_the_same_gateway_customer_is_adopted() -> None:
    refreshed = card.updated_card(active_state(), updater_event("pm_new", "cus_1", {}))
    assert refreshed == PaymentMethodInfo("pm_new")


def test_another_customers_card_is_ignored() -> None:
    assert card.updated_card(active_state(), updater_event("pm_other", "cus_2", {})) is None
    assert card.updated_card(active_state(), updater_event("pm_other", None, {})) is None


def test_card_fields_of_the_wrong_type_are_dropped() -> None:
    fields = {"brand": 4, "last4": None, "exp_month": True, "exp_year": "2031"}
    refreshed = card.updated_card(active_state(), updater_event("pm_card_1", None, fields))
    assert refreshed == PaymentMethodInfo("pm_card_1")
    not_a_dict = card.updated_card(active_state(), updater_event("pm_card_1", None, ["visa"]))
    assert not_a_dict == PaymentMethodInfo("pm_card_1")


# --- gateway events ---------------------------------------------------------------------


def test_a_payment_event_names_its_invoice_in_our_metadata() -> None:
    event = updater_event("pi_1", None, {})
    assert gateway_events.paid_invoice_id(event) is None
    with_metadata = replace(event, payload={"metadata": {"dunwell_invoice_id": "inv_9"}})
    assert gateway_events.paid_invoice_id(with_metadata) == "inv_9"
    odd = replace(event, payload={"metadata": "inv_9"})
    assert gateway_events.paid_invoice_id(odd) is None


# --- the dunning link -------------------------------------------------------------------


def test_a_stop_is_applied_at_its_revoke_instant_a_recovery_at_once() -> None:
    revoke = T0 + timedelta(days=14)
    stopped = DunningResult(
        "stopped",
        "window_elapsed",
        4,
        end_action=EndAction.CANCEL,
        revoke_access_at=revoke,
        invoice_id="inv_1",
    )
    outcome = dunning_link.outcome_of(stopped, T0)
    assert (outcome.invoice_id, outcome.end_action, outcome.due_at()) == ("inv_1", "cancel", revoke)
    late = dunning_link.outcome_of(stopped, revoke + timedelta(minutes=1))
    assert late.due_at() == revoke + timedelta(minutes=1)
    recovered = dunning_link.outcome_of(
        DunningResult("recovered", "paid", 2, payment_ref="pi_9", invoice_id="inv_1"), T0
    )
    assert (recovered.end_action, recovered.payment_ref, recovered.due_at()) == (None, "pi_9", T0)


def test_only_invoices_with_a_dunning_run_have_children() -> None:
    state = active_state()
    first, _ = renewal.unpaid_invoice(invoice(), "card_declined", T0)
    second = replace(first, invoice_id="inv_2", dunning_workflow_id="dunning-inv_2")
    state.unpaid_invoices = [first, second]
    assert dunning_link.children(state) == ["dunning-inv_2"]


def test_network_caps_count_the_card_by_its_fingerprint() -> None:
    state = active_state()
    state.payment_method = PaymentMethodInfo("pm_card_1", brand="visa", fingerprint="fp_1")
    ref = dunning_link.card_on_file(state)
    assert ref is not None and (ref.fingerprint, ref.brand) == ("fp_1", "visa")
    state.payment_method = PaymentMethodInfo("pm_card_1")
    ref = dunning_link.card_on_file(state)
    assert ref is not None and (ref.fingerprint, ref.brand) == ("pm_card_1", "unknown")
    state.payment_method = None
    assert dunning_link.card_on_file(state) is None


# --- plan changes -----------------------------------------------------------------------


def test_a_change_before_the_start_is_refused_as_not_started() -> None:
    state = active_state()
    state.period_end = None
    with pytest.raises(ApplicationError) as refused:
        plan_change.check(state, "business-monthly", T0)
    assert refused.value.type == "not_started"


def test_an_unknown_plan_is_refused() -> None:
    with pytest.raises(ApplicationError) as refused:
        plan_change.check(active_state(), "platinum-monthly", T0)
    assert (refused.value.type, refused.value.non_retryable) == ("unknown_plan", True)


def test_choosing_the_current_plan_again_withdraws_a_scheduled_change() -> None:
    state = active_state()
    state.pending_plan_id = "starter-monthly"
    assert plan_change.check(state, "pro-monthly", T0) is None


def test_a_change_is_decided_by_policy() -> None:
    state = active_state()
    expected = decide_change(
        state.price(), state.price("business-monthly"), CATALOG, state.change_policy
    )
    assert plan_change.check(state, "business-monthly", T0) == expected


def test_proration_lines_credit_the_old_plan_and_charge_the_new_one() -> None:
    state = active_state()
    assert state.period_end is not None
    now = T0 + timedelta(days=10)
    proration = prorate(
        old_price=state.price(),
        new_price=state.price("business-monthly"),
        period_start=T0,
        period_end=state.period_end,
        change_at=now,
    )
    lines = plan_change.proration_lines("chg_1", proration, now, state.period_end)
    kinds = {LineKind.CREDIT: "proration_credit", LineKind.CHARGE: "proration_charge"}
    assert sorted(kinds[p.kind] for p in proration.lines) == [
        "proration_charge",
        "proration_credit",
    ]
    assert [(ln.line_id, ln.kind, ln.amount, ln.plan_id, ln.tax_inclusive) for ln in lines] == [
        (f"chg_1:{p.kind}", kinds[p.kind], p.amount, p.plan_id, p.tax_inclusive)
        for p in proration.lines
    ]
    assert all((ln.period_start, ln.period_end) == (now, state.period_end) for ln in lines)


@pytest.mark.parametrize(
    ("outcome", "family", "reason"),
    [
        ("charge_error", None, "charge_error"),
        (ChargeProcessing("pi_1", Money(100, "EUR")), None, "processing"),
    ],
)
def test_a_review_says_why_the_proration_charge_failed(
    outcome: ChargeOutcome | str, family: str | None, reason: str
) -> None:
    review = plan_change.review_input(
        active_state(), "chg_1", "pro-monthly", "business-monthly", invoice(), "cn_1", outcome, T0
    )
    assert (review.decline_family, review.decline_reason) == (family, reason)
    assert (review.invoice_id, review.credit_note_id, review.amount, review.opened_at) == (
        "inv_1",
        "cn_1",
        2900,
        T0,
    )


def test_a_review_of_a_decline_carries_its_family() -> None:
    outcome = declined("card_declined", "insufficient_funds")
    review = plan_change.review_input(
        active_state(), "chg_1", "pro-monthly", "business-monthly", invoice(), "cn_1", outcome, T0
    )
    assert review.decline_family == str(outcome.classification.family)
    assert review.decline_reason == outcome.classification.reason


# --- refusals ---------------------------------------------------------------------------


def test_a_payment_method_must_be_a_gateway_token() -> None:
    with pytest.raises(ApplicationError) as refused:
        refusals.check_payment_method(active_state(), "4242", T0)
    assert (refused.value.type, refused.value.non_retryable) == ("invalid_payment_method", True)
    refusals.check_payment_method(active_state(), "pm_card_2", T0)


def test_an_ended_subscription_refuses_portal_actions_with_the_lifecycle_code() -> None:
    from billing.lifecycle import PortalAction, ReasonCode

    state = active_state()
    state.status = SubscriptionStatus.CANCELED
    with pytest.raises(ApplicationError) as refused:
        refusals.check_portal_action(state, PortalAction.CANCEL_AT_PERIOD_END, T0)
    assert refused.value.type == str(ReasonCode.SUBSCRIPTION_CANCELED)


# --- notices and publishing -------------------------------------------------------------


def test_notices_already_sent_are_not_sent_again() -> None:
    state = active_state()
    a = Notice("expiring_card", "expiring_card:pm_card_1:2031-3", T0, payment_method_id="pm_card_1")
    b = replace(a, key="expiring_card:pm_card_2:2031-4", payment_method_id="pm_card_2")
    state.notices = [a, b]
    state.notices_sent = [a.key]
    assert notices.unsent(state) == [b]


def test_an_action_required_notice_asks_to_confirm_the_amount_due() -> None:
    state = active_state()
    unpaid = UnpaidInvoice("inv_1", 2900, "EUR", 1, None, "requires_action", "pi_3ds", T0)
    state.pending_action, notice = authentication.pending_action(state, unpaid, "pi_3ds", T0)
    request = notices.notification(state, notice)
    assert request is not None
    assert request.key == "sub:sub_1:action_required:pi_3ds"
    assert (request.kind, request.amount, request.currency) == (
        CustomerNoticeKind.ACTION_REQUIRED,
        2900,
        "EUR",
    )
    assert request.message is CustomerMessage.CONFIRM_PAYMENT
    assert request.recipient == "ada@example.test"


def test_an_expiring_card_notice_describes_only_that_card() -> None:
    state = active_state()
    state.payment_method = PaymentMethodInfo("pm_card_1", "visa", "1881", 3, 2031)
    notice = Notice("expiring_card", "k", T0, payment_method_id="pm_card_1", due_at=T0)
    request = notices.notification(state, notice)
    assert request is not None
    assert (request.card, request.amount, request.message) == ("visa •••• 1881", 0, None)
    other = notices.notification(state, replace(notice, payment_method_id="pm_card_2"))
    assert other is not None and other.card is None


def test_a_notice_without_a_customer_is_not_sent() -> None:
    state = SubscriptionState(subscription_id="sub_1")
    assert notices.notification(state, Notice("expiring_card", "k", T0)) is None


def test_only_changed_search_attributes_are_published() -> None:
    state = active_state()
    updates = publishing.search_attribute_updates(state)
    assert {u.key.name: u.value for u in updates} == {
        sa.STATUS.name: "active",
        sa.CANCEL_AT_PERIOD_END.name: False,
        sa.BUFFERED_EVENTS.name: 0,
        sa.CUSTOMER_ID.name: "cust_1",
        sa.PLAN.name: "pro-monthly",
        sa.PERIOD_END.name: state.period_end,
    }
    published: dict[str, object] = {u.key.name: u.value for u in updates}
    assert publishing.changed(updates, published) == []
    state.status = SubscriptionStatus.PAST_DUE
    state.cancel_at_period_end = True
    changed = publishing.changed(publishing.search_attribute_updates(state), published)
    assert {u.key.name: u.value for u in changed} == {
        sa.STATUS.name: "past_due",
        sa.CANCEL_AT_PERIOD_END.name: True,
    }


def test_an_idle_subscription_publishes_only_what_it_knows() -> None:
    names = {u.key.name for u in publishing.search_attribute_updates(SubscriptionState("sub_1"))}
    assert names == {sa.STATUS.name, sa.CANCEL_AT_PERIOD_END.name, sa.BUFFERED_EVENTS.name}
