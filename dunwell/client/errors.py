"""The client's errors, chosen by the API's machine-readable ``code``.

::

    DunwellError                      status, code, message, details, retry_after
    ├── DunwellConnectionError        the request did not reach Dunwell (no status)
    ├── UnexpectedResponseError       an answer that is not Dunwell's error shape
    ├── InvalidEventError             an incoming event failed verification
    ├── AuthenticationError           401: no key, or not a valid one
    ├── PermissionDeniedError         403: the key's role may not do this
    ├── NotFoundError                 404
    ├── InvalidRequestError           400, 413, 415, 422: bad input, nothing changed
    │   └── CardDataRefusedError      card data in a request (refused unread)
    ├── ConflictError                 409: refused in the object's current state
    ├── RateLimitedError              429: retry after ``retry_after`` seconds
    ├── GatewayError                  502: the payment gateway refused or failed
    └── ServiceUnavailableError       503: Temporal or the gateway unreachable; retry

``ERROR_CODES`` names the class of every code the API emits; a code it does not know
(a workflow's refusal, a code newer than this client) gets the class of its status.
"""

from __future__ import annotations

from typing import Any


class DunwellError(Exception):
    """An error answered by Dunwell, or met on the way to it."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "error",
        details: list[dict[str, Any]] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details
        self.retry_after = retry_after

    def __str__(self) -> str:
        status = f"{self.status} " if self.status is not None else ""
        return f"{status}{self.code}: {self.message}"


class DunwellConnectionError(DunwellError):
    """The request did not reach Dunwell, or no answer came back."""


class UnexpectedResponseError(DunwellError):
    """Dunwell answered with something that is not its documented shape."""


class InvalidEventError(DunwellError):
    """An incoming event's signature, timestamp or body did not verify."""


class AuthenticationError(DunwellError):
    """401: the API key is missing or not valid."""


class PermissionDeniedError(DunwellError):
    """403: the key is valid but its role may not do this."""


class NotFoundError(DunwellError):
    """404: no such object (or not the caller's)."""


class InvalidRequestError(DunwellError):
    """400, 413, 415 or 422: the request was refused as it stands; nothing changed."""


class CardDataRefusedError(InvalidRequestError):
    """Card data was sent; Dunwell refuses it unread (send gateway tokens, ``pm_…``)."""


class ConflictError(DunwellError):
    """409: refused in the object's current state, or an idempotency key reused."""


class RateLimitedError(DunwellError):
    """429: too many requests; ``retry_after`` says when to try again."""


class GatewayError(DunwellError):
    """502: the payment gateway refused or failed the request."""


class ServiceUnavailableError(DunwellError):
    """503: a component is unreachable; nothing changed unless the code says otherwise
    (``update_timeout``: the request may still take effect). Retry after ``retry_after``."""


BY_STATUS: dict[int, type[DunwellError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: InvalidRequestError,
    409: ConflictError,
    413: InvalidRequestError,
    415: InvalidRequestError,
    422: InvalidRequestError,
    429: RateLimitedError,
    502: GatewayError,
    503: ServiceUnavailableError,
}

_CODES_BY_CLASS: dict[type[DunwellError], tuple[str, ...]] = {
    AuthenticationError: ("invalid_api_key", "invalid_portal_session"),
    PermissionDeniedError: ("ops_key_required", "server_key_required"),
    NotFoundError: (
        "not_found",
        "codec_off",
        "customer_not_found",
        "dispute_not_found",
        "endpoint_not_found",
        "event_not_found",
        "exception_not_found",
        "invoice_not_found",
        "notification_not_found",
        "run_not_found",
        "subscription_not_found",
        "unknown_customer",
        "unknown_invoice",
    ),
    InvalidRequestError: (
        "invalid_request",
        "method_not_allowed",
        "invalid_request_id",
        "invalid_event",
        "invalid_signature",
        "missing_signature",
        "stale_signature",
        "body_too_large",
        "body_too_deep",
        "unsupported_charset",
        "card_data_unverifiable",
        "event_type_not_wanted",
        "invalid_url",
        "naive_datetime",
        "range_too_wide",
        "too_many_events",
        "url_not_allowed",
        "amount_exceeds_refundable",
        "gateway_refused",
        "credit_exceeds_remaining",
        "invalid_action",
        "invalid_amount",
        "invalid_backdate",
        "invalid_note",
        "invalid_payment_method",
        "invalid_payout_id",
        "invalid_payloads",
        "invalid_url",
        "url_not_allowed",
        "invalid_period",
        "invalid_quarter",
        "invalid_range",
        "invalid_reason",
        "invalid_refund",
        "invalid_tax_id",
        "payload_undecodable",
        "payment_method_required",
        "tax_unavailable",
        "trial_unavailable",
        "unknown_event_type",
        "unknown_plan",
        "unknown_price",
    ),
    CardDataRefusedError: ("card_data_refused",),
    ConflictError: (
        "change_in_progress",
        "customer_not_ready",
        "dunning_finished",
        "exception_state",
        "idempotency_conflict",
        "idempotency_key_reused",
        "invoice_not_adjustable",
        "invoice_not_paid",
        "not_started",
        "query_failed",
        "refused",
        "review_already_resolved",
        "review_not_started",
        "subscription_ended",
        "subscription_exists",
        "update_rejected",
    ),
    RateLimitedError: ("rate_limited",),
    GatewayError: ("gateway_error",),
    ServiceUnavailableError: ("gateway_unavailable", "temporal_unavailable", "update_timeout"),
}

ERROR_CODES: dict[str, type[DunwellError]] = {
    code: cls for cls, codes in _CODES_BY_CLASS.items() for code in codes
}


def error_class(status: int, code: str) -> type[DunwellError]:
    """The class for an answer of ``status`` with ``code``: by code when known, else
    by status (a workflow's refusal, a code newer than this client)."""
    known = ERROR_CODES.get(code)
    if known is not None:
        return known
    if status in BY_STATUS:
        return BY_STATUS[status]
    if 400 <= status < 500:
        return InvalidRequestError
    return UnexpectedResponseError
