import pytest
from pydantic import ValidationError

from dunwell.api_keys import Principal, Role
from dunwell.settings import (
    PLACEHOLDER_API_KEY,
    PLACEHOLDER_OPS_API_KEY,
    PLACEHOLDER_SELLER_NAME,
    Environment,
    Settings,
)

REAL = {
    "stripe_api_key": "sk_live_" + "x" * 32,
    "stripe_webhook_secret": "whsec_" + "w" * 32,
    "api_key": "k" * 32,
    "ops_api_key": "o" * 32,
    "portal_session_secret": "s" * 32,
    "relay_secret": "r" * 32,
    "seller_name": "Example Software Ltd",
    "stripe_api_base": None,
    "settlement_api_base": None,
    "temporal_tls": True,
    "payload_keys": "k1:" + "A" * 43,
}


def test_dev_defaults_point_at_local_components() -> None:
    s = Settings(env=Environment.DEV)
    assert s.database_url.startswith("sqlite")
    assert s.stripe_api_base == "http://127.0.0.1:8420"
    assert s.api_key.get_secret_value() == PLACEHOLDER_API_KEY


def test_production_refuses_placeholder_secrets() -> None:
    with pytest.raises(ValidationError, match="DUNWELL_API_KEY"):
        Settings(env=Environment.PRODUCTION, **{**REAL, "api_key": PLACEHOLDER_API_KEY})


@pytest.mark.parametrize(
    "name",
    [
        "stripe_api_key",
        "stripe_webhook_secret",
        "api_key",
        "ops_api_key",
        "portal_session_secret",
        "relay_secret",
    ],
)
@pytest.mark.parametrize("value", ["", "abcd", "x" * 31])
def test_production_refuses_short_secrets(name: str, value: str) -> None:
    with pytest.raises(ValidationError, match=f"DUNWELL_{name.upper()} must be at least 32 bytes"):
        Settings(env=Environment.PRODUCTION, **{**REAL, name: value})


def test_short_secrets_are_fine_in_dev_and_test() -> None:
    for env in (Environment.DEV, Environment.TEST):
        assert Settings(env=env, api_key="abcd").api_key.get_secret_value() == "abcd"


def test_production_refuses_the_development_seller() -> None:
    with pytest.raises(ValidationError, match="DUNWELL_SELLER_NAME"):
        Settings(env=Environment.PRODUCTION, **{**REAL, "seller_name": PLACEHOLDER_SELLER_NAME})


def test_production_refuses_plain_http_gateway() -> None:
    with pytest.raises(ValidationError, match="STRIPE_API_BASE"):
        Settings(env=Environment.PRODUCTION, **{**REAL, "stripe_api_base": "http://127.0.0.1:8420"})


def test_production_refuses_the_settlement_simulator() -> None:
    with pytest.raises(ValidationError, match="SETTLEMENT_API_BASE"):
        Settings(
            env=Environment.PRODUCTION, **{**REAL, "settlement_api_base": "http://127.0.0.1:8421"}
        )


def test_settlement_is_read_from_the_simulator_in_dev_and_from_stripe_when_off() -> None:
    assert Settings(env=Environment.DEV).settlement_base == "http://127.0.0.1:8421"
    off = Settings(env=Environment.PRODUCTION, **REAL)
    assert off.settlement_api_base is None and off.settlement_base is None


def test_production_accepts_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUNWELL_STRIPE_API_BASE", "")
    monkeypatch.setenv("DUNWELL_SETTLEMENT_API_BASE", "")
    s = Settings(
        env=Environment.PRODUCTION,
        **{k: v for k, v in REAL.items() if k not in ("stripe_api_base", "settlement_api_base")},
    )
    assert s.stripe_api_base is None


def test_production_refuses_a_plaintext_temporal_connection() -> None:
    plain = {**REAL, "temporal_tls": False}
    with pytest.raises(ValidationError, match="Temporal connection is plaintext"):
        Settings(env=Environment.PRODUCTION, **plain)
    allowed = Settings(env=Environment.PRODUCTION, **plain, temporal_allow_plaintext=True)
    assert not allowed.temporal_uses_tls
    with_key = Settings(env=Environment.PRODUCTION, **plain, temporal_api_key="k" * 40)
    assert with_key.temporal_uses_tls


def test_secrets_do_not_show_in_the_settings_text() -> None:
    s = Settings(env=Environment.PRODUCTION, **REAL, temporal_api_key="temporal-" + "t" * 32)
    shown = f"{s!r} {s} {s.model_dump()}"
    for secret in (
        REAL["stripe_api_key"],
        REAL["stripe_webhook_secret"],
        REAL["api_key"],
        REAL["ops_api_key"],
        REAL["portal_session_secret"],
        REAL["relay_secret"],
        "temporal-" + "t" * 32,
    ):
        assert isinstance(secret, str) and secret not in shown


