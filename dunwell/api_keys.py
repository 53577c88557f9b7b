"""API keys by role: the server API's (the SaaS backend) and ops's, several valid at once.

Each key has an id; the id, never the secret, names the actor in the audit log and
in the rate limiter. ``DUNWELL_API_KEYS`` / ``DUNWELL_OPS_API_KEYS`` hold ``id:secret``
entries separated by commas, so a new key can be added beside the old one, clients
moved over, and the old one removed (rotation without downtime). When a list is unset,
the single ``DUNWELL_API_KEY`` (id ``server``) or ``DUNWELL_OPS_API_KEY`` (id ``ops``)
is the role's one key.

What a role may do is decided in ``api.deps``: a server key never reaches an ops route;
an ops key may read (GET) the server routes but not write through them.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field
from enum import StrEnum

KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class Role(StrEnum):
    SERVER = "server"
    OPS = "ops"


class ApiKeyError(ValueError):
    """A key list that does not parse, or keys that clash."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is: the key's id and its role."""

    key_id: str
    role: Role


@dataclass(frozen=True, slots=True)
class ApiKeyEntry:
    key_id: str
    role: Role
    secret: str = field(repr=False)


def parse_key_list(text: str, *, variable: str) -> list[tuple[str, str]]:
    """``id:secret,id:secret`` as (id, secret) pairs, in order."""
    entries = [entry.strip() for entry in text.split(",") if entry.strip()]
    if not entries:
        raise ApiKeyError(f"{variable} holds no key")
    pairs: list[tuple[str, str]] = []
    for entry in entries:
        key_id, sep, secret = entry.partition(":")
        if not sep or not KEY_ID.match(key_id) or not secret.strip():
            raise ApiKeyError(
                f"{variable} entries are id:secret with an id of letters, digits, '.', '_' "
                "or '-' (at most 64) and a non-empty secret"
            )
        if any(key_id == seen for seen, _ in pairs):
            raise ApiKeyError(f"{variable}: key id {key_id!r} appears twice")
        pairs.append((key_id, secret.strip()))
    return pairs


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Every valid key of both roles."""

    entries: tuple[ApiKeyEntry, ...]

    @classmethod
    def of(cls, server: list[tuple[str, str]], ops: list[tuple[str, str]]) -> KeyRing:
        entries = tuple(
            [ApiKeyEntry(i, Role.SERVER, s) for i, s in server]
            + [ApiKeyEntry(i, Role.OPS, s) for i, s in ops]
        )
        ids = [e.key_id for e in entries]
        clashing = sorted({i for i in ids if ids.count(i) > 1})
        if clashing:
            raise ApiKeyError(
                f"key id(s) {', '.join(clashing)} name both a server and an ops key; "
                "an id names one key"
            )
        secrets = [e.secret for e in entries]
        if len(set(secrets)) != len(secrets):
            raise ApiKeyError("the same secret is configured twice; every API key is its own")
        return cls(entries)

    def identify(self, token: str) -> Principal | None:
        """The key ``token`` is, compared in constant time against every key."""
        found: Principal | None = None
        presented = token.encode()
        for entry in self.entries:
            if hmac.compare_digest(presented, entry.secret.encode()):
                found = Principal(entry.key_id, entry.role)
        return found

    def of_role(self, role: Role) -> list[ApiKeyEntry]:
        return [e for e in self.entries if e.role is role]
