"""Where a customer is, from the billing address, and which fields decided it.

The country decides everywhere; the state or province decides as well in the United
States and Canada, where the tax differs per subdivision. India is decided at country
level: a supplier outside India charges IGST whatever the state. Postal codes are not
used (US local rates are out of scope).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

from tax.errors import MissingAddressError, UnknownCountryError, UnknownRegionError
from tax.model import Address, Evidence

# Source: Council Directive 2006/112/EC territorial scope; EU-27 since 2020-02-01.
EU_MEMBER_STATES = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split()
)

# ISO 3166-2:US states + DC, ISO 3166-2:CA provinces and territories.
US_STATES = frozenset(
    "AK AL AR AZ CA CO CT DC DE FL GA HI IA ID IL IN KS KY LA MA MD ME MI MN MO MS MT NC ND NE "
    "NH NJ NM NV NY OH OK OR PA RI SC SD TN TX UT VA VT WA WI WV WY".split()
)
CA_PROVINCES = frozenset("AB BC MB NB NL NS NT NU ON PE QC SK YT".split())
REGIONS_BY_COUNTRY = {"US": US_STATES, "CA": CA_PROVINCES}


@cache
def iso_countries() -> frozenset[str]:
    text = (resources.files("tax") / "data" / "countries.txt").read_text(encoding="utf-8")
    return frozenset(
        line.split("\t", 1)[0] for line in text.splitlines() if line and not line.startswith("#")
    )


def jurisdiction_known(code: str) -> bool:
    """A jurisdiction the seller can register in or a certificate can be issued for:
    "EU" (the One-Stop Shop), an ISO 3166-1 country, or "US-TX" / "CA-QC"."""
    if code == "EU" or code in iso_countries():
        return True
    country, dash, region = code.partition("-")
    return bool(dash) and region in REGIONS_BY_COUNTRY.get(country, frozenset())


@dataclass(frozen=True, slots=True)
class Place:
    country: str
    region: str  # "" where the region does not decide

    @property
    def code(self) -> str:
        return f"{self.country}-{self.region}" if self.region else self.country

    @property
    def in_eu(self) -> bool:
        return self.country in EU_MEMBER_STATES


def resolve_place(address: Address | None) -> tuple[Place, Evidence]:
    if address is None:
        raise MissingAddressError("the customer has no billing address")
    country = (address.country or "").strip().upper()
    if not country:
        raise MissingAddressError("the billing address has no country")
    if country not in iso_countries():
        raise UnknownCountryError(f"{address.country!r} is not an ISO 3166-1 alpha-2 code")
    regions = REGIONS_BY_COUNTRY.get(country)
    if regions is None:
        return Place(country, ""), Evidence(
            "jurisdiction", country, f"billing_address.country={country}"
        )
    raw_region = (address.region or "").strip().upper()
    if not raw_region:
        raise MissingAddressError(f"a {country} billing address needs a state or province")
    region = raw_region.removeprefix(f"{country}-")
    if region not in regions:
        raise UnknownRegionError(f"{address.region!r} is not a state or province of {country}")
    return Place(country, region), Evidence(
        "jurisdiction",
        f"{country}-{region}",
        f"billing_address.country={country}; billing_address.region={address.region}",
    )