def test_production_refuses_to_run_without_payload_encryption() -> None:
    with pytest.raises(ValidationError, match="DUNWELL_PAYLOAD_KEYS is not set"):
        Settings(env=Environment.PRODUCTION, **{**REAL, "payload_keys": None})
    keys = Settings(env=Environment.PRODUCTION, **REAL).payload_key_set()
    assert keys is not None and keys.active == "k1"


# --- API keys by role (dunwell.api_keys) ---------------------------------------------


def test_production_refuses_the_placeholder_ops_key() -> None:
    with pytest.raises(ValidationError, match="DUNWELL_OPS_API_KEY still hold"):
        Settings(env=Environment.PRODUCTION, **{**REAL, "ops_api_key": PLACEHOLDER_OPS_API_KEY})


def test_single_keys_have_the_role_ids() -> None:
    ring = Settings(env=Environment.PRODUCTION, **REAL).key_ring()
    assert ring.identify(REAL["api_key"]) == Principal("server", Role.SERVER)
    assert ring.identify(REAL["ops_api_key"]) == Principal("ops", Role.OPS)
    assert ring.identify("k" * 31) is None
    assert ring.identify("") is None


def test_key_lists_replace_the_single_keys_for_rotation() -> None:
    old, new = "a" * 32, "b" * 32
    both = Settings(
        env=Environment.PRODUCTION,
        **{**REAL, "api_key": PLACEHOLDER_API_KEY},  # unused, so not refused
        api_keys=f"2026-11:{old}, 2026-12:{new}",
        ops_api_keys=f"ana:{'c' * 32}",
    ).key_ring()
    assert both.identify(old) == Principal("2026-11", Role.SERVER)
    assert both.identify(new) == Principal("2026-12", Role.SERVER)
    assert both.identify("c" * 32) == Principal("ana", Role.OPS)
    assert both.identify(REAL["api_key"]) is None
    assert both.identify(REAL["ops_api_key"]) is None
    rotated = Settings(
        env=Environment.PRODUCTION,
        **REAL,
        api_keys=f"2026-12:{new}",
        ops_api_keys=f"ana:{'c' * 32}",
    ).key_ring()
    assert rotated.identify(old) is None
    assert rotated.identify(new) == Principal("2026-12", Role.SERVER)


def test_key_lists_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUNWELL_API_KEYS", "one:" + "1" * 32 + ",two:" + "2" * 32)
    monkeypatch.setenv("DUNWELL_OPS_API_KEYS", "")  # empty is unset
    ring = Settings(env=Environment.DEV).key_ring()
    assert [e.key_id for e in ring.entries] == ["one", "two", "ops"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"api_keys": "no-secret"}, "DUNWELL_API_KEYS entries are id:secret"),
        ({"api_keys": "bad id:" + "x" * 32}, "DUNWELL_API_KEYS entries are id:secret"),
        ({"ops_api_keys": "a:" + "x" * 32 + ",a:" + "y" * 32}, "key id 'a' appears twice"),
        ({"api_keys": ", ,"}, "DUNWELL_API_KEYS holds no key"),
        ({"api_keys": "ops:" + "x" * 32}, "name both a server and an ops key"),
        ({"ops_api_key": "same-secret", "api_key": "same-secret"}, "configured twice"),
    ],
)
def test_key_lists_that_do_not_parse_or_clash_are_refused_in_every_env(
    overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(env=Environment.DEV, **overrides)


def test_production_checks_every_listed_key() -> None:
    with pytest.raises(
        ValidationError, match=r"DUNWELL_API_KEYS \(key short\) must be at least 32"
    ):
        Settings(env=Environment.PRODUCTION, **REAL, api_keys=f"long:{'l' * 32},short:abc")
    with pytest.raises(ValidationError, match=r"DUNWELL_OPS_API_KEYS \(key dev\) still hold"):
        Settings(env=Environment.PRODUCTION, **REAL, ops_api_keys=f"dev:{PLACEHOLDER_OPS_API_KEY}")


def test_listed_secrets_do_not_show_in_the_settings_text() -> None:
    secret = "listed-" + "z" * 32
    s = Settings(env=Environment.PRODUCTION, **REAL, api_keys=f"k1:{secret}")
    assert secret not in f"{s!r} {s} {s.model_dump()} {s.key_ring()!r}"
