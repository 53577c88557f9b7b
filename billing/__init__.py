"""Pure, deterministic billing domain logic shared by workflows and the API.

Nothing in this package does I/O or reads a clock: callers pass ``now``.
"""
