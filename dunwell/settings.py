"""Dunwell settings, read from the environment (prefix ``DUNWELL_``).

The defaults are the ones ``make dev`` needs on a fresh machine: a SQLite file under
``.dunwell/``, a local Temporal dev server, and localstripe standing in for Stripe.
Outside dev and test mode the placeholder secrets below are refused, and every secret
must be at least 32 bytes, so a production deployment cannot start with a key that is
printed in this file or short enough to guess.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from limits import parse
from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dunwell.api_keys import ApiKeyEntry, ApiKeyError, KeyRing, Role, parse_key_list
from dunwell.codec import DEV_KEY_FILE, PayloadKeyError, PayloadKeys

PLACEHOLDER_STRIPE_KEY = "sk_test_dunwell_placeholder"
PLACEHOLDER_WEBHOOK_SECRET = "whsec_dunwell_placeholder"
PLACEHOLDER_API_KEY = "dw_dev_api_key"
PLACEHOLDER_OPS_API_KEY = "dw_dev_ops_key"
# The ids of the single keys (DUNWELL_API_KEY, DUNWELL_OPS_API_KEY) when no list is set.
SERVER_KEY_ID = "server"
OPS_KEY_ID = "ops"
PLACEHOLDER_SESSION_SECRET = "dunwell-dev-session-secret"
PLACEHOLDER_RELAY_SECRET = "dunwell-dev-relay-secret"
# The seller printed on invoices in dev; a production invoice must name the real one.
PLACEHOLDER_SELLER_NAME = "Dunwell Demo Ltd (development seller)"

_PLACEHOLDERS = {
    "stripe_api_key": PLACEHOLDER_STRIPE_KEY,
    "stripe_webhook_secret": PLACEHOLDER_WEBHOOK_SECRET,
    "api_key": PLACEHOLDER_API_KEY,
    "ops_api_key": PLACEHOLDER_OPS_API_KEY,
    "portal_session_secret": PLACEHOLDER_SESSION_SECRET,
    "relay_secret": PLACEHOLDER_RELAY_SECRET,
    "seller_name": PLACEHOLDER_SELLER_NAME,
}


# Secrets that guard the API, the portal and the intakes, and the gateway's own: outside
# dev and test each must be at least this long, so a guessable one cannot start.
MIN_SECRET_BYTES = 32
# (The API keys are checked key by key, whichever variable holds them.)
_SECRETS = (
    "stripe_api_key",
    "stripe_webhook_secret",
    "portal_session_secret",
    "relay_secret",
)


class Environment(StrEnum):
    DEV = "dev"
    TEST = "test"
    PRODUCTION = "production"


class PlaceholderSecretError(ValueError):
    """A placeholder secret was configured outside dev or test mode."""


class UnsafeSettingError(ValueError):
    """A setting is incomplete or unsafe (a half-configured TLS, plaintext in production)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DUNWELL_", extra="ignore")

    env: Environment = Environment.DEV
    state_dir: Path = Path(".dunwell")
    database_url: str = "sqlite+pysqlite:///.dunwell/dunwell.db"

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_port: int = Field(default=8233, ge=1, le=65535)
    # TLS to the Temporal frontend. Temporal Cloud takes either mTLS (client certificate
    # and key) or an API key, both over TLS; a self-hosted cluster may add its own CA.
    # Outside dev and test a plaintext connection is refused unless explicitly allowed
    # (a cluster reached through a private network or a TLS-terminating sidecar).
    temporal_tls: bool = False
    temporal_tls_server_ca_cert: Path | None = None
    temporal_tls_client_cert: Path | None = None
    temporal_tls_client_key: Path | None = None
    temporal_tls_server_name: str | None = None
    temporal_api_key: SecretStr | None = None
    temporal_allow_plaintext: bool = False
    # Workflow payloads encrypted with AES-256-GCM (dunwell.codec): ``id:base64key``
    # entries, the first sealing. Required in production; dev makes one under state_dir.
    payload_keys: SecretStr | None = None
    # Browser origins allowed to call the codec endpoint (the Temporal UI's address);
    # dev adds its own UI.
    codec_cors_origins: list[str] = Field(default_factory=list)
    task_queue: str = "dunwell"
    # Workflows kept in the worker's memory between tasks (Temporal's default is 1000);
    # above it, a workflow's next task replays its history first.
    worker_max_cached_workflows: int = Field(default=1000, ge=0)

    stripe_api_key: SecretStr = SecretStr(PLACEHOLDER_STRIPE_KEY)
    # None means Stripe's own API; dev points this at localstripe.
    stripe_api_base: str | None = "http://127.0.0.1:8420"
    stripe_webhook_secret: SecretStr = SecretStr(PLACEHOLDER_WEBHOOK_SECRET)
    # Gateway requests per second, all processes on the database together (Stripe
    # allows about 100 in live mode, 25 in test mode); 0 turns the limit off.
    gateway_requests_per_second: int = Field(default=90, ge=0)
    # Publishable keys are public by design (they go to the browser); localstripe
    # accepts any pk_test_ key.
    stripe_publishable_key: str = "pk_test_dunwell_localstripe"
    # Where settlement (balance transactions, payouts, the balance) is read: the
    # settlement simulator beside localstripe in dev; empty (None) means the gateway
    # itself, which for real Stripe is Stripe's own API.
    settlement_api_base: str | None = "http://127.0.0.1:8421"
    # What a dispute does to the subscription whose payment it disputes
    # (billing/disputes.py): "flag" keeps it active and counts the dispute against it in
    # SCA decisions; "cancel_at_period_end" also cancels it at its period end.
    dispute_policy: Literal["flag", "cancel_at_period_end"] = "flag"

    # "builtin" (offline jurisdictional engine) or "stripe" (Stripe Tax).
    tax_engine: Literal["builtin", "stripe"] = "builtin"
    # The EU member state the seller is established in (decides EU reverse charge).
    seller_country: str | None = Field(default="IE", min_length=2, max_length=2)
    # Issuer of invoice numbers (one gapless series per issuer).
    invoice_issuer: str = "dunwell"
    # The seller as invoices and credit notes name it (EU invoices must show the
    # seller's name, address and VAT id); the address's parts are comma-separated.
    seller_name: str = PLACEHOLDER_SELLER_NAME
    seller_address: str = "1 Example Street, Dublin 2, D02 X000, Ireland"
    seller_vat_id: str | None = "IE1234567T"

    # API keys by role (dunwell.api_keys): the server API's (the SaaS backend) and ops's.
    # The lists hold ``id:secret`` entries, several valid at once for rotation; a list,
    # when set, replaces the role's single key (then unused and unchecked).
    api_key: SecretStr = SecretStr(PLACEHOLDER_API_KEY)
    api_keys: SecretStr | None = None
    ops_api_key: SecretStr = SecretStr(PLACEHOLDER_OPS_API_KEY)
    ops_api_keys: SecretStr | None = None
    portal_session_secret: SecretStr = SecretStr(PLACEHOLDER_SESSION_SECRET)
    relay_secret: SecretStr = SecretStr(PLACEHOLDER_RELAY_SECRET)

    # Request rate limits (api/rate_limit.py), in the ``limits`` notation ("N/second",
    # "N/minute"); counted per API process.
    rate_limits_enabled: bool = True
    rate_limit_server: str = "200/second"
    rate_limit_portal: str = "120/minute"
    rate_limit_portal_gateway: str = "10/minute"
    rate_limit_intake: str = "200/second"
    rate_limit_anonymous: str = "300/minute"

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    public_base_url: str = "http://127.0.0.1:8000"

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=8025, ge=1, le=65535)
    # The demo receiver ``dunwell dev`` starts on 127.0.0.1 (outbound events).
    demo_receiver_port: int = Field(default=8426, ge=1, le=65535)
    mail_from: str = "billing@dunwell.localhost"

    @field_validator("stripe_api_base", "settlement_api_base", mode="before")
    @classmethod
    def _empty_base_means_stripe(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator(
        "temporal_tls_server_ca_cert",
        "temporal_tls_client_cert",
        "temporal_tls_client_key",
        "temporal_tls_server_name",
        "temporal_api_key",
        "payload_keys",
        "api_keys",
        "ops_api_keys",
        mode="before",
    )
    @classmethod
    def _empty_means_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator(
        "rate_limit_server",
        "rate_limit_portal",
        "rate_limit_portal_gateway",
        "rate_limit_intake",
        "rate_limit_anonymous",
    )
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a rate limit; write it as N/second, N/minute or N/hour"
            ) from None
        return value

    def payload_key_set(self) -> PayloadKeys | None:
        """The keys that seal and open workflow payloads, or None for none."""
        if self.payload_keys is not None:
            return PayloadKeys.parse(self.payload_keys.get_secret_value())
        dev_file = self.state_dir / DEV_KEY_FILE
        if self.env is Environment.DEV and dev_file.is_file():
            return PayloadKeys.parse(dev_file.read_text())
        return None

    @model_validator(mode="after")
    def _payload_keys_parse(self) -> Settings:
        if self.payload_keys is not None:
            try:
                PayloadKeys.parse(self.payload_keys.get_secret_value())
            except PayloadKeyError as err:
                raise UnsafeSettingError(str(err)) from None
        return self

    _key_ring: KeyRing | None = PrivateAttr(default=None)

    def _key_pairs(self, role: Role) -> list[tuple[str, str]]:
        listed, single, single_id, variable = (
            (self.api_keys, self.api_key, SERVER_KEY_ID, "DUNWELL_API_KEYS")
            if role is Role.SERVER
            else (self.ops_api_keys, self.ops_api_key, OPS_KEY_ID, "DUNWELL_OPS_API_KEYS")
        )
        if listed is not None:
            return parse_key_list(listed.get_secret_value(), variable=variable)
        return [(single_id, single.get_secret_value())]

    @model_validator(mode="after")
    def _api_keys_parse(self) -> Settings:
        try:
            self._key_ring = KeyRing.of(self._key_pairs(Role.SERVER), self._key_pairs(Role.OPS))
        except ApiKeyError as err:
            raise UnsafeSettingError(str(err)) from None
        return self

    def key_ring(self) -> KeyRing:
        """Every valid API key of both roles, by id."""
        if self._key_ring is None:  # settings built with model_construct
            self._key_ring = KeyRing.of(self._key_pairs(Role.SERVER), self._key_pairs(Role.OPS))
        return self._key_ring

    @property
    def temporal_uses_tls(self) -> bool:
        """TLS is on when asked for, or implied by a client certificate or an API key."""
        return (
            self.temporal_tls
            or self.temporal_tls_client_cert is not None
            or self.temporal_api_key is not None
        )

    @model_validator(mode="after")
    def _temporal_tls_is_whole(self) -> Settings:
        if (self.temporal_tls_client_cert is None) != (self.temporal_tls_client_key is None):
            raise UnsafeSettingError(
                "DUNWELL_TEMPORAL_TLS_CLIENT_CERT and DUNWELL_TEMPORAL_TLS_CLIENT_KEY go "
                "together (mTLS needs both the certificate and its key)"
            )
        for name in (
            "temporal_tls_server_ca_cert",
            "temporal_tls_client_cert",
            "temporal_tls_client_key",
        ):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise UnsafeSettingError(f"DUNWELL_{name.upper()}: no such file: {path}")
        return self

    @model_validator(mode="after")
    def _refuse_placeholders_outside_dev(self) -> Settings:
        if self.env in (Environment.DEV, Environment.TEST):
            return self
        # A role's single key is not used (nor checked) when its list is set.
        unused = {
            name
            for name, listed in (("api_key", self.api_keys), ("ops_api_key", self.ops_api_keys))
            if listed is not None
        }
        offending = [
            f"DUNWELL_{name.upper()}"
            for name, placeholder in _PLACEHOLDERS.items()
            if name not in unused and _plain(getattr(self, name)) == placeholder
        ]
        placeholders = {PLACEHOLDER_API_KEY, PLACEHOLDER_OPS_API_KEY}
        offending += [
            _key_label(self, entry)
            for entry in self.key_ring().entries
            if _key_variable(self, entry.role).endswith("_KEYS") and entry.secret in placeholders
        ]
        if offending:
            raise PlaceholderSecretError(
                f"{', '.join(offending)} still hold the development placeholder; "
                f"set real values or run with DUNWELL_ENV=dev"
            )
        short = [
            f"DUNWELL_{name.upper()}"
            for name in _SECRETS
            if len(_plain(getattr(self, name)).encode()) < MIN_SECRET_BYTES
        ] + [
            _key_label(self, entry)
            for entry in self.key_ring().entries
            if len(entry.secret.encode()) < MIN_SECRET_BYTES
        ]
        if short:
            raise PlaceholderSecretError(
                f"{', '.join(short)} must be at least {MIN_SECRET_BYTES} bytes outside dev "
                "mode; generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        if self.payload_keys is None:
            raise UnsafeSettingError(
                "DUNWELL_PAYLOAD_KEYS is not set: outside dev mode workflow payloads are "
                "encrypted; generate a key with: dunwell payload-key"
            )
        if not self.temporal_uses_tls and not self.temporal_allow_plaintext:
            raise UnsafeSettingError(
                "the Temporal connection is plaintext outside dev mode; set "
                "DUNWELL_TEMPORAL_TLS=true (with DUNWELL_TEMPORAL_API_KEY or a client "
                "certificate for Temporal Cloud), or DUNWELL_TEMPORAL_ALLOW_PLAINTEXT=true "
                "if the network path is protected another way"
            )
        if self.stripe_api_base is not None and not self.stripe_api_base.startswith("https://"):
            raise PlaceholderSecretError(
                "DUNWELL_STRIPE_API_BASE points at a non-HTTPS gateway "
                f"({self.stripe_api_base}) outside dev mode; unset it to use Stripe"
            )
        if self.settlement_api_base is not None and not self.settlement_api_base.startswith(
            "https://"
        ):
            raise PlaceholderSecretError(
                "DUNWELL_SETTLEMENT_API_BASE points at the settlement simulator or another "
                f"non-HTTPS address ({self.settlement_api_base}) outside dev mode; set it empty "
                "to read settlement from Stripe"
            )
        return self

    @property
    def settlement_base(self) -> str | None:
        """The API base settlement is read from (None: Stripe's own)."""
        return self.settlement_api_base or self.stripe_api_base


def _key_variable(settings: Settings, role: Role) -> str:
    """The variable a role's keys come from."""
    if role is Role.SERVER:
        return "DUNWELL_API_KEYS" if settings.api_keys is not None else "DUNWELL_API_KEY"
    return "DUNWELL_OPS_API_KEYS" if settings.ops_api_keys is not None else "DUNWELL_OPS_API_KEY"


def _key_label(settings: Settings, entry: ApiKeyEntry) -> str:
    variable = _key_variable(settings, entry.role)
    return f"{variable} (key {entry.key_id})" if variable.endswith("_KEYS") else variable


def _plain(value: str | SecretStr) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
