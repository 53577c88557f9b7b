"""localstripe as Dunwell's development gateway, with the Stripe behaviour Dunwell relies on.

``dunwell localstripe --port N`` (what ``dunwell dev`` and the tests start) serves
localstripe's own aiohttp app with five adjustments:

- The store stays in memory. localstripe pickles its whole store to the fixed path
  ``/tmp/localstripe.pickle`` after every write, so parallel sessions would overwrite one
  another's file, and each write would re-pickle everything.
- ``Idempotency-Key`` is honoured as Stripe documents it (localstripe ignores it): the
  first response for a key (per API key) is saved and replayed for a retry with the same
  parameters; the same key with other parameters is a 400 ``idempotency_error``.
  Unauthenticated (401) and rate-limited (429) requests are not saved, as on Stripe.
- The pinned API version names ``allowed_payment_method_types`` what localstripe 1.15 knows
  as ``payment_method_types``; SetupIntent ``payment_method_options`` (3-D Secure request)
  is accepted and ignored, since localstripe decides 3-D Secure by test card alone.
- Listing one type of object reads an index of that type instead of scanning the whole
  store. localstripe renders every charge with its refunds, listed by such a scan, so
  each payment cost time in proportion to all objects ever created (20 ms of CPU per
  PaymentIntent after 3,000 of them); Stripe's own latency does not grow that way, and
  ``bench/renewals.py`` would have measured the fake instead of Dunwell.
- PaymentIntents are listed by ``customer`` as on Stripe (localstripe refuses the
  filter): a charge looks up what the customer already paid for an invoice.

Development and tests only: production talks to Stripe.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from dunwell.local_stack import require_local_stack


def serve(port: int, host: str = "127.0.0.1") -> None:
    require_local_stack("localstripe")
    from aiohttp import web
    from localstripe import resources, server

    # In-memory store only (see module docstring).
    resources.Store.dump_to_disk = lambda self: None
    resources.Store.try_load_from_disk = lambda self: None

    _index_store_by_type(resources)
    _rename_payment_method_types(resources.PaymentIntent, drop_options=False)
    _rename_payment_method_types(resources.SetupIntent, drop_options=True)

    saved: dict[tuple[str, str], tuple[str, bytes, int, bytes, str]] = {}

    @web.middleware
    async def idempotency(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "DELETE" and request.path == "/_config/data":
            saved.clear()
            response: web.StreamResponse = await handler(request)
            return response
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not key:
            passed: web.StreamResponse = await handler(request)
            return passed
        body = await request.read()
        scope = (request.headers.get("Authorization", ""), key)
        if scope in saved:
            path, first_body, status, payload, content_type = saved[scope]
            if (path, first_body) != (request.path, body):
                return web.json_response(
                    {
                        "error": {
                            "type": "idempotency_error",
                            "message": "Keys for idempotent requests can only be used "
                            "with the same parameters they were first used with.",
                        }
                    },
                    status=400,
                )
            return web.Response(
                body=payload,
                status=status,
                content_type=content_type,
                headers={"Idempotent-Replayed": "true"},
            )
        response = await handler(request)
        if isinstance(response, web.Response) and response.status not in (401, 429):
            payload = response.body if isinstance(response.body, bytes) else b""
            saved[scope] = (
                request.path,
                body,
                response.status,
                payload,
                response.content_type,
            )
        return response

    # Outermost, so that localstripe's error responses (402 declines) are saved too.
    server.app.middlewares.insert(0, idempotency)
    web.run_app(server.app, host=host, port=port, access_log=None, print=None)


# Types Stripe lists by ``customer=`` that localstripe lists only whole (its charges,
# invoices and subscriptions take the filter in their own listing).
_BY_CUSTOMER = ("payment_intent",)


def _index_store_by_type(resources: Any) -> None:
    """Keep, beside localstripe's store, one dict per object type (keys ``type:id``, in
    insertion order as the store), and list a type from it."""
    by_type: defaultdict[str, dict[str, Any]] = defaultdict(dict)

    def setitem(store: dict[str, Any], key: str, value: Any) -> None:
        dict.__setitem__(store, key, value)
        kind, colon, _ = key.partition(":")
        if colon:
            by_type[kind][key] = value

    def delitem(store: dict[str, Any], key: str) -> None:
        dict.__delitem__(store, key)
        by_type[key.partition(":")[0]].pop(key, None)

    def clear(store: dict[str, Any]) -> None:
        dict.clear(store)
        by_type.clear()

    resources.Store.__setitem__ = setitem
    resources.Store.__delitem__ = delitem
    resources.Store.clear = clear

    def _api_list_all(
        cls: Any, /, url: str, limit: Any = None, starting_after: Any = None, **kwargs: Any
    ) -> Any:
        customer = kwargs.pop("customer", None) if cls.object in _BY_CUSTOMER else None
        if kwargs:  # as localstripe answers an unknown filter
            raise resources.UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        listed = resources.List(url, limit=limit, starting_after=starting_after)
        objects = list(by_type[cls.object].values())
        if customer is not None:
            objects = [o for o in objects if getattr(o, "customer", None) == customer]
        listed._list = objects
        return listed

    resources.StripeObject._api_list_all = classmethod(_api_list_all)


def _rename_payment_method_types(cls: Any, *, drop_options: bool) -> None:
    original = cls._api_create.__func__

    def _api_create(klass: Any, /, **data: Any) -> Any:
        allowed = data.pop("allowed_payment_method_types", None)
        if allowed is not None:
            data.setdefault("payment_method_types", allowed)
        if drop_options:
            data.pop("payment_method_options", None)
        return original(klass, **data)

    cls._api_create = classmethod(_api_create)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="localstripe with Stripe's idempotency")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    args = parser.parse_args()
    serve(args.port, args.host)
