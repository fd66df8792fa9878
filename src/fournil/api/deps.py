"""The routes' dependencies, as `Annotated` aliases. Each reads the app's state (`app.state`,
built by the lifespan in `fournil.api.app`), so a test can replace any of them through
`app.dependency_overrides`: the settings, the warehouse engine, the models, the serving tables,
the predict batcher; and the caller's API key (`APIKeyHeader`, which also gives the OpenAPI
document its security scheme), checked for a scope and against the key's rate limit.

(No `from __future__ import annotations`: FastAPI evaluates these annotations.)
"""

import threading
import time
from typing import Annotated

from cachetools import TTLCache
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader
from sqlalchemy import Engine

from fournil.api.batching import Batcher
from fournil.api.errors import ApiError
from fournil.api.inputs import InputError
from fournil.api.keys import KeyInfo, KeysUnavailable, KeyTable
from fournil.api.predicting import Answer, Job
from fournil.api.serving import ModelHolder
from fournil.api.tables import ServingTables, Snapshot
from fournil.settings import Settings

API_KEY_HEADER = "X-API-Key"


class RateLimiter:
    """Token bucket per key, or per client address (per worker process). Buckets idle for an
    hour are forgotten, and at most `max_buckets` are kept (a flood of addresses costs memory
    bounded by it)."""

    def __init__(self, per_minute: int, max_buckets: int = 100_000) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.buckets: TTLCache[str, tuple[float, float]] = TTLCache(max_buckets, ttl=3600)
        self.lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, at = self.buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - at) * self.rate)

    def take(self, key: str) -> float:
        """0 if allowed (a token is taken), else seconds to wait."""
        now = time.monotonic()
        with self.lock:
            tokens = self._level(key, now)
            if tokens >= 1:
                self.buckets[key] = (tokens - 1, now)
                return 0.0
            self.buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate

    def wait(self, key: str) -> float:
        """Seconds until `key` has a token again (0: it has one), without taking it."""
        with self.lock:
            tokens = self._level(key, time.monotonic())
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate


# --- the app's state (async: no thread-pool hop per dependency) --------------------------------
async def app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def app_engine(request: Request) -> Engine:
    return request.app.state.engine


async def model_holder(request: Request) -> ModelHolder:
    return request.app.state.holder


async def serving_tables(request: Request) -> ServingTables:
    return request.app.state.tables


async def batcher(request: Request) -> Batcher[Job, Answer | InputError]:
    return request.app.state.batcher


async def key_table(request: Request) -> KeyTable:
    return request.app.state.keys


async def rate_limiter(request: Request) -> RateLimiter:
    return request.app.state.limiter


async def auth_throttle(request: Request) -> RateLimiter:
    return request.app.state.auth_throttle


SettingsDep = Annotated[Settings, Depends(app_settings)]
EngineDep = Annotated[Engine, Depends(app_engine)]
HolderDep = Annotated[ModelHolder, Depends(model_holder)]
TablesDep = Annotated[ServingTables, Depends(serving_tables)]
BatcherDep = Annotated[Batcher[Job, Answer | InputError], Depends(batcher)]
KeyTableDep = Annotated[KeyTable, Depends(key_table)]
LimiterDep = Annotated[RateLimiter, Depends(rate_limiter)]
ThrottleDep = Annotated[RateLimiter, Depends(auth_throttle)]


def loaded_snapshot(tables: ServingTables) -> Snapshot:
    """The serving tables' current snapshot; a structured 503 if they never loaded."""
    snapshot = tables.snapshot
    if not snapshot.fingerprint:  # never loaded: the warehouse was down since start-up
        raise ApiError(
            503,
            "warehouse_unavailable",
            "the serving tables are not loaded yet, retry later",
            headers={"Retry-After": "5"},
        )
    return snapshot


# --- the API key ---------------------------------------------------------------------------------
api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name="ApiKey",
    description="API key: fk_<id>_<secret>",
    auto_error=False,  # a missing key gets the structured 401 of `current_key`
)
KeyDep = Annotated[str | None, Depends(api_key_header)]


def _unauthenticated(message: str) -> ApiError:
    return ApiError(401, "unauthenticated", message, headers={"WWW-Authenticate": "ApiKey"})


def _throttled(wait: float) -> ApiError:
    return ApiError(
        429,
        "too_many_failures",
        "too many failed authentications from this address, retry later",
        headers={"Retry-After": str(max(1, round(wait)))},
    )


async def current_key(
    request: Request, presented: KeyDep, keys: KeyTableDep, throttle: ThrottleDep
) -> KeyInfo:
    """The caller's key: present, known and not revoked, else 401; 429 for an address whose
    failed attempts used up its allowance (`FOURNIL_API_AUTH_FAILURES_PER_MINUTE`), whatever
    key it presents then. In memory only (`KeyTable`): no warehouse read, no timing to tell an
    unknown id from a wrong secret, and it keeps answering through a warehouse outage."""
    address = request.client.host if request.client else "unknown"
    wait = throttle.wait(address)
    if wait:
        raise _throttled(wait)
    if not presented:
        key = None
    else:
        try:
            key = keys.verify(presented)
        except KeysUnavailable:
            raise ApiError(
                503,
                "warehouse_unavailable",
                "API keys cannot be checked yet, retry later",
                headers={"Retry-After": "5"},
            ) from None
    if key is None:
        throttle.take(address)
        if not presented:
            raise _unauthenticated(f"missing {API_KEY_HEADER} header")
        raise _unauthenticated("invalid or revoked API key")
    return key


CurrentKey = Annotated[KeyInfo, Depends(current_key)]


class Scoped:
    """Dependency: the caller's key holds `scope` (or admin), else 403, and is within its rate
    limit, else 429."""

    def __init__(self, scope: str) -> None:
        self.scope = scope

    async def __call__(self, key: CurrentKey, limiter: LimiterDep) -> KeyInfo:
        if self.scope not in key.scopes and "admin" not in key.scopes:
            raise ApiError(403, "forbidden", f"this key lacks the '{self.scope}' scope")
        wait = limiter.take(key.key_id)
        if wait:
            raise ApiError(
                429,
                "rate_limited",
                "too many requests for this key",
                headers={"Retry-After": str(max(1, round(wait)))},
            )
        return key


read_scope = Scoped("forecasts:read")
predict_scope = Scoped("predict")
ReadKey = Annotated[KeyInfo, Depends(read_scope)]
PredictKey = Annotated[KeyInfo, Depends(predict_scope)]
