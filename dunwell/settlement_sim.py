"""The settlement simulator: settlement on top of localstripe's real charges and refunds.

localstripe cannot produce settlement (its fees are always 0, its payouts are manual and
EUR-only, its balance-transaction list refuses ``payout=``, it has no disputes), so this
small service stands beside it. It reads localstripe's charges and refunds through the
stripe SDK — it never touches localstripe's classes — books them by the rules of
``dunwell.settlement_book`` (fee schedule, availability delay, daily automatic payouts,
payout failures, fees with no source, currency conversion), serves the result as
Stripe's API does (``GET /v1/balance_transactions`` with ``payout=`` and
``expand[]=data.source``, ``/v1/payouts``, ``/v1/balance``, ``/v1/disputes``), and
sends the signed ``payout.paid`` / ``payout.failed`` and ``charge.dispute.*`` webhook
events to Dunwell.

``dunwell settlement-sim`` starts it (``dunwell dev`` does, with payouts every minute
so a newcomer sees one soon); ``DUNWELL_SETTLEMENT_API_BASE`` points the worker at it,
and empty means Stripe's own API. Control endpoints, for tests and benchmarks:

- ``POST /_sim/tick`` ``{"now": epoch}``: read localstripe, make the payouts due at
  ``now``, pay those arrived, send their events (the background loop does this every
  ``--tick-seconds``; 0 turns the loop off);
- ``POST /_sim/payouts/{id}/fail`` ``{"failure_code"}``: fail a payout, paid or not;
- ``POST /_sim/fees`` ``{"id", "amount", "description"}``: a fee with no source;
- ``POST /_sim/disputes`` ``{"charge", "reason"}``: the card network disputes a
  localstripe charge (funds and the dispute fee withdrawn; ``charge.dispute.created``
  and ``charge.dispute.funds_withdrawn`` sent); ``POST /_sim/disputes/{id}/close``
  ``{"outcome": "won" | "lost"}`` ends it (``charge.dispute.funds_reinstated`` when
  won, then ``charge.dispute.closed``);
- ``POST /_sim/charges`` ``{"charges": [...]}`` and ``POST /_sim/other``: synthetic
  charges and transactions of any type (benchmarks; real flows use localstripe);
- ``DELETE /_sim/data``: forget everything.

Development and tests only.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import httpx
import stripe
from aiohttp import web

from dunwell.settlement_book import Book, SimConfig, SimDispute, SimPayout, Txn

log = logging.getLogger("dunwell.settlement_sim")


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """A ``Stripe-Signature`` header value, as Stripe computes it."""
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class Simulator:
    def __init__(
        self,
        config: SimConfig,
        *,
        localstripe: str | None,
        webhook_url: str | None,
        webhook_secret: str,
    ) -> None:
        self.book = Book(config)
        self.config = config
        self.now = int(time.time())
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.outbox: list[dict[str, Any]] = []
        self.card_countries: dict[str, str | None] = {}
        self.lock = asyncio.Lock()
        self.client = (
            stripe.StripeClient("sk_test_settlement_sim", base_addresses={"api": localstripe})
            if localstripe
            else None
        )

    # -- reading localstripe (blocking SDK calls, run in a thread) ---------------------

    def _all(self, lister: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100}
            if cursor:
                params["starting_after"] = cursor
            page = lister(params=params)
            found.extend(obj.to_dict() for obj in page.data)
            if not page.has_more or not page.data:
                return found
            cursor = page.data[-1].id

    def _card_country(self, pm_id: str | None) -> str | None:
        if not pm_id or self.client is None:
            return None
        if pm_id not in self.card_countries:
            pm = self.client.v1.payment_methods.retrieve(pm_id).to_dict()
            self.card_countries[pm_id] = (pm.get("card") or {}).get("country")
        return self.card_countries[pm_id]

    def _read_gateway(self) -> tuple[list[tuple[dict[str, Any], str | None]], list[dict[str, Any]]]:
        if self.client is None:
            return [], []
        charges = [
            (c, self._card_country(c.get("payment_method")))
            for c in self._all(self.client.v1.charges.list)
            if c.get("status") == "succeeded"
            and c.get("captured", True)
            and c["id"] not in self.book.seen_sources
        ]
        refunds = [
            r
            for r in self._all(self.client.v1.refunds.list)
            if r["id"] not in self.book.seen_sources
        ]
        return charges, refunds

    # -- the tick ----------------------------------------------------------------------

    async def tick(self, now: int | None = None) -> dict[str, Any]:
        async with self.lock:
            charges, refunds = await asyncio.to_thread(self._read_gateway)
            self.now = max(self.now, now if now is not None else int(time.time()))
            for charge, country in charges:
                self.book.add_charge(charge, card_country=country)
            for refund in refunds:
                self.book.add_refund(refund)
            made = self.book.run_payouts(self.now)
            paid = self.book.arrive(self.now)
            for payout in paid:
                self._event("payout.paid", payout)
        await self.flush()
        return {"now": self.now, "payouts": [p.id for p in made], "paid": [p.id for p in paid]}

    def _event(self, event_type: str, payout: SimPayout) -> None:
        self._send(event_type, payout.id, payout.render())

    def _send(self, event_type: str, object_id: str, obj: dict[str, Any]) -> None:
        self.outbox.append(
            {
                "id": f"evt_{object_id}_{event_type.rsplit('.', 1)[1]}",
                "object": "event",
                "api_version": "2026-10-28.endive",
                "created": self.now,
                "livemode": False,
                "pending_webhooks": 1,
                "type": event_type,
                "data": {"object": obj},
            }
        )

    async def open_dispute(self, charge_id: str, reason: str) -> SimDispute:
        if self.client is None:
            raise KeyError(charge_id)
        charge = (await asyncio.to_thread(self.client.v1.charges.retrieve, charge_id)).to_dict()
        async with self.lock:
            dispute = self.book.open_dispute(charge, reason, self.now)
            for event_type in ("charge.dispute.created", "charge.dispute.funds_withdrawn"):
                self._send(event_type, dispute.id, dispute.render(self.book, self.now))
        await self.flush()
        return dispute

    async def close_dispute(self, dispute_id: str, outcome: str) -> SimDispute:
        async with self.lock:
            before = self.book.disputes[dispute_id].status
            dispute = self.book.close_dispute(dispute_id, outcome, self.now)
            if before != dispute.status:
                rendered = dispute.render(self.book, self.now)
                if outcome == "won":
                    self._send("charge.dispute.funds_reinstated", dispute.id, rendered)
                self._send("charge.dispute.closed", dispute.id, rendered)
        await self.flush()
        return dispute

    async def flush(self) -> None:
        """Deliver the queued events; one that fails waits for the next tick."""
        if not self.webhook_url:
            self.outbox.clear()
            return
        waiting: list[dict[str, Any]] = []
        async with httpx.AsyncClient(timeout=10) as http:
            for event in list(self.outbox):
                payload = json.dumps(event).encode()
                header = sign(payload, self.webhook_secret, int(time.time()))
                try:
                    response = await http.post(
                        self.webhook_url,
                        content=payload,
                        headers={"Content-Type": "application/json", "Stripe-Signature": header},
                    )
                    if response.status_code >= 300:
                        waiting.append(event)
                except httpx.HTTPError:
                    waiting.append(event)
        self.outbox = waiting

    async def fail(self, payout_id: str, failure_code: str) -> SimPayout:
        async with self.lock:
            before = self.book.payouts[payout_id].status
            payout = self.book.fail_payout(payout_id, failure_code, self.now)
            if before != "failed":
                self._event("payout.failed", payout)
        await self.flush()
        return payout


# -- the HTTP API ----------------------------------------------------------------------


def _error(status: int, message: str, param: str | None = None) -> web.Response:
    return web.json_response(
        {"error": {"type": "invalid_request_error", "message": message, "param": param}},
        status=status,
    )


def _limit(query: Any) -> int:
    return max(1, min(100, int(query.get("limit", "10"))))


def _expands(query: Any) -> set[str]:
    return {v for k, v in query.items() if k == "expand" or k.startswith("expand[")}


def _listing(url: str, data: list[dict[str, Any]], has_more: bool) -> web.Response:
    return web.json_response({"object": "list", "url": url, "has_more": has_more, "data": data})


def build_app(sim: Simulator) -> web.Application:
    routes = web.RouteTableDef()

    @routes.get("/v1/balance_transactions")
    async def list_txns(request: web.Request) -> web.Response:
        q = request.query
        expand = "data.source" in _expands(q)
        limit = _limit(q)
        payout_id = q.get("payout")
        if payout_id is not None:
            if payout_id not in sim.book.payouts:
                return _error(404, f"No such payout: '{payout_id}'", "payout")
            txns, more = sim.book.payout_page(payout_id, q.get("starting_after"), limit)
        else:
            gte = int(q.get("created[gte]", "0"))
            lt = int(q.get("created[lt]", str(2**62)))
            every: list[Txn] = [
                t for t in reversed(sim.book.txns.values()) if gte <= t.created < lt
            ]
            ids = [t.id for t in every]
            after = q.get("starting_after")
            start = ids.index(after) + 1 if after in ids else 0
            txns, more = every[start : start + limit], start + limit < len(every)
        data = [t.render(expand, sim.now) for t in txns]
        return _listing("/v1/balance_transactions", data, more)

    @routes.get("/v1/balance_transactions/{id}")
    async def get_txn(request: web.Request) -> web.Response:
        txn = sim.book.txns.get(request.match_info["id"])
        if txn is None:
            return _error(404, f"No such balance transaction: '{request.match_info['id']}'")
        return web.json_response(txn.render("source" in _expands(request.query), sim.now))

    @routes.get("/v1/payouts/{id}")
    async def get_payout(request: web.Request) -> web.Response:
        payout = sim.book.payouts.get(request.match_info["id"])
        if payout is None:
            return _error(404, f"No such payout: '{request.match_info['id']}'", "id")
        return web.json_response(payout.render())

    @routes.get("/v1/payouts")
    async def list_payouts(request: web.Request) -> web.Response:
        q = request.query
        gte = int(q.get("arrival_date[gte]", "0"))
        lt = int(q.get("arrival_date[lt]", str(2**62)))
        chosen = [
            p
            for p in sorted(sim.book.payouts.values(), key=lambda p: (-p.created, p.id))
            if gte <= p.arrival_date < lt
        ]
        ids = [p.id for p in chosen]
        after = q.get("starting_after")
        start = ids.index(after) + 1 if after in ids else 0
        limit = _limit(q)
        page = chosen[start : start + limit]
        return _listing("/v1/payouts", [p.render() for p in page], start + limit < len(chosen))

    @routes.get("/v1/disputes/{id}")
    async def get_dispute(request: web.Request) -> web.Response:
        dispute = sim.book.disputes.get(request.match_info["id"])
        if dispute is None:
            return _error(404, f"No such dispute: '{request.match_info['id']}'", "id")
        return web.json_response(dispute.render(sim.book, sim.now))

    @routes.get("/v1/disputes")
    async def list_disputes(request: web.Request) -> web.Response:
        chosen = sorted(sim.book.disputes.values(), key=lambda d: (-d.created, d.id))
        ids = [d.id for d in chosen]
        after = request.query.get("starting_after")
        start = ids.index(after) + 1 if after in ids else 0
        limit = _limit(request.query)
        page = [d.render(sim.book, sim.now) for d in chosen[start : start + limit]]
        return _listing("/v1/disputes", page, start + limit < len(chosen))

    @routes.get("/v1/balance")
    async def balance(request: web.Request) -> web.Response:
        funds = sim.book.balance(sim.now)
        return web.json_response(
            {
                "object": "balance",
                "livemode": False,
                "available": [
                    {"amount": f["available"], "currency": c.lower()} for c, f in funds.items()
                ],
                "pending": [
                    {"amount": f["pending"], "currency": c.lower()} for c, f in funds.items()
                ],
            }
        )

    async def _body(request: web.Request) -> dict[str, Any]:
        if request.can_read_body:
            raw = await request.json()
            return raw if isinstance(raw, dict) else {}
        return {}

    @routes.post("/_sim/tick")
    async def tick(request: web.Request) -> web.Response:
        body = await _body(request)
        now = body.get("now")
        return web.json_response(await sim.tick(None if now is None else int(now)))

    @routes.post("/_sim/payouts/{id}/fail")
    async def fail(request: web.Request) -> web.Response:
        payout_id = request.match_info["id"]
        if payout_id not in sim.book.payouts:
            return _error(404, f"No such payout: '{payout_id}'", "id")
        body = await _body(request)
        payout = await sim.fail(payout_id, str(body.get("failure_code", "account_closed")))
        return web.json_response(payout.render())

    @routes.post("/_sim/fees")
    async def fee(request: web.Request) -> web.Response:
        body = await _body(request)
        txn = sim.book.add_fee(
            str(body["id"]), int(body["amount"]), str(body.get("description", "")), sim.now
        )
        return web.json_response({"id": None if txn is None else txn.id})

    @routes.post("/_sim/disputes")
    async def dispute(request: web.Request) -> web.Response:
        body = await _body(request)
        charge_id = body.get("charge")
        if not isinstance(charge_id, str) or not charge_id.startswith("ch_"):
            return _error(400, "a dispute needs the charge it disputes", "charge")
        try:
            opened = await sim.open_dispute(charge_id, str(body.get("reason", "fraudulent")))
        except (KeyError, stripe.InvalidRequestError):
            return _error(404, f"No such charge: '{charge_id}'", "charge")
        return web.json_response(opened.render(sim.book, sim.now))

    @routes.post("/_sim/disputes/{id}/close")
    async def close_dispute(request: web.Request) -> web.Response:
        dispute_id = request.match_info["id"]
        if dispute_id not in sim.book.disputes:
            return _error(404, f"No such dispute: '{dispute_id}'", "id")
        outcome = (await _body(request)).get("outcome", "lost")
        if outcome not in ("won", "lost"):
            return _error(400, "outcome is won or lost", "outcome")
        closed = await sim.close_dispute(dispute_id, str(outcome))
        return web.json_response(closed.render(sim.book, sim.now))

    @routes.post("/_sim/charges")
    async def charges(request: web.Request) -> web.Response:
        body = await _body(request)
        added = 0
        for raw in body.get("charges", []):
            charge = {
                "id": raw["id"],
                "object": "charge",
                "amount": int(raw["amount"]),
                "currency": str(raw["currency"]).lower(),
                "created": int(raw.get("created", sim.now)),
                "payment_intent": raw.get("payment_intent"),
                "status": raw.get("status", "succeeded"),
                "captured": True,
            }
            txn = sim.book.add_charge(
                charge, card_country=raw.get("card_country"), fee=raw.get("fee")
            )
            added += txn is not None
        return web.json_response({"added": added})

    @routes.post("/_sim/other")
    async def other(request: web.Request) -> web.Response:
        body = await _body(request)
        txn = sim.book.add_other(
            str(body["id"]),
            str(body["type"]),
            str(body["reporting_category"]),
            int(body["amount"]),
            sim.now,
        )
        return web.json_response({"id": txn.id})

    @routes.delete("/_sim/data")
    async def reset(request: web.Request) -> web.Response:
        sim.book = Book(sim.config)
        sim.outbox.clear()
        return web.json_response({"deleted": True})

    @routes.get("/_sim/health")
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "now": sim.now})

    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.add_routes(routes)
    return app


async def _loop(sim: Simulator, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await sim.tick()
        except Exception:  # the next tick tries again; localstripe may be restarting
            log.exception("settlement tick failed")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="dunwell settlement-sim")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8421)
    parser.add_argument("--localstripe", default="http://127.0.0.1:8420")
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument(
        "--webhook-secret",
        default=os.environ.get("DUNWELL_STRIPE_WEBHOOK_SECRET", ""),
        help="default: DUNWELL_STRIPE_WEBHOOK_SECRET",
    )
    parser.add_argument("--tick-seconds", type=float, default=5.0)
    parser.add_argument("--config", type=Path, default=None, help="JSON of SimConfig fields")
    args = parser.parse_args(argv)
    raw = json.loads(args.config.read_text()) if args.config else {}
    sim = Simulator(
        SimConfig.from_dict(raw),
        localstripe=args.localstripe or None,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
    )
    app = build_app(sim)
    if args.tick_seconds > 0:

        async def start_loop(app: web.Application) -> None:
            app["loop_task"] = asyncio.create_task(_loop(sim, args.tick_seconds))

        app.on_startup.append(start_loop)
    logging.basicConfig(level=logging.INFO)
    web.run_app(app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
