"""API keys: `fk_<id>_<secret>`. Only an HMAC-SHA256 of the secret (keyed by
FOURNIL_SECRET_KEY, `Settings.secret_key`, which the caller passes) is stored; the id is public
and names the key in logs."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import SecretStr
from sqlalchemy import Engine, insert, select, update

from fournil.api.errors import describe
from fournil.db.schema import api_keys

log = logging.getLogger("fournil.api")

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


class KeysUnavailable(Exception):
    """The key table never loaded, or is older than its stale limit (the warehouse is down)."""


@dataclass(frozen=True)
class _Stored:
    key_hash: str
    info: KeyInfo


def _active_keys(engine: Engine) -> dict[str, _Stored]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                api_keys.c.key_id, api_keys.c.name, api_keys.c.key_hash, api_keys.c.scopes
            ).where(api_keys.c.revoked_at.is_(None))
        ).all()
    return {
        str(r.key_id): _Stored(
            str(r.key_hash),
            KeyInfo(key_id=str(r.key_id), name=str(r.name), scopes=frozenset(r.scopes)),
        )
        for r in rows
    }


class KeyTable:
    """Every active key (id, HMAC of the secret, scopes), held in memory and reloaded from the
    warehouse every `refresh_seconds` (sooner, at most once a second, after an unknown id:
    a key just created works within a second of its first use). Verifying a key is then pure
    computation, the same for an unknown id as for a wrong secret (one HMAC, one constant-time
    comparison): no warehouse read per request, nothing to time.

    While the warehouse is down the last table keeps answering (revoked keys stay revoked,
    a revocation made during the outage takes effect at the first reload after it), for at
    most `stale_seconds`; past that, or before the first load, `verify` raises KeysUnavailable.
    """

    def __init__(
        self,
        engine: Engine,
        secret_key: SecretStr,
        refresh_seconds: float,
        stale_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine, self.secret_key = engine, secret_key
        self.refresh_seconds, self.stale_seconds = refresh_seconds, stale_seconds
        self.clock = clock
        self.keys: dict[str, _Stored] = {}
        self.loaded_at: float | None = None
        self.error: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._dummy = _digest(secrets.token_urlsafe(24), secret_key)

    @property
    def loaded(self) -> bool:
        return self.loaded_at is not None

    def load(self) -> bool:
        """Reload the table. Never raises: on a warehouse error the last table stays."""
        try:
            keys = _active_keys(self.engine)
        except Exception as exc:
            error = type(exc).__name__
            if error != self.error:
                log.warning("API keys not reloaded, keeping the last table: %s", describe(exc))
            self.error = error
            return False
        if self.error is not None:
            log.info("API keys reloaded (%d active)", len(keys))
        self.keys, self.loaded_at, self.error = keys, self.clock(), None  # one reference swap
        return True

    def verify(self, presented: str) -> KeyInfo | None:
        """The key's identity, or None (malformed, unknown, wrong secret or revoked)."""
        if self.loaded_at is None or self.clock() - self.loaded_at > self.stale_seconds:
            raise KeysUnavailable()
        parsed = _parse(presented)
        key_id, secret = parsed if parsed is not None else ("", presented)
        stored = self.keys.get(key_id)
        match = hmac.compare_digest(
            stored.key_hash if stored is not None else self._dummy,
            _digest(secret, self.secret_key),
        )
        if stored is None or not match:
            # maybe a key created (or a secret rotated) since the last load: reload soon; the
            # same for an unknown id as for a wrong secret, and never waited for
            self._wake.set()
            return None
        return stored.info

    def start_polling(self) -> threading.Thread:
        def loop() -> None:
            while not self._stop.is_set():
                interval = self.refresh_seconds if self.loaded and self.error is None else 1.0
                self._wake.wait(interval)
                if self._stop.is_set():
                    return
                woken = self._wake.is_set()
                self._wake.clear()
                self.load()
                if woken:  # at most one extra load per second, whatever the flood of bogus ids
                    self._stop.wait(1.0)

        thread = threading.Thread(target=loop, name="key-table", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
