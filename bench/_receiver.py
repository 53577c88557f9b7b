"""The receiver ``bench/outbound.py`` delivers to: the SaaS product's endpoint.

``python bench/_receiver.py --port P --secret S`` serves ``POST /hooks`` with uvicorn:
it verifies every Standard Webhooks signature (400 when one does not verify) and keeps
each accepted delivery's ``webhook-id`` and arrival time (wall clock). ``GET
/_stats?since=N`` returns the deliveries from the N-th on, and how many it refused.
A process of its own, so its CPU is not the bench's.
"""

from __future__ import annotations

import argparse
import time

import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


def build(secret: str) -> Starlette:
    webhook = Webhook(secret)
    ids: list[str] = []
    times: list[float] = []
    refused = [0]

    async def hooks(request: Request) -> Response:
        body = await request.body()
        try:
            webhook.verify(body, dict(request.headers))
        except WebhookVerificationError:
            refused[0] += 1
            return PlainTextResponse("bad signature", status_code=400)
        ids.append(request.headers["webhook-id"])
        times.append(time.time())
        return PlainTextResponse("ok")

    async def stats(request: Request) -> Response:
        since = int(request.query_params.get("since", "0"))
        return JSONResponse({"ids": ids[since:], "times": times[since:], "refused": refused[0]})

    return Starlette(routes=[Route("/hooks", hooks, methods=["POST"]), Route("/_stats", stats)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    uvicorn.run(
        build(args.secret), host="127.0.0.1", port=args.port, log_level="warning",
        access_log=False, lifespan="off",
    )  # fmt: skip


if __name__ == "__main__":
    main()
