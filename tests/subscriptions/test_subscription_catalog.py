import json
from pathlib import Path
from typing import Any

import pytest

from billing.catalog import (
    BillingAddress,
    CatalogError,
    CustomerProfile,
    Price,
    UnknownPlanError,
    UnknownPriceError,
    load_catalog,
    parse_catalog,
)
from billing.periods import Interval


def valid_document() -> dict[str, Any]:
    return {
        "version": 3,
        "plans": [
            {
                "id": "basic",
                "name": "Basic",
                "tier": 1,
                "interval": "month",
                "prices": [{"currency": "EUR", "amount": 500}],
            },
            {
                "id": "gold",
                "name": "Gold",
                "tier": 2,
                "interval": "year",
                "interval_count": 1,
                "trial_days": 7,
                "prices": [
                    {"currency": "KWD", "amount": 12_500, "tax_inclusive": True},
                    {"currency": "JPY", "amount": 9800},
                ],
            },
        ],
    }


def write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_packaged_demo_catalog() -> None:
    catalog = load_catalog()
    assert catalog.version == 2
    assert {p.plan_id for p in catalog.plans} == {
        "starter-monthly",
        "starter-yearly",
        "pro-monthly",
        "pro-yearly",
        "business-monthly",
        "business-yearly",
    }
    for plan in catalog.plans:
        assert plan.currencies == {"EUR", "USD", "GBP", "JPY"}
    pro = catalog.price("pro-monthly", "EUR")
    assert (pro.amount, pro.interval, pro.interval_count, pro.trial_days) == (
        2900,
        Interval.MONTH,
        1,
        14,
    )
    assert pro.tax_inclusive is False
    assert catalog.tier("starter-yearly") < catalog.tier("pro-monthly")
    assert catalog.tier("pro-monthly") < catalog.tier("business-yearly")
    assert catalog.price("business-yearly", "JPY").interval is Interval.YEAR


def test_load_from_path(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, valid_document()))
    assert catalog.version == 3
    gold = catalog.price("gold", "KWD")
    assert gold == Price(
        plan_id="gold",
        currency="KWD",
        amount=12_500,
        interval=Interval.YEAR,
        interval_count=1,
        trial_days=7,
        tax_inclusive=True,
    )
    assert catalog.price("basic", "EUR").interval_count == 1
    assert catalog.price("basic", "EUR").trial_days is None
    assert catalog.plan("gold").name == "Gold"


def test_unknown_plan_and_price() -> None:
    catalog = parse_catalog(valid_document())
    with pytest.raises(UnknownPlanError, match="platinum"):
        catalog.price("platinum", "EUR")
    with pytest.raises(UnknownPriceError, match="'basic' has no price in 'USD'"):
        catalog.price("basic", "USD")


