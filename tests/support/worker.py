"""The one way tests build a Temporal worker: the worker a deployment runs
(``worker.build_worker`` over ``worker.build_activities``), with the peers the test
shares handed in.

Every test worker runs its workflows in Temporal's default, strict sandbox, where the
production worker runs them unsandboxed: the suite is where a non-deterministic call fails
loudly (see ``worker.workflow_runner``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from sqlalchemy import Engine
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.billing import RegistrationSource
from billing.gateway import PaymentGateway
from dunwell.settings import Settings
from tax import Registration
from worker import build_activities, build_worker
from workflows import WORKFLOWS


def dunwell_worker(
    client: Client,
    settings: Settings,
    *,
    task_queue: str,
    engine: Engine | None = None,
    gateway: PaymentGateway | None = None,
    registrations: Sequence[Registration] | RegistrationSource | None = None,
    without: Collection[type] = (),
    replacing: Sequence[Callable[..., Any]] = (),
    workflows: Sequence[type] = WORKFLOWS,
) -> Worker:
    """A worker on ``task_queue`` running ``workflows`` under the strict sandbox.

    ``settings`` wire what a deployment reads from them: the database and gateway when no
    ``engine`` or ``gateway`` is handed in, the tax engine, the SMTP relay and sender,
    the public URL in notices, the invoice issuer and the workflow cache size.
    ``registrations`` stand in for the compliance ledger's. The activities of the classes
    in ``without`` (say ``DunningActivities``) are not registered; each of ``replacing``
    takes the place of the activity of the same name.
    """
    activities = build_activities(
        settings, engine=engine, gateway=gateway, registrations=registrations
    )
    return build_worker(
        client,
        settings,
        task_queue=task_queue,
        activities=registered(activities, without=without, replacing=replacing),
        workflows=workflows,
        runner=SandboxedWorkflowRunner(),
    )


def activity_name(fn: Callable[..., Any]) -> str:
    return activity._Definition.must_from_callable(fn).name


def registered(
    activities: Sequence[Callable[..., Any]],
    *,
    without: Collection[type] = (),
    replacing: Sequence[Callable[..., Any]] = (),
) -> list[Callable[..., Any]]:
    """``activities`` less the methods of instances of ``without``, with each replacement
    in place of the activity of its name. A replacement that replaces nothing is refused:
    the test would no longer exercise what it says."""
    left_out = tuple(without)
    kept = [a for a in activities if not isinstance(getattr(a, "__self__", None), left_out)]
    replacements = {activity_name(r): r for r in replacing}
    unknown = replacements.keys() - {activity_name(a) for a in kept}
    if unknown:
        raise ValueError(f"no registered activity to replace: {sorted(unknown)}")
    return [replacements.get(activity_name(a), a) for a in kept]
