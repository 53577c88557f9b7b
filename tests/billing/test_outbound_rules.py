"""The rules every outbound sender shares: event types, stable ids, the retry schedule
and which endpoint URLs may receive events."""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing.outbound import (
    EVENT_TYPES,
    FIRST_RETRY,
    GIVE_UP_AFTER,
    LONGEST_WAIT,
    RefusedUrl,
    UnknownEventType,
    check_addresses,
    check_event_types,
    check_url,
    endpoint_id,
    event_id,
    next_attempt_delay,
)


def test_event_types_are_checked_and_deduplicated_in_order() -> None:
    assert check_event_types(["invoice.paid", "access.revoked", "invoice.paid"]) == [
        "invoice.paid",
        "access.revoked",
    ]
    with pytest.raises(UnknownEventType, match="at least one"):
        check_event_types([])
    with pytest.raises(UnknownEventType, match=r"invoice\.exploded"):
        check_event_types(["invoice.paid", "invoice.exploded"])
    assert len(set(EVENT_TYPES)) == len(EVENT_TYPES) >= 15


def test_an_event_id_is_stable_per_key_and_differs_between_keys() -> None:
    first = event_id("invoice.paid:inv_1")
    assert first == event_id("invoice.paid:inv_1")
    assert first != event_id("invoice.paid:inv_2")
    assert first.startswith("evt_") and len(first) == 4 + 26


def test_retries_back_off_with_jitter_within_their_ceiling() -> None:
    for attempts in range(1, 40):
        ceiling = min(FIRST_RETRY * 2 ** (attempts - 1), LONGEST_WAIT)
        for key in ("d1", "d2", "d3"):
            wait = next_attempt_delay(key, attempts)
            assert ceiling / 2 <= wait <= ceiling, (attempts, key)
            assert wait == next_attempt_delay(key, attempts), "the same draw on replay"
    waits = {next_attempt_delay(f"d{n}", 3) for n in range(20)}
    assert len(waits) > 10, "jitter spreads deliveries that failed together"
    assert next_attempt_delay("d", 1) < next_attempt_delay("d", 6)
    with pytest.raises(ValueError):
        next_attempt_delay("d", 0)


def test_three_days_of_backoff_take_a_few_dozen_attempts() -> None:
    elapsed, attempts = timedelta(0), 0
    while elapsed < GIVE_UP_AFTER:
        attempts += 1
        elapsed += next_attempt_delay("delivery-7", attempts)
    assert 12 <= attempts <= 40


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("https://hooks.example.com/dunwell", "hooks.example.com", 443),
        ("http://127.0.0.1:8426/events", "127.0.0.1", 8426),
        ("https://[2001:db8::1]/x", "2001:db8::1", 443),
    ],
)
def test_urls_give_their_host_and_port(url: str, host: str, port: int) -> None:
    assert check_url(url) == (host, port)


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "https:///nohost", "https://u:p@example.com/", "http://h:99999/"],
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(RefusedUrl) as refused:
        check_url(url)
    assert refused.value.code == "invalid_url"


@pytest.mark.parametrize(
    ("addresses", "allow_loopback", "allowed"),
    [
        (["93.184.216.34"], False, True),
        (["2606:2800:220:1::1"], False, True),
        (["127.0.0.1"], True, True),
        (["::1"], True, True),
        (["127.0.0.1"], False, False),
        (["10.0.0.5"], True, False),
        (["192.168.1.1"], True, False),
        (["169.254.169.254"], True, False),
        (["fe80::1%eth0"], True, False),
        (["93.184.216.34", "10.0.0.5"], False, False),
        (["224.0.0.1"], False, False),
        ([], True, False),
    ],
)
def test_only_public_addresses_receive(
    addresses: list[str], allow_loopback: bool, allowed: bool
) -> None:
    if allowed:
        check_addresses(addresses, allow_loopback=allow_loopback)
        return
    with pytest.raises(RefusedUrl) as refused:
        check_addresses(addresses, allow_loopback=allow_loopback)
    assert refused.value.code == "url_not_allowed"


def test_event_and_endpoint_ids_never_look_like_card_data_to_the_guard() -> None:
    # Ops replay an event by its id in the path, and the card-data guard scans paths: a
    # hex id held a Luhn-valid 13+ digit run about once in a few hundred.
    from api.pan_guard import card_data_in_target
    from billing.pan import ScanBudget

    event_ids = [event_id(f"invoice.paid:inv_{n}") for n in range(5000)]
    endpoint_ids = [endpoint_id(n.to_bytes(16, "big")) for n in range(0, 2**128, 2**115)]
    assert len(set(event_ids)) == len(event_ids)
    assert event_ids[0] == event_id("invoice.paid:inv_0")  # derived, stable
    for id_ in [*event_ids, *endpoint_ids]:
        path = f"/v1/ops/outbound/events/{id_}/replay"
        assert card_data_in_target(path, b"", ScanBudget()) is None, id_