def _mutate(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    document = valid_document()
    target: Any = document
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("plans", 1, "id"), "basic", r"plans\[1\]\.id: duplicate plan id 'basic'"),
        (
            ("plans", 0, "prices", 0, "currency"),
            "XYZ",
            r"plans\[0\]\.prices\[0\]\.currency: unknown currency 'XYZ'",
        ),
        (
            ("plans", 1, "prices", 1, "currency"),
            "KWD",
            r"plans\[1\]\.prices\[1\]\.currency: duplicate price in KWD",
        ),
        (("plans", 0, "prices", 0, "amount"), 5.0, r"plans\[0\]\.prices\[0\]\.amount: .*5\.0"),
        (("plans", 0, "prices", 0, "amount"), "500", r"prices\[0\]\.amount: must be a non-neg"),
        (("plans", 0, "prices", 0, "amount"), -1, r"prices\[0\]\.amount: .*-1"),
        (("plans", 0, "prices", 0, "amount"), True, r"prices\[0\]\.amount"),
        (("plans", 0, "prices", 0, "amount"), _DELETE, r"prices\[0\]\.amount.*None"),
        (("plans", 0, "interval"), "week", r"plans\[0\]\.interval: must be 'month' or 'year'"),
        (("plans", 0, "interval"), _DELETE, r"plans\[0\]\.interval"),
        (("plans", 0, "interval_count"), 0, r"plans\[0\]\.interval_count: must be a positive"),
        (("plans", 1, "trial_days"), 1.5, r"plans\[1\]\.trial_days: must be an integer"),
        (("plans", 0, "tier"), "1", r"plans\[0\]\.tier: must be an integer"),
        (("plans", 0, "name"), "", r"plans\[0\]\.name: must be a non-empty string"),
        (("plans", 0, "prices"), [], r"plans\[0\]\.prices: must be a non-empty list"),
        (("plans", 0, "price"), [], r"plans\[0\]: unknown field\(s\) price"),
        (("plans", 1, "prices", 0, "tax_inclusive"), "yes", r"tax_inclusive: must be true or"),
        (("version",), _DELETE, r"version: must be an integer"),
        (("version",), 0, r"version: must be a positive integer"),
        (("plans",), [], r"plans: must be a non-empty list"),
    ],
)
def test_catalog_errors_name_the_field(
    tmp_path: Path, path: tuple[Any, ...], value: Any, message: str
) -> None:
    with pytest.raises(CatalogError, match=message) as info:
        load_catalog(write(tmp_path, _mutate(path, value)))
    assert str(info.value).startswith(str(tmp_path / "catalog.json"))


def test_invalid_json_and_non_object(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(CatalogError, match="not valid JSON"):
        load_catalog(path)
    with pytest.raises(CatalogError, match="catalog must be a JSON object"):
        parse_catalog([1, 2])


def test_price_refuses_bad_values_when_built_directly() -> None:
    with pytest.raises(ValueError, match="amount"):
        Price(plan_id="x", currency="EUR", amount=9.99, interval=Interval.MONTH)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unsupported currency"):
        Price(plan_id="x", currency="EURO", amount=1, interval=Interval.MONTH)
    with pytest.raises(ValueError):
        Price(plan_id="x", currency="EUR", amount=1, interval="fortnight")  # type: ignore[arg-type]
    assert Price(plan_id="x", currency="EUR", amount=1, interval="year").interval is Interval.YEAR  # type: ignore[arg-type]


def test_customer_types() -> None:
    address = BillingAddress(
        country="DE", state=None, postal_code="10115", city="Berlin", line1="Invalidenstr. 1"
    )
    profile = CustomerProfile(
        customer_id="cus_1",
        email="a@example.com",
        name="A",
        address=address,
        tax_id="DE123456789",
        timezone="Europe/Berlin",
    )
    assert profile.address.country == "DE"
    with pytest.raises(ValueError, match="alpha-2"):
        BillingAddress(country="de", state=None, postal_code="1", city="c", line1="l")
    with pytest.raises(ValueError, match="alpha-2"):
        BillingAddress(country="DEU", state=None, postal_code="1", city="c", line1="l")


def test_plan_features_are_catalog_data() -> None:
    document = valid_document()
    document["plans"][0]["features"] = {"seats": 5, "sso": True, "api_calls_per_month": 0}
    catalog = parse_catalog(document)
    assert catalog.plan("basic").features == {"seats": 5, "sso": True, "api_calls_per_month": 0}
    assert catalog.plan("gold").features == {}
    assert load_catalog().plan("business-monthly").features["sso"] is True


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ([], r"plans\[0\].features: must be an object"),
        ({"seats": -1}, r"plans\[0\].features.seats: must be true, false or a non-negative"),
        ({"seats": 1.5}, r"plans\[0\].features.seats"),
        ({"seats": "5"}, r"plans\[0\].features.seats"),
        ({" ": True}, r"feature names must be non-empty"),
    ],
)
def test_malformed_features_are_refused(features: Any, message: str) -> None:
    document = valid_document()
    document["plans"][0]["features"] = features
    with pytest.raises(CatalogError, match=message):
        parse_catalog(document)
