"""The FastAPI app: `create_app()`; `fournil api serve` runs it with uvicorn.

The app's state (settings, engine, models, serving tables, key table, rate limiter, failed-auth
throttle, prediction log, predict batcher) lives on `app.state`, built by `lifespan`; the routes
(`routers/`) reach it through the dependencies of `deps.py`. Errors are in `errors.py`, the
middleware in `middleware.py`, the request and response models in `schemas.py`.
"""

import datetime as dt
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from fournil.api import telemetry
from fournil.api.batching import Batcher
from fournil.api.deps import RateLimiter
from fournil.api.docs import add_docs
from fournil.api.errors import EXCEPTION_HANDLERS, ApiError
from fournil.api.inputs import Row, raw_inputs
from fournil.api.keys import KeyTable
from fournil.api.middleware import Edge
from fournil.api.predicting import Predictor
from fournil.api.prediction_log import PredictionLog
from fournil.api.routers import api_router
from fournil.api.serving import ModelHolder, Served
from fournil.api.tables import ServingTables, Snapshot
from fournil.db import make_engine
from fournil.settings import Settings, get_settings

__all__ = ["ApiError", "create_app"]


def _model_loaded(arm: str, served: Served) -> None:
    telemetry.MODEL_LOAD.labels(arm).set(served.loaded_seconds)
    with suppress(ValueError):
        telemetry.MODEL_VERSION.labels(arm).set(float(served.version))


def _tables_built(snapshot: Snapshot) -> None:
    telemetry.TABLE_BUILD.set(snapshot.built_seconds)
    telemetry.TABLE_ROWS.labels("history_series").set(len(snapshot.series_index))
    telemetry.TABLE_ROWS.labels("forecasts").set(len(snapshot.forecasts.columns.get("yhat", ())))


def _batch_done(requests: int, rows: int) -> None:
    telemetry.BATCH_ROWS.observe(rows)


log = logging.getLogger("fournil.api")


def _warm(holder: ModelHolder, engine: Engine, snapshot: Snapshot) -> None:
    """Warm the models on one series of the first tables loaded (see `ModelHolder.warm`)."""
    if holder.warmed:
        return
    if snapshot.last_day is None or not snapshot.series_index:
        holder.warmed = True  # no history: nothing can be predicted, nothing to warm
        return
    store_id, product_id = next(iter(snapshot.series_index))
    row = Row(store_id, product_id, snapshot.last_day + dt.timedelta(days=1), None, None, None)
    try:
        holder.warm(raw_inputs(engine, snapshot, [row]))
    except Exception:
        log.exception("warm-up failed: serving cold")
        holder.warmed = True


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Builds the state from `app.state.settings`, `.engine` and `.poll` (set by `create_app`);
    the champion and the serving tables are loaded before the first request is accepted."""
    state = app.state
    settings: Settings = state.settings
    engine: Engine = state.engine
    api = settings.api
    state.holder = holder = ModelHolder(settings)
    state.tables = tables = ServingTables(engine, settings)
    state.keys = keys = KeyTable(
        engine, settings.secret_key, api.key_cache_seconds, api.key_stale_seconds
    )
    state.limiter = RateLimiter(api.rate_per_minute)
    state.auth_throttle = RateLimiter(api.auth_failures_per_minute)
    holder.on_load.append(_model_loaded)
    tables.on_build.append(_tables_built)
    tables.on_build.append(lambda snapshot: _warm(holder, engine, snapshot))
    # none of these raises: with the warehouse (or the registry) down the API starts anyway,
    # /health answers and /ready says why it is not ready, until the pollers load them
    await run_in_threadpool(keys.load)
    await run_in_threadpool(holder.refresh)
    await run_in_threadpool(tables.refresh)
    telemetry.FALLBACK_IN_USE.set(1 if holder.champion is None else 0)
    telemetry.WORKER.set(1)
    if state.poll:
        keys.start_polling()
        holder.start_polling()
        tables.start_polling()
    state.prediction_log = PredictionLog(
        engine,
        settings.home_dir / "api",
        flush_seconds=api.log_flush_seconds,
        spill_bytes=int(api.log_spill_mb * 1e6),
    )
    state.batcher = Batcher(
        Predictor(engine, holder, state.prediction_log),
        size=lambda job: len(job.rows),
        max_items=api.max_rows,
        on_batch=_batch_done,
    )
    state.batcher.start()
    yield
    await state.batcher.stop()
    keys.stop()
    holder.stop()
    tables.stop()
    await run_in_threadpool(state.prediction_log.close)


def api_engine(settings: Settings) -> Engine:
    """The API's warehouse engine: pre-ping, and a connect timeout on servers (an unreachable
    host must cost a poll seconds, not minutes)."""
    url = settings.warehouse_url
    if make_url(url).get_backend_name() == "sqlite":
        return make_engine(url, pool_pre_ping=True)
    timeout = max(1, round(settings.api.warehouse_timeout_seconds))
    return make_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": timeout})


def create_app(
    settings: Settings | None = None, engine: Engine | None = None, poll: bool = True
) -> FastAPI:
    """The API with `settings` (default: the environment's) over `engine` (default: one on
    `settings.warehouse_url`); `poll=False` loads models and tables once, at start-up."""
    settings = settings or get_settings()
    app = FastAPI(
        title="Fournil API",
        version="1",
        description="Bakery demand forecasts: batch forecasts, online predictions, models.",
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
        docs_url=None,  # served offline: fournil.api.docs
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine or api_engine(settings)
    app.state.poll = poll
    app.add_middleware(
        Edge, max_body=settings.api.max_body_bytes, body_timeout=settings.api.body_timeout_seconds
    )
    app.include_router(api_router)
    add_docs(app)
    return app
