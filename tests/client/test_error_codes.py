"""Every error code the API can emit maps to its client class.

The codes are read from the API's source (every ``ApiError(status, "code", …)``, the
middlewares' ``error_response(...)`` and refusals, the handlers' fallbacks), so a new
code the client does not name fails here until ``dunwell.client.errors`` names it."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from dunwell.client import errors
from dunwell.client._calls import error_from

API = Path(__file__).resolve().parents[2] / "api"
# A status then a code, as the first two arguments of whatever builds an error answer.
_EMITTED = re.compile(
    r"(?:ApiError|Refusal|error_response|__init__)\(\s*(\d{3}),\s*\"([a-z0-9_]+)\"", re.S
)
# The HTTP exception handler's own codes ({404: "not_found", 405: ...}).
_HANDLER = re.compile(r"(\d{3}): \"([a-z0-9_]+)\"")


def emitted_codes() -> set[tuple[int, str]]:
    found: set[tuple[int, str]] = set()
    for path in API.rglob("*.py"):
        text = path.read_text()
        found |= {(int(s), c) for s, c in _EMITTED.findall(text)}
        if path.name == "errors.py":
            found |= {(int(s), c) for s, c in _HANDLER.findall(text)}
    return found


EMITTED = sorted(emitted_codes())


def test_the_scan_finds_the_codes_it_should() -> None:
    assert len(EMITTED) > 50
    for expected in [
        (401, "invalid_api_key"),
        (403, "ops_key_required"),
        (404, "customer_not_found"),
        (409, "idempotency_key_reused"),
        (422, "invalid_request"),
        (429, "rate_limited"),
        (400, "card_data_refused"),
        (503, "temporal_unavailable"),
        (502, "gateway_error"),
        (405, "method_not_allowed"),
    ]:
        assert expected in EMITTED


@pytest.mark.parametrize(("status", "code"), EMITTED)
def test_each_emitted_code_has_its_class(status: int, code: str) -> None:
    assert code in errors.ERROR_CODES, f"dunwell.client.errors does not name {code!r}"
    cls = errors.error_class(status, code)
    assert cls is errors.ERROR_CODES[code]
    # The code's class belongs to its status's family.
    assert issubclass(cls, errors.BY_STATUS[status]), (status, code, cls)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (409, errors.ConflictError),  # a workflow's refusal, e.g. not_paused
        (422, errors.InvalidRequestError),
        (400, errors.InvalidRequestError),
        (418, errors.InvalidRequestError),
        (503, errors.ServiceUnavailableError),
        (500, errors.UnexpectedResponseError),
    ],
)
def test_a_code_the_client_does_not_know_gets_its_status_class(
    status: int, cls: type[errors.DunwellError]
) -> None:
    assert errors.error_class(status, "something_new") is cls


def test_an_answer_without_the_error_shape_is_unexpected() -> None:
    html = httpx.Response(500, text="<h1>Internal Server Error</h1>")
    caught = error_from(html)
    assert type(caught) is errors.UnexpectedResponseError
    assert (caught.status, caught.code) == (500, "unexpected_response")
    proxy = httpx.Response(503, json={"message": "upstream down"}, headers={"Retry-After": "7"})
    assert (error_from(proxy).code, error_from(proxy).retry_after) == ("unexpected_response", 7)


def test_an_error_carries_what_the_api_said() -> None:
    answer = httpx.Response(
        429,
        json={"error": {"code": "rate_limited", "message": "too many requests"}},
        headers={"Retry-After": "12"},
    )
    caught = error_from(answer)
    assert isinstance(caught, errors.RateLimitedError)
    assert (caught.status, caught.code, caught.message, caught.retry_after) == (
        429,
        "rate_limited",
        "too many requests",
        12,
    )
    assert str(caught) == "429 rate_limited: too many requests"
