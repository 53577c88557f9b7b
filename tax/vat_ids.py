"""EU VAT identification numbers: offline format check and the live checker seam.

The offline check is ``stdnum.eu.vat`` (country prefix, length, check digits). A live
check against VIES is a ``VatIdChecker`` handed to the engine; none is used by default,
and when one is used its answer is kept on the quote as proof.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from stdnum.eu import vat as eu_vat

from tax.errors import InvalidVatIdError
from tax.model import VatCheckResult

# VAT ID prefix → ISO 3166 country code (Greece uses EL, Northern Ireland XI).
_PREFIX_COUNTRY = {"EL": "GR", "XI": "GB"}


class VatIdChecker(Protocol):
    def check(self, vat_id: str, at: datetime) -> VatCheckResult: ...


def normalize_vat_id(vat_id: str) -> str:
    return str(eu_vat.compact(vat_id))


def is_valid_vat_id(vat_id: str) -> bool:
    return bool(eu_vat.is_valid(vat_id))


def vat_id_country(vat_id: str) -> str:
    """ISO country code of a (valid) EU VAT ID."""
    prefix = normalize_vat_id(vat_id)[:2]
    return _PREFIX_COUNTRY.get(prefix, prefix)


def validate_vat_id(vat_id: str) -> str:
    """Normalized ID, or ``InvalidVatIdError``: for input forms, before anything is stored."""
    if not is_valid_vat_id(vat_id):
        raise InvalidVatIdError(f"{vat_id!r} is not a valid EU VAT identification number")
    return normalize_vat_id(vat_id)
