"""Live VAT ID check against the European Commission's VIES REST API.

Off by default: pass ``ViesRestChecker()`` as ``vat_checker`` to ``BuiltinTaxEngine``.
This module does network I/O, unlike the rest of the built-in engine; it raises
``TaxProviderError`` when VIES cannot answer (member state down, rate limit), so a
retried activity asks again instead of quoting on a guess.
Endpoint: https://ec.europa.eu/taxation_customs/vies/#/technical-information
(``POST /rest-api/check-vat-number``). With the seller's own VAT ID as requester, VIES
returns a consultation number (``requestIdentifier``) that serves as proof of the check.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from tax.errors import TaxProviderError
from tax.model import VatCheckResult
from tax.vat_ids import normalize_vat_id

VIES_REST_BASE = "https://ec.europa.eu/taxation_customs/vies/rest-api"
# userError values that mean "VIES did not decide"; VALID / INVALID are answers.
_NO_ANSWER = frozenset(
    {
        "MS_UNAVAILABLE",
        "MS_MAX_CONCURRENT_REQ",
        "GLOBAL_MAX_CONCURRENT_REQ",
        "SERVICE_UNAVAILABLE",
        "TIMEOUT",
        "INVALID_INPUT",
        "INVALID_REQUESTER_INFO",
    }
)


class ViesRestChecker:
    def __init__(
        self,
        *,
        base_url: str = VIES_REST_BASE,
        requester_vat_id: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.requester = normalize_vat_id(requester_vat_id) if requester_vat_id else None
        self.timeout_s = timeout_s

    def check(self, vat_id: str, at: datetime) -> VatCheckResult:
        compact = normalize_vat_id(vat_id)
        body: dict[str, str] = {"countryCode": compact[:2], "vatNumber": compact[2:]}
        if self.requester:
            body["requesterMemberStateCode"] = self.requester[:2]
            body["requesterNumber"] = self.requester[2:]
        try:
            response = httpx.post(
                f"{self.base_url}/check-vat-number", json=body, timeout=self.timeout_s
            )
            answer = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise TaxProviderError(f"VIES unreachable: {error}", code="vies_unreachable") from error
        user_error = answer.get("userError")
        valid = answer.get("valid", answer.get("isValid"))
        if response.status_code != 200 or user_error in _NO_ANSWER or not isinstance(valid, bool):
            code = user_error or (answer.get("errorWrappers") or [{}])[0].get("error")
            raise TaxProviderError(f"VIES gave no answer for {compact}: {code}", code=code)
        return VatCheckResult(
            vat_id=compact,
            valid=valid,
            checked_at=datetime.now(UTC),
            source="vies",
            consultation_number=answer.get("requestIdentifier") or None,
            name=answer.get("name") or None,
            address=answer.get("address") or None,
        )
