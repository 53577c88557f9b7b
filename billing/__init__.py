"""Pure, deterministic billing domain logic shared by workflows and the API.

Money, the plan catalog, proration, the subscription lifecycle, dunning policy, the
decline taxonomy, gateway and event types. Nothing in this package does I/O or reads a
clock: callers pass ``now``.

May import: the standard library only. No I/O package (database, gateway, HTTP,
Temporal) and none of Dunwell's other packages.
"""
