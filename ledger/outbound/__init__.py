"""Outbound events: the outbox written with each change (``outbox``), reading it back
(``reads``), the endpoints that receive events and their signing secrets
(``endpoints``), what each delivery round sends and records (``delivery``), ops'
listing and replay (``ops``), and the tables (``tables``, revisions ``0015_outbound``
and ``0016_outbound_ordering``).

May import what the rest of ``ledger`` may: ``billing`` (pure) and SQLAlchemy.
"""

from ledger.outbound import delivery, endpoints, ops, outbox, reads
from ledger.outbound.endpoints import (
    Endpoint,
    EndpointNotFound,
    EndpointStateError,
    EndpointStatus,
    SigningSecret,
)
from ledger.outbound.outbox import OutboxEvent, record

__all__ = [
    "Endpoint",
    "EndpointNotFound",
    "EndpointStateError",
    "EndpointStatus",
    "OutboxEvent",
    "SigningSecret",
    "delivery",
    "endpoints",
    "ops",
    "outbox",
    "reads",
    "record",
]
