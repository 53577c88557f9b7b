"""Disputes (chargebacks) and the money each moved: revision ``0011_refunds_disputes``.

- ``disputes``: one row per gateway dispute, its state as the gateway last said, and
  the invoice, subscription and customer of the payment it disputes;
- ``dispute_movements``: one row per balance transaction of a dispute (funds withdrawn,
  funds reinstated), written once with its ledger entry.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, String, Table

from ledger.schema import Base, Id, UTCDateTime

metadata = Base.metadata

disputes = Table(
    "disputes",
    metadata,
    Column("dispute_id", String(255), primary_key=True),
    Column("charge_id", String(255), nullable=False),
    Column("payment_ref", String(200), nullable=False),
    Column("invoice_id", String(64), ForeignKey("invoices.id"), nullable=False, index=True),
    Column("subscription_id", String(200), index=True),
    Column("customer_id", String(200), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime),
)

dispute_movements = Table(
    "dispute_movements",
    metadata,
    Column("txn_id", String(255), primary_key=True),
    Column(
        "dispute_id", String(255), ForeignKey("disputes.dispute_id"), nullable=False, index=True
    ),
    Column("kind", String(16), nullable=False),  # withdrawn | reinstated
    Column("amount", BigInteger, nullable=False),  # signed, as the gateway settled it
    Column("fee", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("ledger_entry_id", Id, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
)
