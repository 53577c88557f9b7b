"""Outbound events: the outbox written with each change (``outbox``), reading it back
(``reads``), the endpoints that receive events and their signing secrets
(``endpoints``), and the tables (``tables``, revision ``0015_outbound``).

May import what the rest of ``ledger`` may: ``billing`` (pure) and SQLAlchemy.
"""

from ledger.outbound import endpoints, outbox, reads
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
    "endpoints",
    "outbox",
    "reads",
    "record",
]
