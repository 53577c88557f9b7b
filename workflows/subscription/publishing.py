"""What ops see of a subscription: its search attributes and its current details.

Every upsert is an event in history, so only attributes whose value changed are sent.
While a period closes (generation 2) changed attributes are held back: continue-as-new
carries them to the next run, or ``release_held`` upserts them if the run goes on.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, SearchAttributeUpdate, TypedSearchAttributes

from workflows.subscription.generations import CHANGE_VERSION, Generation

with workflow.unsafe.imports_passed_through():
    from workflows import search_attributes as sa
    from workflows.subscription.state import SubscriptionState, details_markdown


def search_attribute_updates(state: SubscriptionState) -> list[SearchAttributeUpdate[Any]]:
    """Every search attribute a subscription publishes, at its current value."""
    updates: list[SearchAttributeUpdate[Any]] = [
        sa.STATUS.value_set(str(state.status)),
        sa.CANCEL_AT_PERIOD_END.value_set(state.cancel_at_period_end),
        sa.BUFFERED_EVENTS.value_set(state.events.buffered_count),
    ]
    if state.customer is not None:
        updates.append(sa.CUSTOMER_ID.value_set(state.customer.customer_id))
    if state.plan_id is not None:
        updates.append(sa.PLAN.value_set(state.plan_id))
    if state.period_end is not None:
        updates.append(sa.PERIOD_END.value_set(state.period_end))
    return updates


def changed(
    updates: list[SearchAttributeUpdate[Any]], published: dict[str, object]
) -> list[SearchAttributeUpdate[Any]]:
    return [u for u in updates if published.get(u.key.name) != u.value]


class Publisher:
    def __init__(self, state: SubscriptionState, generation: Generation) -> None:
        self._state = state
        self._generation = generation
        self._next_timer = "—"
        self._published: dict[str, object] = {}
        self._held: dict[str, SearchAttributeUpdate[Any]] | None = None
        if generation.baseline:  # what the run was started with is published already
            carried = workflow.info().typed_search_attributes
            self._published = {pair.key.name: pair.value for pair in carried}

    def publish(self, next_timer: str) -> None:
        """Upsert the attributes that changed and set the current details; the next
        timer stays in the details until another one replaces it."""
        state = self._state
        self._next_timer = next_timer
        updates = changed(search_attribute_updates(state), self._published)
        state.buffered_events = state.events.buffered_count
        if updates and self._held is not None:
            self._held.update({u.key.name: u for u in updates})
        elif updates:
            workflow.upsert_search_attributes(updates)
        self._published.update({u.key.name: u.value for u in updates})
        workflow.set_current_details(details_markdown(state, workflow.now(), next_timer))

    def publish_now(self) -> None:
        self.publish(self._next_timer)

    def hold(self) -> None:
        """From now on, changed attributes wait for continue-as-new (generation 2)."""
        if self._generation.number >= 2:
            self._held = {}

    def release_held(self) -> None:
        """Upsert what a period close held back, when no continue-as-new carries it."""
        held, self._held = self._held, None
        if held:
            workflow.upsert_search_attributes(list(held.values()))

    def carried(self) -> TypedSearchAttributes | None:
        """The search attributes the next run starts with, when some were held back;
        None when the next run simply inherits this run's."""
        if not self._held:
            return None
        carried = {pair.key.name: pair for pair in workflow.info().typed_search_attributes}
        if self._generation.marked:  # what the SDK upserted for the marker
            carried[CHANGE_VERSION.name] = SearchAttributePair(
                CHANGE_VERSION, [self._generation.change_version()]
            )
        for update in self._held.values():
            carried[update.key.name] = SearchAttributePair(update.key, update.value)
        return TypedSearchAttributes(list(carried.values()))
