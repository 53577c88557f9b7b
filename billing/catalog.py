"""The plan catalog and the customer records billing needs.

A catalog is a versioned JSON document (``billing/data/catalog.json`` by default)::

    {"version": 1,
     "plans": [{"id": "pro-monthly", "name": "Pro (monthly)", "tier": 2,
                "interval": "month", "interval_count": 1, "trial_days": 14,
                "prices": [{"currency": "EUR", "amount": 2900, "tax_inclusive": false}],
                "features": {"seats": 5, "api_calls_per_month": 100000, "sso": false}}]}

``tier`` ranks plans for upgrade versus downgrade; plans billed monthly and yearly for
the same product share a tier. Amounts are integer minor units of the price's currency.
Interval, interval count and trial belong to the plan, so every price of a plan bills
on the same cycle; each ``Price`` carries them so proration needs nothing else.
``features`` are what the plan entitles to (``billing.entitlements``): a flag (true or
false) or a non-negative integer limit per feature name; a change to them is a new
catalog version, and a subscription keeps the catalog version it started with.

All types are frozen dataclasses so Temporal's pydantic data converter can carry them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from billing.money import Money, currency_exponent
from billing.periods import Interval


class CatalogError(ValueError):
    """The catalog document is malformed; the message names the offending field."""


class UnknownPlanError(LookupError):
    """No plan with this id in the catalog."""


class UnknownPriceError(LookupError):
    """The plan exists but has no price in this currency."""


@dataclass(frozen=True, slots=True)
class Price:
    plan_id: str
    currency: str
    amount: int
    interval: Interval
    interval_count: int = 1
    trial_days: int | None = None
    tax_inclusive: bool = False

    def __post_init__(self) -> None:
        if type(self.amount) is not int or self.amount < 0:
            raise ValueError(f"amount must be a non-negative int, got {self.amount!r}")
        currency_exponent(self.currency)
        if type(self.interval_count) is not int or self.interval_count < 1:
            raise ValueError(f"interval_count must be a positive int, got {self.interval_count!r}")
        object.__setattr__(self, "interval", Interval(self.interval))
        if self.trial_days is not None and (
            type(self.trial_days) is not int or self.trial_days < 0
        ):
            raise ValueError(f"trial_days must be a non-negative int, got {self.trial_days!r}")

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)

    def same_cycle(self, other: Price) -> bool:
        return (self.interval, self.interval_count) == (other.interval, other.interval_count)


@dataclass(frozen=True, slots=True)
class Plan:
    plan_id: str
    name: str
    tier: int
    prices: tuple[Price, ...]
    features: dict[str, bool | int] = field(default_factory=dict)

    def price(self, currency: str) -> Price:
        for candidate in self.prices:
            if candidate.currency == currency:
                return candidate
        raise UnknownPriceError(f"plan {self.plan_id!r} has no price in {currency!r}")

    @property
    def currencies(self) -> frozenset[str]:
        return frozenset(p.currency for p in self.prices)


@dataclass(frozen=True, slots=True)
class Catalog:
    version: int
    plans: tuple[Plan, ...]

    def plan(self, plan_id: str) -> Plan:
        for candidate in self.plans:
            if candidate.plan_id == plan_id:
                return candidate
        raise UnknownPlanError(f"unknown plan {plan_id!r} in catalog version {self.version}")

    def price(self, plan_id: str, currency: str) -> Price:
        return self.plan(plan_id).price(currency)

    def tier(self, plan_id: str) -> int:
        return self.plan(plan_id).tier


@dataclass(frozen=True, slots=True)
class BillingAddress:
    country: str  # ISO 3166-1 alpha-2, upper case
    state: str | None
    postal_code: str
    city: str
    line1: str
    line2: str | None = None

    def __post_init__(self) -> None:
        if len(self.country) != 2 or not self.country.isascii() or not self.country.isupper():
            raise ValueError(f"country must be an ISO 3166-1 alpha-2 code, got {self.country!r}")


@dataclass(frozen=True, slots=True)
class CustomerProfile:
    customer_id: str
    email: str
    name: str
    address: BillingAddress
    tax_id: str | None = None
    # IANA zone name, used only to show local dates to the customer; billing runs in UTC.
    timezone: str = "UTC"
    # Picks the dunning policy with the plan (``billing/dunning/data/policies.json``).
    segment: str = "default"


_PLAN_KEYS = {
    "id",
    "name",
    "tier",
    "interval",
    "interval_count",
    "trial_days",
    "prices",
    "features",
}
_PRICE_KEYS = {"currency", "amount", "tax_inclusive"}


def load_catalog(path: Path | str | None = None) -> Catalog:
    """Read and validate a catalog file; without ``path``, the packaged demo catalog."""
    if path is None:
        text = resources.files("billing").joinpath("data", "catalog.json").read_text("utf-8")
        source = "billing/data/catalog.json"
    else:
        text = Path(path).read_text(encoding="utf-8")
        source = str(path)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{source}: not valid JSON: {exc}") from None
    try:
        return parse_catalog(document)
    except CatalogError as exc:
        raise CatalogError(f"{source}: {exc}") from None


def parse_catalog(document: Any) -> Catalog:
    """Validate an already-decoded catalog document."""
    if not isinstance(document, Mapping):
        raise CatalogError("catalog must be a JSON object")
    _reject_unknown_keys(document, {"version", "description", "plans"}, "catalog")
    version = _positive_int(document.get("version"), "version")
    raw_plans = document.get("plans")
    if not isinstance(raw_plans, list) or not raw_plans:
        raise CatalogError("plans: must be a non-empty list")
    plans: list[Plan] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_plans):
        plan = _parse_plan(raw, f"plans[{i}]")
        if plan.plan_id in seen:
            raise CatalogError(f"plans[{i}].id: duplicate plan id {plan.plan_id!r}")
        seen.add(plan.plan_id)
        plans.append(plan)
    return Catalog(version=version, plans=tuple(plans))


def _parse_plan(raw: Any, where: str) -> Plan:
    if not isinstance(raw, Mapping):
        raise CatalogError(f"{where}: must be an object")
    _reject_unknown_keys(raw, _PLAN_KEYS, where)
    plan_id = _non_empty_str(raw.get("id"), f"{where}.id")
    name = _non_empty_str(raw.get("name"), f"{where}.name")
    tier = _int(raw.get("tier"), f"{where}.tier")
    interval = raw.get("interval")
    if interval not in (Interval.MONTH.value, Interval.YEAR.value):
        raise CatalogError(f"{where}.interval: must be 'month' or 'year', got {interval!r}")
    interval_count = _positive_int(raw.get("interval_count", 1), f"{where}.interval_count")
    trial_days = raw.get("trial_days")
    if trial_days is not None:
        trial_days = _positive_int(trial_days, f"{where}.trial_days")
    raw_prices = raw.get("prices")
    if not isinstance(raw_prices, list) or not raw_prices:
        raise CatalogError(f"{where}.prices: must be a non-empty list")
    prices: list[Price] = []
    for j, raw_price in enumerate(raw_prices):
        at = f"{where}.prices[{j}]"
        if not isinstance(raw_price, Mapping):
            raise CatalogError(f"{at}: must be an object")
        _reject_unknown_keys(raw_price, _PRICE_KEYS, at)
        currency = raw_price.get("currency")
        if not isinstance(currency, str):
            raise CatalogError(f"{at}.currency: must be an ISO 4217 code, got {currency!r}")
        try:
            currency_exponent(currency)
        except ValueError:
            raise CatalogError(f"{at}.currency: unknown currency {currency!r}") from None
        if any(p.currency == currency for p in prices):
            raise CatalogError(f"{at}.currency: duplicate price in {currency} for {plan_id!r}")
        amount = raw_price.get("amount")
        if type(amount) is not int or amount < 0:
            raise CatalogError(
                f"{at}.amount: must be a non-negative integer of minor units, got {amount!r}"
            )
        tax_inclusive = raw_price.get("tax_inclusive", False)
        if type(tax_inclusive) is not bool:
            raise CatalogError(f"{at}.tax_inclusive: must be true or false")
        prices.append(
            Price(
                plan_id=plan_id,
                currency=currency,
                amount=amount,
                interval=Interval(interval),
                interval_count=interval_count,
                trial_days=trial_days,
                tax_inclusive=tax_inclusive,
            )
        )
    features = _parse_features(raw.get("features", {}), f"{where}.features")
    return Plan(plan_id=plan_id, name=name, tier=tier, prices=tuple(prices), features=features)


def _parse_features(raw: Any, where: str) -> dict[str, bool | int]:
    if not isinstance(raw, Mapping):
        raise CatalogError(f"{where}: must be an object of feature name to true/false or a limit")
    features: dict[str, bool | int] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name.strip():
            raise CatalogError(f"{where}: feature names must be non-empty strings")
        if type(value) is bool or (type(value) is int and value >= 0):
            features[name] = value
            continue
        raise CatalogError(
            f"{where}.{name}: must be true, false or a non-negative integer, got {value!r}"
        )
    return features


def _reject_unknown_keys(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise CatalogError(f"{where}: unknown field(s) {', '.join(unknown)}")


def _int(value: Any, where: str) -> int:
    if type(value) is not int:  # bool is an int subclass and is refused here
        raise CatalogError(f"{where}: must be an integer, got {value!r}")
    return value


def _positive_int(value: Any, where: str) -> int:
    if _int(value, where) < 1:
        raise CatalogError(f"{where}: must be a positive integer, got {value!r}")
    return int(value)


def _non_empty_str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(f"{where}: must be a non-empty string, got {value!r}")
    return value
