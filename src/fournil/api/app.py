"""The FastAPI app: `create_app()`; `fournil api serve` runs it with uvicorn.

The app's state (settings, engine, models, serving tables, key cache, rate limiter, prediction
log, predict batcher) lives on `app.state`, built by `lifespan`; the routes (`routers/`) reach it
through the dependencies of `deps.py`. Errors are in `errors.py`, the middleware in
`middleware.py`, the request and response models in `schemas.py`.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine

from fournil.api import telemetry
from fournil.api.batching import Batcher
from fournil.api.deps import RateLimiter
from fournil.api.errors import EXCEPTION_HANDLERS, ApiError
from fournil.api.keys import KeyCache
from fournil.api.middleware import Edge
from fournil.api.predicting import Predictor
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


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Builds the state from `app.state.settings`, `.engine` and `.poll` (set by `create_app`);
    the champion and the serving tables are loaded before the first request is accepted."""
    state = app.state
    settings: Settings = state.settings
    engine: Engine = state.engine
    state.holder = holder = ModelHolder(settings)
    state.tables = tables = ServingTables(engine, settings)
    state.key_cache = KeyCache(engine, settings.secret_key, settings.api.key_cache_seconds)
    state.limiter = RateLimiter(settings.api.rate_per_minute)
    holder.on_load.append(_model_loaded)
    tables.on_build.append(_tables_built)
    await run_in_threadpool(holder.refresh)
    await run_in_threadpool(tables.refresh)
    telemetry.FALLBACK_IN_USE.set(1 if holder.champion is None else 0)
    telemetry.WORKER.set(1)
    if state.poll:
        holder.start_polling()
        tables.start_polling()
    state.prediction_log = telemetry.PredictionLog(engine)
    state.batcher = Batcher(
        Predictor(engine, holder, state.prediction_log),
        size=lambda job: len(job.rows),
        max_items=settings.api.max_rows,
        on_batch=_batch_done,
    )
    state.batcher.start()
    yield
    await state.batcher.stop()
    holder.stop()
    tables.stop()
    state.prediction_log.close()


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
    )
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings.warehouse_url, pool_pre_ping=True)
    app.state.poll = poll
    app.add_middleware(Edge, max_body=settings.api.max_body_bytes)
    app.include_router(api_router)
    return app
