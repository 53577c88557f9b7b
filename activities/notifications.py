"""Customer notifications: render a template, record it, email it, once per key.

    record_pending(key)  -> row exists and is ``sent``: done, nothing is sent
                         -> row is ``pending``: send (again), then mark ``sent``

The key becomes the email's ``Message-ID``. A worker that dies after the relay accepted
the message but before the row says ``sent`` re-sends the identical message with the
same ``Message-ID`` on retry; that is the one duplicate SMTP cannot rule out, and a
receiving system can drop it by that header. The same rows are the portal's list
(``stores.notifications.notifications_for_customer``).
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from enum import StrEnum
from importlib.resources import files
from string import Template

from sqlalchemy import Engine

from billing.declines import CUSTOMER_MESSAGES, CustomerMessage
from billing.dunning.messages import NotificationKind
from billing.money import Money
from stores.notifications import NewNotification, NotificationRow, mark_sent, record_pending

SMTP_TIMEOUT_SECONDS = 30.0


class CustomerNoticeKind(StrEnum):
    """Notices of the subscription itself (the dunning campaign's are NotificationKind)."""

    EXPIRING_CARD = "expiring_card"
    ACTION_REQUIRED = "action_required"  # 3-D Secure on a renewal, before any dunning


@dataclass(frozen=True)
class NotificationRequest:
    key: str
    kind: NotificationKind | CustomerNoticeKind
    customer_id: str
    recipient: str
    invoice_id: str | None  # None for notices about the card rather than an invoice
    subscription_id: str | None
    amount: int  # minor units
    currency: str
    message: CustomerMessage | None = None
    next_retry_at: datetime | None = None  # for reminders and failure notices
    deadline: datetime | None = None  # the last attempt, the customer's deadline, or expiry
    card: str | None = None  # "visa •••• 4242": the card a notice is about
    portal_path: str = "/portal"


@dataclass(frozen=True)
class NotificationReceipt:
    key: str
    message_id: str
    sent_now: bool  # False when an earlier attempt already sent it


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    body: str


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value is not None else ""


def render(request: NotificationRequest, *, public_base_url: str) -> RenderedEmail:
    """The email for a notification; ``activities/templates/<kind>.txt`` starts with a
    ``Subject:`` line and a blank line."""
    raw = files("activities").joinpath(f"templates/{request.kind.value}.txt").read_text("utf-8")
    message = CUSTOMER_MESSAGES[request.message] if request.message is not None else ""
    retry_line = (
        f"We will try again on {_when(request.next_retry_at)}."
        if request.next_retry_at is not None
        else ""
    )
    text = Template(raw).substitute(
        invoice_id=request.invoice_id or "",
        amount=Money(request.amount, request.currency).format(),
        message=message,
        portal_url=f"{public_base_url.rstrip('/')}{request.portal_path}",
        card=request.card or "your card",
        next_retry_at=_when(request.next_retry_at),
        deadline=_when(request.deadline),
        retry_line=retry_line,
    )
    head, _, body = text.partition("\n\n")
    if not head.startswith("Subject: "):
        raise ValueError(f"template {request.kind.value} must start with a Subject: line")
    # Drop the blank paragraphs an empty placeholder leaves behind.
    paragraphs = [p for p in body.strip().split("\n\n") if p.strip()]
    return RenderedEmail(
        subject=head.removeprefix("Subject: ").strip(), body="\n\n".join(paragraphs) + "\n"
    )


def message_id_for(key: str, mail_from: str) -> str:
    """A stable Message-ID per notification key (hashed: keys may hold any characters)."""
    domain = mail_from.rpartition("@")[2] or "dunwell.localhost"
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


class Notifier:
    """Sends each notification once per key; build one per worker with its database and
    SMTP relay."""

    def __init__(
        self,
        engine: Engine,
        *,
        smtp_host: str,
        smtp_port: int,
        mail_from: str,
        public_base_url: str,
    ) -> None:
        self._engine = engine
        self._smtp_host = smtp_host
        self._smtp_port = smtp_port
        self._mail_from = mail_from
        self._public_base_url = public_base_url

    async def send(self, request: NotificationRequest) -> NotificationReceipt:
        rendered = render(request, public_base_url=self._public_base_url)
        new = NewNotification(
            key=request.key,
            customer_id=request.customer_id,
            subscription_id=request.subscription_id,
            invoice_id=request.invoice_id,
            kind=request.kind.value,
            recipient=request.recipient,
            subject=rendered.subject,
            body=rendered.body,
            message_id=message_id_for(request.key, self._mail_from),
        )
        row = await asyncio.to_thread(record_pending, self._engine, new, now=datetime.now(UTC))
        if row.status == "sent":
            return NotificationReceipt(row.key, row.message_id, sent_now=False)
        await asyncio.to_thread(self._deliver, row)
        await asyncio.to_thread(mark_sent, self._engine, row.key, now=datetime.now(UTC))
        return NotificationReceipt(row.key, row.message_id, sent_now=True)

    def _deliver(self, row: NotificationRow) -> None:
        # The stored row, not a fresh rendering, is what goes out: a re-send is identical.
        email = EmailMessage()
        email["From"] = self._mail_from
        email["To"] = row.recipient
        email["Subject"] = row.subject
        email["Message-ID"] = row.message_id
        email["Date"] = format_datetime(row.created_at)
        email["X-Dunwell-Notification-Key"] = row.key
        email.set_content(row.body)
        with smtplib.SMTP(self._smtp_host, self._smtp_port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
            smtp.send_message(email)
