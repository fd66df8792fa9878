"""API keys: `fk_<id>_<secret>`. Only an HMAC-SHA256 of the secret (keyed by
FOURNIL_SECRET_KEY) is stored; the id is public and names the key in logs."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Engine, insert, select, update

from fournil.db.schema import api_keys
from fournil.settings import get_settings

SCOPES = ("forecasts:read", "predict", "admin")


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    name: str
    scopes: frozenset[str]


def _digest(secret: str) -> str:
    pepper = get_settings().secret_key.get_secret_value().encode()
    return hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()


def create_key(engine: Engine, name: str, scopes: list[str]) -> str:
    """Create a key and return it in full (shown once; only its hash is kept)."""
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"scopes must be among {', '.join(SCOPES)}, got {scopes}")
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(24)
    with engine.begin() as conn:
        conn.execute(
            insert(api_keys).values(
                key_id=key_id, name=name, key_hash=_digest(secret), scopes=sorted(set(scopes))
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


def verify_key(engine: Engine, presented: str) -> KeyInfo | None:
    """The key's identity if `presented` is a valid, unrevoked key."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != "fk":
        return None
    _, key_id, secret = parts
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(api_keys).where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
            )
            .mappings()
            .first()
        )
    if row is None or not hmac.compare_digest(str(row["key_hash"]), _digest(secret)):
        return None
    return KeyInfo(key_id=key_id, name=str(row["name"]), scopes=frozenset(row["scopes"]))
