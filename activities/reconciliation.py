"""Reconciliation activities: read a payout's settlement from the gateway, match it
against the ledger, post what it calls for and open the exceptions it finds.

The pages of a payout never pass through workflow history: ``recon.pages`` reads up to
``max_pages`` pages of balance transactions, and for each page, in one database
transaction, looks up the ledger records its sources cite, runs the pure matcher,
stores the lines with their verdicts, posts the fees and conversions (keyed by the
gateway transaction id) and opens the findings (keyed by class and transaction). It
hands back only the cursor and counts. A retried or replayed activity writes nothing
twice. The next page is fetched while the current one is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from temporalio import activity

from activities.gateway_errors import to_application_error
from activities.ledger import ledger_failure
from billing.gateway import GatewayError
from billing.reconciliation.matcher import (
    check_gateway_objects,
    check_ledger_records,
    check_payout,
    match_transactions,
)
from billing.reconciliation.model import GatewayObject, LedgerRecord, Payout, TxnKind
from billing.reconciliation.source import PAGE_LIMIT, SettlementSource, TxnPage
from billing.reconciliation.tolerances import load_tolerances, tolerances_at
from ledger.accounts import AccountRow
from ledger.entries import AccountRef
from ledger.errors import LedgerError
from ledger.reconciliation import runs
from ledger.reconciliation.exceptions import open_findings
from ledger.reconciliation.postings import post_settlement
from ledger.reconciliation.records import ledger_records, unsettled_payments
from ledger.unit_of_work import read, transact

FINAL_PAYOUT_STATUSES = ("paid", "failed", "canceled")
# Pages written per database transaction: fewer, larger statements (bench/reconcile.py).
WRITE_GROUP = 5
# Ledger payments one sweep looks up at the gateway, one request each.
MAX_AGING_LOOKUPS = 500
RECORDING_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class PayoutHead:
    payout_id: str
    status: str
    amount: int
    currency: str
    arrival_date: datetime
    tolerances_version: int


@dataclass(frozen=True)
class PagesRequest:
    payout_id: str
    tolerances_version: int
    cursor: str | None = None
    max_pages: int = 50
    actor: str = "reconciliation"


@dataclass(frozen=True)
class PagesResult:
    cursor: str | None
    done: bool
    pages: int
    lines: int
    matched: int
    findings: int


@dataclass(frozen=True)
class FinishRequest:
    payout_id: str
    actor: str = "reconciliation"


@dataclass(frozen=True)
class RunSummary:
    payout_id: str
    status: str  # reconciled | exceptions | waiting
    payout_status: str
    currency: str
    net: int
    lines: int
    matched: int
    exceptions: int
    exceptions_by_class: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepRequest:
    as_of: datetime
    window_days: int = 3


@dataclass(frozen=True)
class SweepResult:
    payouts_to_run: list[str]
    skipped: list[str]
    findings_opened: int = 0


@dataclass(frozen=True)
class SweepChecks:
    gateway_payments: int  # charges the gateway booked in the window
    aging_checked: int  # ledger payments looked up at the gateway
    opened: int


class ReconciliationActivities:
    def __init__(self, engine: Engine, source: SettlementSource) -> None:
        self._engine = engine
        self._source = source
        self._accounts: MutableMapping[AccountRef, AccountRow] = {}

    def all(self) -> list[Any]:
        return [self.begin, self.pages, self.finish, self.sweep_payouts, self.sweep_checks]

    async def _payout(self, payout_id: str) -> Payout:
        try:
            return await self._source.payout(payout_id)
        except GatewayError as exc:
            raise to_application_error(exc) from exc

    @activity.defn(name="recon.begin")
    async def begin(self, payout_id: str) -> PayoutHead:
        """Read the payout from the gateway and mark its run as running."""
        payout = await self._payout(payout_id)
        now = datetime.now(UTC)
        await asyncio.to_thread(
            transact, self._engine, lambda conn: runs.start_run(conn, payout, at=now)
        )
        version = tolerances_at(payout.arrival_date).version
        return PayoutHead(
            payout.id, payout.status, payout.amount, payout.currency, payout.arrival_date, version
        )

    @activity.defn(name="recon.pages")
    async def pages(self, request: PagesRequest) -> PagesResult:
        """Reconcile up to ``max_pages`` pages of the payout from ``cursor`` on. Pages
        are fetched one after another while earlier ones are written, up to
        ``WRITE_GROUP`` pages per database transaction."""
        tolerances = load_tolerances(request.tolerances_version)
        queue: asyncio.Queue[TxnPage | None] = asyncio.Queue(maxsize=2 * WRITE_GROUP)
        producer = asyncio.create_task(self._produce(request, queue))
        cursor, pages, lines, matched, findings = request.cursor, 0, 0, 0, 0
        finished, more = False, True
        try:
            while not finished:
                group: list[TxnPage] = []
                first = await self._next(queue, producer)
                while first is not None:
                    group.append(first)
                    if len(group) >= WRITE_GROUP or queue.empty():
                        break
                    first = queue.get_nowait()
                if not group:
                    break
                finished = first is None or not group[-1].has_more
                try:
                    counts = await asyncio.to_thread(
                        self._write_pages, group, tolerances, request.actor
                    )
                except LedgerError as err:
                    raise ledger_failure(err) from err
                pages += len(group)
                lines, matched = lines + counts[0], matched + counts[1]
                findings += counts[2]
                cursor, more = group[-1].next_cursor, group[-1].has_more
                activity.heartbeat(cursor)
                if pages >= request.max_pages:
                    finished = True
        finally:
            producer.cancel()
        return PagesResult(cursor, not more, pages, lines, matched, findings)

    async def _produce(self, request: PagesRequest, queue: asyncio.Queue[TxnPage | None]) -> None:
        cursor, fetched = request.cursor, 0
        while True:
            page = await self._page(request.payout_id, cursor)
            fetched += 1
            await queue.put(page)
            if not page.has_more or fetched >= request.max_pages:
                await queue.put(None)
                return
            cursor = page.next_cursor

    @staticmethod
    async def _next(
        queue: asyncio.Queue[TxnPage | None], producer: asyncio.Task[None]
    ) -> TxnPage | None:
        """The next page, or None when there are no more; a failed fetch raises."""
        getter = asyncio.ensure_future(queue.get())
        await asyncio.wait({getter, producer}, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
        getter.cancel()
        producer.result()  # raises the fetch's error
        return queue.get_nowait() if not queue.empty() else None

    async def _page(self, payout_id: str, cursor: str | None) -> TxnPage:
        try:
            return await self._source.payout_transactions(
                payout_id, starting_after=cursor, limit=PAGE_LIMIT
            )
        except GatewayError as exc:
            raise to_application_error(exc) from exc

    def _write_pages(
        self, pages: list[TxnPage], tolerances: Any, actor: str
    ) -> tuple[int, int, int]:
        now = datetime.now(UTC)
        items = [t for page in pages for t in page.items]
        refs = [t.ledger_ref for t in items if t.ledger_ref]

        def work(conn: Any) -> tuple[int, int, int]:
            ledger = ledger_records(conn, refs)
            elsewhere = runs.settled_elsewhere(conn, refs, (t.id for t in items))
            result = match_transactions(items, ledger, tolerances, settled_elsewhere=elsewhere)
            runs.store_lines(conn, result.lines, at=now)
            post_settlement(conn, result.postings, account_cache=self._accounts)
            opened = open_findings(conn, result.findings, actor=actor, at=now)
            return len(result.lines), result.matched, opened

        return transact(self._engine, work)

    @activity.defn(name="recon.finish")
    async def finish(self, request: FinishRequest) -> RunSummary:
        """Judge the payout itself from its stored lines, post its entries, write the
        report. The payout is read again: it may have been paid or failed meanwhile."""
        payout = await self._payout(request.payout_id)
        now = datetime.now(UTC)

        def work(conn: Any) -> runs.Finished:
            runs.start_run(conn, payout, at=now)
            totals = runs.payout_totals(conn, payout)
            judged = check_payout(payout, totals)
            post_settlement(conn, judged.postings, account_cache=self._accounts)
            open_findings(conn, judged.findings, actor=request.actor, at=now)
            waiting = payout.status not in FINAL_PAYOUT_STATUSES
            return runs.finish_run(conn, payout, at=now, waiting=waiting)

        try:
            done = await asyncio.to_thread(transact, self._engine, work)
        except LedgerError as err:
            raise ledger_failure(err) from err
        body = done.report
        return RunSummary(
            payout_id=payout.id,
            status=done.status,
            payout_status=payout.status,
            currency=payout.currency,
            net=int(body["net"]),
            lines=int(body["lines"]),
            matched=int(body["matched"]),
            exceptions=int(body["exceptions"]),
            exceptions_by_class=dict(body["exceptions_by_class"]),
        )

    @activity.defn(name="recon.sweep_payouts")
    async def sweep_payouts(self, request: SweepRequest) -> SweepResult:
        """The payouts arriving in the window before ``as_of`` that need a run: never
        reconciled, or changed at the gateway since their last run."""
        end = request.as_of
        start = end - timedelta(days=request.window_days)
        try:
            payouts = await self._source.payouts(arrival_gte=start, arrival_lt=end)
        except GatewayError as exc:
            raise to_application_error(exc) from exc
        known = await asyncio.to_thread(
            read, self._engine, lambda conn: runs.runs_arriving(conn, start, end)
        )
        to_run, skipped = [], []
        for payout in sorted(payouts, key=lambda p: p.id):
            row = known.get(payout.id)
            settled = row is not None and row["status"] in ("reconciled", "exceptions", "running")
            if settled and row is not None and row["payout_status"] == payout.status:
                skipped.append(payout.id)
            else:
                to_run.append(payout.id)
        return SweepResult(to_run, skipped)

    @activity.defn(name="recon.sweep_checks")
    async def sweep_checks(self, request: SweepRequest) -> SweepChecks:
        """What no payout shows: charges the gateway booked in the window that the ledger
        has no record of (webhook or not), and ledger payments that crossed the
        tolerances' ``unsettled_after_days`` in the window without being settled, each
        looked up at the gateway (gone, in another state, or just not settled)."""
        end = request.as_of
        start = end - timedelta(days=request.window_days)
        # A charge of the last hour may be in the middle of being recorded.
        charged_before = end - RECORDING_GRACE
        tolerances = tolerances_at(end)
        aged_end = end - timedelta(days=tolerances.unsettled_after_days)
        aged_start = aged_end - timedelta(days=request.window_days)
        try:
            txns = await self._source.transactions(created_gte=start, created_lt=charged_before)
        except GatewayError as exc:
            raise to_application_error(exc) from exc
        charged = [t for t in txns if t.kind is TxnKind.PAYMENT and t.ledger_ref]
        refs = [t.ledger_ref for t in charged if t.ledger_ref]

        def ledger_side(conn: Any) -> tuple[dict[str, Any], list[LedgerRecord]]:
            aging = unsettled_payments(conn, aged_start, aged_end, limit=MAX_AGING_LOOKUPS)
            return ledger_records(conn, refs), aging

        ledger, aging = await asyncio.to_thread(read, self._engine, ledger_side)
        objects = [
            GatewayObject(
                t.ledger_ref or "",
                t.source_amount if t.source_amount is not None else t.amount,
                t.source_currency or t.currency,
                t.source_status or "succeeded",
                t.created,
                True,
            )
            for t in charged
        ]
        found: dict[str, GatewayObject | None] = {}
        for record in aging:
            try:
                found[record.ref] = await self._source.payment(record.ref)
            except GatewayError as exc:
                raise to_application_error(exc) from exc
        findings = check_gateway_objects(objects, ledger) + check_ledger_records(
            aging, found, tolerances, end
        )
        now = datetime.now(UTC)
        opened = await asyncio.to_thread(
            transact,
            self._engine,
            lambda conn: open_findings(conn, findings, actor="recon-sweep", at=now),
        )
        return SweepChecks(len(charged), len(aging), opened)
