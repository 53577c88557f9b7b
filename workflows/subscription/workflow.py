"""The subscription workflow class: its state, its message handlers and its main loop.

    run:  [idle until activated]  ->  begin (trial, or first invoice + charge)
          -> wait for the period end (a durable timer that messages can wake)
          -> close the period: cancel at the boundary, or renew
          -> continue-as-new with the state (each boundary, or when the server suggests)

Handlers validate, then hand the work to the concern modules beside this one. Every
handler that awaits activities holds the run's lock (so does the period close):
concurrent portal updates run one after another.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.subscription import (
    authentication,
    cancellation,
    card,
    disputes,
    dunning_link,
    gateway_events,
    notices,
    outbound,
    plan_change,
    renewal,
    upgrade_payment,
)
from workflows.subscription.generations import (
    GENERATION,
    PATCH_ACTION_REQUIRED,
    PATCH_CARD_DETAILS,
    PATCH_CUSTOMER_NOTICES,
    PATCH_DUNNING_CHILD,
    PATCH_GAP_RESYNC,
    Generation,
)
from workflows.subscription.refusals import check_payment_method, check_portal_action
from workflows.subscription.run import DB_TIMEOUT, RETRY, Run

with workflow.unsafe.imports_passed_through():
    # Modules whose types cross the data converter must be in the sandbox's own module
    # table, or pydantic cannot resolve their (string) annotations.
    import billing.declines
    import billing.money
    import billing.periods  # noqa: F401
    import tax.model  # noqa: F401
    from activities.billing import BillingActivities
    from billing.events import GatewayEvent, SubscriptionStart
    from billing.lifecycle import (
        TERMINAL_STATUSES,
        PortalAction,
        SubscriptionStatus,
        TransitionRecord,
    )
    from workflows.dunning import DUNNING_FINISHED_SIGNAL, DunningResult
    from workflows.manual_review import REVIEW_RESOLVED_SIGNAL, ReviewResolution
    from workflows.subscription.state import (
        CancellationResult,
        ChangePlanRequest,
        ChangePlanResult,
        ConfirmPaymentRequest,
        PaymentConfirmation,
        PendingAction,
        SetPaymentMethodRequest,
        SubscriptionInput,
        SubscriptionState,
        UpgradeAuthenticationReport,
    )

# An event-started workflow that nobody activates ends after this; later events restart it.
IDLE_TIMEOUT = timedelta(days=7)

# The run argument: a new subscription, an event-started idle one (signal-with-start
# from the webhook intake), or the state carried by continue-as-new. pydantic tries each
# member: the ``shape`` literals keep input and state apart, and SubscriptionStart (whose
# only field both others also have) wins ties by coming before SubscriptionState.
SubscriptionRunInput = SubscriptionInput | SubscriptionStart | SubscriptionState


@workflow.defn(name="SubscriptionWorkflow")
class SubscriptionWorkflow:
    @workflow.init
    def __init__(self, start: SubscriptionRunInput) -> None:
        if isinstance(start, SubscriptionState):
            state = start
        elif isinstance(start, SubscriptionInput):
            state = SubscriptionState.from_input(start)
        else:
            state = SubscriptionState(subscription_id=start.subscription_id)
        carried = start if isinstance(start, SubscriptionState) else None
        self._state = state
        self._run = Run(state, Generation.of_run(carried))

    # --- the life of a subscription ----------------------------------------------------

    @workflow.run
    async def run(self, start: SubscriptionRunInput) -> SubscriptionState:
        run, state = self._run, self._state
        self._start_watchers()
        if not state.activated and not await self._activated():
            await workflow.wait_condition(workflow.all_handlers_finished)
            return state
        if state.catalog is None:
            state.catalog = await workflow.execute_activity_method(
                BillingActivities.load_catalog,
                state.catalog_version,
                retry_policy=RETRY,
                start_to_close_timeout=DB_TIMEOUT,
            )
        if state.payment_method_to_attach is not None:
            async with run.lock:
                await card.attach_initial(run)
        if state.period_start is None:
            await self._wait_until_start()
            async with run.lock:
                await renewal.begin(run)
            if state.status is SubscriptionStatus.INCOMPLETE:
                await renewal.expire_unless_paid(run)
        while state.status not in TERMINAL_STATUSES:
            if await self._wait_for_period_end():
                run.publisher.hold()
                async with run.lock:
                    await renewal.close_period(run)
                if state.status in TERMINAL_STATUSES:
                    run.publisher.release_held()
                    break
                if run.live_children:
                    run.publisher.release_held()
                    run.continue_due = True  # once the dunning children have closed
                    continue
                await self._continue_as_new()
            elif self._may_continue_as_new():
                await self._continue_as_new()
        run.publish("none: the subscription has ended")
        # A dunning run closes on its own (a cancellation stops it at the grace end, after
        # its invoice end action); the subscription's run ends after it.
        # Its last events (subscription.canceled, access.revoked) reach the outbox first.
        await workflow.wait_condition(
            lambda: (
                workflow.all_handlers_finished()
                and not run.live_children
                and not outbound.unrecorded(state)
            )
        )
        return state

    def _start_watchers(self) -> None:
        """Background loops of this run; each is a patched behaviour, so runs recorded
        before it replay without it."""
        run = self._run
        if run.patched(PATCH_GAP_RESYNC):
            run.watch(gateway_events.watch_gaps(run))
        if run.patched(PATCH_CARD_DETAILS):
            run.watch(card.watch(run))
        if run.patched(PATCH_ACTION_REQUIRED):
            run.watch(authentication.watch_deadline(run))
        if run.patched(PATCH_DUNNING_CHILD):
            run.watch(dunning_link.watch(run))
        if run.patched(PATCH_CUSTOMER_NOTICES):
            run.watch(notices.watch(run))
        if run.generation.emits_events:
            run.on_change = lambda at: outbound.observe(run, at)
            run.watch(outbound.watch(run))

    async def _activated(self) -> bool:
        """An event-started workflow waits for its subscription; False when none came."""
        self._run.publish("idle: waiting for the subscription to be created")
        try:
            await workflow.wait_condition(lambda: self._state.activated, timeout=IDLE_TIMEOUT)
        except TimeoutError:
            return False
        return True

    async def _wait_until_start(self) -> None:
        assert self._state.start_at is not None
        delay = self._state.start_at - workflow.now()
        if delay > timedelta(0):
            self._run.publish(f"start at {self._state.start_at.isoformat()}")
            await workflow.sleep(delay)

    async def _wait_for_period_end(self) -> bool:
        """True at the period end; False when woken early to continue as new."""
        run, state = self._run, self._state
        while True:
            assert state.period_end is not None
            remaining = state.period_end - workflow.now()
            if remaining <= timedelta(0):
                return True
            run.wake = False
            run.publish(f"period end at {state.period_end.isoformat()}")
            try:
                await workflow.wait_condition(
                    lambda: run.wake or self._may_continue_as_new(),
                    timeout=remaining,
                )
            except TimeoutError:
                continue
            if not run.wake:
                return False

    def _ready_to_continue(self) -> bool:
        return (
            workflow.all_handlers_finished()
            and not notices.unsent(self._state)
            and not outbound.unrecorded(self._state)
        )

    def _may_continue_as_new(self) -> bool:
        wanted = self._run.continue_due or workflow.info().is_continue_as_new_suggested()
        return wanted and not self._run.live_children

    async def _continue_as_new(self) -> None:
        # Also wait for a watcher's gateway re-sync (it holds the lock, not a handler):
        # cut short, it would leave a payment recorded in the ledger but not in state.
        # Notices go out first: an activity scheduled alongside continue-as-new is lost.
        run, state = self._run, self._state
        if run.lock.locked() or not self._ready_to_continue():
            run.publisher.release_held()  # ops see the new period while this run finishes
        while True:
            await workflow.wait_condition(self._ready_to_continue)
            await run.lock.acquire()
            if self._ready_to_continue():
                break
            run.lock.release()
        state.trim()
        state.runs += 1
        state.generation = GENERATION  # the next run runs this code
        carried = run.publisher.carried()
        if carried is not None:
            workflow.continue_as_new(state, search_attributes=carried)
        workflow.continue_as_new(state)

    # --- activation --------------------------------------------------------------------

    @workflow.update
    def activate(self, start: SubscriptionInput) -> None:
        """Give an event-started (idle) workflow its subscription."""
        if not self._state.activated:
            self._state.activate(start)
            self._state.last_event = "subscription created"
            self._run.changed()

    @activate.validator
    def _validate_activate(self, start: SubscriptionInput) -> None:
        if start.subscription_id != self._state.subscription_id:
            raise ApplicationError("subscription id mismatch", type="subscription_id_mismatch")
        if self._state.activated and self._state.plan_id != start.plan_id:
            raise ApplicationError("the subscription already exists", type="already_started")

    # --- portal actions ----------------------------------------------------------------

    @workflow.update
    async def change_plan(self, request: ChangePlanRequest) -> ChangePlanResult:
        run = self._run
        async with run.lock:
            # The state may have moved on since the validator ran.
            decision = plan_change.check(self._state, request.plan_id, workflow.now())
            update = workflow.current_update_info()
            change_id = update.id if update else str(workflow.uuid4())
            result = await plan_change.change(
                run, change_id, request.plan_id, decision, on_session=True
            )
            run.wake = True
            run.publish_now()
            return result

    @change_plan.validator
    def _validate_change_plan(self, request: ChangePlanRequest) -> None:
        plan_change.check(self._state, request.plan_id, workflow.now())

    @workflow.update
    async def complete_upgrade_authentication(
        self, report: UpgradeAuthenticationReport
    ) -> ChangePlanResult:
        """The portal ran a plan change's 3-D Secure with Stripe.js; answers with the
        change's outcome (``upgrade_payment``). Takes no lock: the change holds it."""
        return await upgrade_payment.report(self._run, report)

    @complete_upgrade_authentication.validator
    def _validate_upgrade_report(self, report: UpgradeAuthenticationReport) -> None:
        upgrade_payment.check_report(self._state.upgrade_authentication, report)

    @workflow.update
    async def cancel_at_period_end(self) -> CancellationResult:
        run = self._run
        async with run.lock:
            self._check(PortalAction.CANCEL_AT_PERIOD_END)
            await cancellation.cancel_at_period_end(run)
            run.publish_now()
            return CancellationResult(True, self._state.period_end)

    @cancel_at_period_end.validator
    def _validate_cancel(self) -> None:
        self._check(PortalAction.CANCEL_AT_PERIOD_END)

    @workflow.update
    async def undo_cancellation(self) -> CancellationResult:
        run = self._run
        async with run.lock:
            self._check(PortalAction.UNDO_CANCELLATION)
            await cancellation.undo(run)
            run.publish_now()
            return CancellationResult(False, None)

    @undo_cancellation.validator
    def _validate_undo(self) -> None:
        self._check(PortalAction.UNDO_CANCELLATION)

    @workflow.update
    async def set_default_payment_method(self, request: SetPaymentMethodRequest) -> None:
        run = self._run
        async with run.lock:
            self._validate_payment_method(request)
            update = workflow.current_update_info()
            key = update.id if update else str(workflow.uuid4())
            await card.replace_by_customer(run, request.payment_method_id, key)
            run.publish_now()

    @set_default_payment_method.validator
    def _validate_payment_method(self, request: SetPaymentMethodRequest) -> None:
        check_payment_method(self._state, request.payment_method_id, workflow.now())

    @workflow.update
    async def begin_payment_confirmation(self) -> PaymentConfirmation:
        """The customer opened the pending payment in the portal (3-D Secure)."""
        async with self._run.lock:
            return await authentication.begin_confirmation(self._run)

    @begin_payment_confirmation.validator
    def _validate_begin_confirmation(self) -> None:
        authentication.waiting_action(self._state)

    @workflow.update
    async def confirm_payment_completed(self, request: ConfirmPaymentRequest) -> PendingAction:
        """The customer confirmed the pending payment on-session (portal, Stripe.js);
        the gateway's state of the intent decides whether the invoice is paid."""
        async with self._run.lock:
            return await authentication.confirm_completed(self._run, request)

    @confirm_payment_completed.validator
    def _validate_confirmation(self, request: ConfirmPaymentRequest) -> None:
        authentication.action_to_confirm(self._state, request)

    def _check(self, action: PortalAction) -> None:
        check_portal_action(self._state, action, workflow.now())

    # --- signals from the gateway and from child workflows ------------------------------

    @workflow.signal
    async def gateway_event(self, event: GatewayEvent) -> None:
        await gateway_events.receive(self._run, event)

    @workflow.signal(name=DUNNING_FINISHED_SIGNAL)
    def dunning_finished(self, result: DunningResult) -> None:
        """A dunning child's result; applied by ``dunning_link.watch``."""
        dunning_link.receive(self._state, result, workflow.now())
        recovered = result.outcome == "recovered"
        outbound.dunning_event(
            self._run,
            "dunning.recovered" if recovered else "dunning.ended",
            result.invoice_id,
            reason=result.reason,
            attempts=result.attempts,
        )

    @workflow.signal(name=disputes.DISPUTE_SIGNAL)
    async def dispute_update(self, notice: disputes.DisputeNotice) -> None:
        """A dispute of one of its payments changed (``workflows.disputes``)."""
        async with self._run.lock:
            await disputes.receive(self._run, notice)

    @workflow.signal(name=REVIEW_RESOLVED_SIGNAL)
    async def review_resolved(self, resolution: ReviewResolution) -> None:
        async with self._run.lock:
            await plan_change.resolve_review(self._run, resolution)

    # --- queries -----------------------------------------------------------------------

    @workflow.query
    def state(self) -> SubscriptionState:
        return self._state

    @workflow.query
    def transitions(self) -> list[TransitionRecord]:
        return list(self._state.transitions)
