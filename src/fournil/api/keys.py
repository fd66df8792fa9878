"""API keys: `fk_<id>_<secret>`. Only an HMAC-SHA256 of the secret (keyed by
FOURNIL_SECRET_KEY, `Settings.secret_key`, which the caller passes) is stored; the id is public
and names the key in logs."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass

from cachetools import TTLCache
from pydantic import SecretStr
from sqlalchemy import Engine, insert, select, update

from fournil.db.schema import api_keys

SCOPES = ("forecasts:read", "predict", "admin")


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    name: str
    scopes: frozenset[str]


def _digest(secret: str, secret_key: SecretStr) -> str:
    pepper = secret_key.get_secret_value().encode()
    return hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()


def create_key(engine: Engine, name: str, scopes: list[str], secret_key: SecretStr) -> str:
    """Create a key and return it in full (shown once; only its hash, keyed by `secret_key`,
    the settings' FOURNIL_SECRET_KEY, is kept)."""
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"scopes must be among {', '.join(SCOPES)}, got {scopes}")
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(24)
    digest = _digest(secret, secret_key)
    with engine.begin() as conn:
        conn.execute(
            insert(api_keys).values(
                key_id=key_id, name=name, key_hash=digest, scopes=sorted(set(scopes))
            )
        )
    return f"fk_{key_id}_{secret}"


def revoke_key(engine: Engine, key_id: str) -> bool:
    with engine.begin() as conn:
        done = conn.execute(
            update(api_keys)
            .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=dt.datetime.now(dt.UTC))
        ).rowcount
    return bool(done)


def list_keys(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                api_keys.c.key_id,
                api_keys.c.name,
                api_keys.c.scopes,
                api_keys.c.created_at,
                api_keys.c.revoked_at,
            ).order_by(api_keys.c.created_at)
        ).mappings()
        return [dict(r) for r in rows]


def _parse(presented: str) -> tuple[str, str] | None:
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != "fk" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def _active(engine: Engine, key_id: str) -> tuple[str, KeyInfo] | None:
    """(stored hash, identity) of an unrevoked key."""
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(api_keys).where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
            )
            .mappings()
            .first()
        )
    if row is None:
        return None
    info = KeyInfo(key_id=key_id, name=str(row["name"]), scopes=frozenset(row["scopes"]))
    return str(row["key_hash"]), info


def _check(
    stored: tuple[str, KeyInfo] | None, secret: str, secret_key: SecretStr
) -> KeyInfo | None:
    if stored is None or not hmac.compare_digest(stored[0], _digest(secret, secret_key)):
        return None
    return stored[1]


class KeyCache:
    """Key verification, with the warehouse lookup cached per key id for `ttl` seconds (also when
    the id is unknown, so a flood of bogus keys costs one query per id and TTL). A revocation
    takes effect within `ttl`. The secret is checked against the stored hash (keyed by
    `secret_key`) on every call."""

    def __init__(
        self, engine: Engine, secret_key: SecretStr, ttl: float, maxsize: int = 100_000
    ) -> None:
        self.engine, self.secret_key = engine, secret_key
        self.cache: TTLCache[str, tuple[str, KeyInfo] | None] | None = (
            TTLCache(maxsize=maxsize, ttl=ttl) if ttl > 0 else None
        )
        self.lock = threading.Lock()

    def cached(self, presented: str) -> tuple[bool, KeyInfo | None]:
        """(found in cache, identity): no I/O, safe on the event loop."""
        parsed = _parse(presented)
        if parsed is None:
            return True, None
        if self.cache is None:
            return False, None
        with self.lock:
            try:
                stored = self.cache[parsed[0]]
            except KeyError:
                return False, None
        return True, _check(stored, parsed[1], self.secret_key)

    def verify(self, presented: str) -> KeyInfo | None:
        """Reads the warehouse (blocking) for a key id not in the cache."""
        hit, info = self.cached(presented)
        if hit:
            return info
        parsed = _parse(presented)
        assert parsed is not None
        stored = _active(self.engine, parsed[0])
        if self.cache is not None:
            with self.lock:
                self.cache[parsed[0]] = stored
        return _check(stored, parsed[1], self.secret_key)
