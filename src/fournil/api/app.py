"""The FastAPI app: `create_app()`; `fournil api serve` runs it with uvicorn.

(No `from __future__ import annotations` here: FastAPI must evaluate the route annotations,
which refer to dependencies built inside `create_app`.)
"""

import datetime as dt
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fournil.api import telemetry
from fournil.api.batching import Batcher
from fournil.api.inputs import InputError, Row, check_rows
from fournil.api.keys import KeyCache, KeyInfo
from fournil.api.predicting import Answer, Job, Predictor
from fournil.api.serving import ModelHolder, Served
from fournil.api.tables import PageQuery, ServingTables, Snapshot, forecasts_from_warehouse
from fournil.db import make_engine
from fournil.db.schema import model_decisions
from fournil.settings import Settings, get_settings

log = logging.getLogger("fournil.api")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}


def _error(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if field:
        body["error"]["field"] = field
    return JSONResponse(body, status_code=status, headers=headers)


# --- schemas -------------------------------------------------------------------------------
class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "malformed request body (not JSON)",
        401: "missing, invalid or revoked API key",
        403: "the key lacks the scope",
        404: "unknown store, product or series",
        413: "request body too large",
        422: "invalid input (the field is named)",
        429: "rate limit for this key (see Retry-After)",
        503: "warehouse unavailable (see Retry-After)",
    }
    return {code: {"model": ErrorBody, "description": text[code]} for code in codes}


DATA_ERRORS = (401, 403, 404, 413, 422, 429, 503)


class Forecast(BaseModel):
    store_id: int
    product_id: int
    target_date: dt.date
    forecast_date: dt.date = Field(description="last day of actuals the forecast used")
    horizon: int
    yhat: float
    yhat_lower: float | None
    yhat_upper: float | None
    model_name: str
    model_version: str


class ForecastQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    store_id: int = Field(ge=1, le=2_147_483_647)
    product_id: int | None = Field(None, ge=1, le=2_147_483_647, description="default: all")
    start: dt.date | None = Field(None, description="first target date (default: the first)")
    end: dt.date | None = Field(None, description="last target date (default: the last)")
    page: int = Field(1, ge=1, le=100_000)
    page_size: int = Field(100, ge=1, le=1000)


class ForecastPage(BaseModel):
    items: list[Forecast]
    total: int
    page: int
    page_size: int


class PredictRow(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"store_id": 1, "product_id": 1, "date": "2026-07-01", "price": 1.2, "promo": False}
            ]
        },
    )
    store_id: int = Field(ge=1, le=2_147_483_647)
    product_id: int = Field(ge=1, le=2_147_483_647)
    date: dt.date = Field(description="the day to predict")
    price: float | None = Field(None, gt=0, le=1000, description="planned price (default: regular)")
    promo: bool | None = Field(None, description="planned promotion (default: none)")
    siblings_on_promo: int | None = Field(None, ge=0, le=1000)


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rows: list[PredictRow] = Field(min_length=1)


class Prediction(BaseModel):
    store_id: int
    product_id: int
    date: dt.date
    yhat: float
    yhat_lower: float | None
    yhat_upper: float | None
    model_name: str
    model_version: str
    arm: str


class PredictResponse(BaseModel):
    request_id: str
    predictions: list[Prediction]


class ModelInfo(BaseModel):
    name: str
    version: str
    metrics: dict[str, float]


class ModelsCurrent(BaseModel):
    champion: ModelInfo | None
    challenger: ModelInfo | None
    fallback: ModelInfo
    challenger_share: float
    degraded: str | None
    decisions: list[dict[str, Any]]


# --- rate limiting ---------------------------------------------------------------------------
class RateLimiter:
    """Token bucket per key (per worker process)."""

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 if allowed, else seconds to wait."""
        now = time.monotonic()
        with self.lock:
            tokens, at = self.buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.rate)
            if tokens >= 1:
                self.buckets[key] = (tokens - 1, now)
                return 0.0
            self.buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


def _json(body: Any) -> Response:
    """A JSON response serialised by orjson, without FastAPI's re-validation of the body (the
    handlers build it from typed data; schemathesis checks it against the documented schema)."""
    return Response(orjson.dumps(body), media_type="application/json")


class Edge:
    """Pure ASGI middleware (Starlette's BaseHTTPMiddleware costs a task and a stream per
    request): the body size limit, request metrics, and a structured 503 for anything unhandled."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0
        too_large = f"request body over {self.max_body} bytes"
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body:
                await _error(413, "too_large", too_large)(scope, receive, send)
                self._measure(scope, 413, start)
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:  # a chunked body without a length
                raise StarletteHTTPException(413, too_large)
            return message

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, limited, sending)
        except Exception:
            log.exception("unhandled error on %s", scope.get("path"))
            if not status:
                status = 503
                await _error(503, "internal", "could not answer, retry later")(scope, receive, send)
        self._measure(scope, status, start)

    @staticmethod
    def _measure(scope: Scope, status: int, start: float) -> None:
        route = getattr(scope.get("route"), "path", "unmatched")
        telemetry.REQUESTS.labels(route, scope["method"], str(status)).inc()
        telemetry.LATENCY.labels(route).observe(time.perf_counter() - start)


def create_app(
    settings: Settings | None = None, engine: Engine | None = None, poll: bool = True
) -> FastAPI:
    settings = settings or get_settings()
    engine = engine or make_engine(settings.warehouse_url, pool_pre_ping=True)
    holder = ModelHolder(settings)
    tables = ServingTables(engine, settings)
    key_cache = KeyCache(engine, settings.api_key_cache_seconds)
    limiter = RateLimiter(settings.api_rate_per_minute)
    state: dict[str, Any] = {}

    def on_load(arm: str, served: Served) -> None:
        telemetry.MODEL_LOAD.labels(arm).set(served.loaded_seconds)
        with suppress(ValueError):
            telemetry.MODEL_VERSION.labels(arm).set(float(served.version))

    def on_build(snapshot: Snapshot) -> None:
        telemetry.TABLE_BUILD.set(snapshot.built_seconds)
        telemetry.TABLE_ROWS.labels("history_series").set(len(snapshot.series_index))
        telemetry.TABLE_ROWS.labels("forecasts").set(
            len(snapshot.forecasts.columns.get("yhat", ()))
        )

    holder.on_load.append(on_load)
    tables.on_build.append(on_build)

    def batch_done(requests: int, rows: int) -> None:
        telemetry.BATCH_ROWS.observe(rows)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # the champion and the serving tables are loaded before the first request is accepted
        await run_in_threadpool(holder.refresh)
        await run_in_threadpool(tables.refresh)
        telemetry.FALLBACK_IN_USE.set(1 if holder.champion is None else 0)
        telemetry.WORKER.set(1)
        if poll:
            holder.start_polling()
            tables.start_polling()
        state["log"] = telemetry.PredictionLog(engine)
        batcher = Batcher(
            Predictor(engine, holder, state["log"]),
            size=lambda job: len(job.rows),
            max_items=settings.api_max_rows,
            on_batch=batch_done,
        )
        batcher.start()
        state["batcher"] = batcher
        yield
        await batcher.stop()
        holder.stop()
        tables.stop()
        state["log"].close()

    app = FastAPI(
        title="Fournil API",
        version="1",
        description="Bakery demand forecasts: batch forecasts, online predictions, models.",
        lifespan=lifespan,
    )
    app.state.holder = holder
    app.state.tables = tables
    app.state.engine = engine
    app.add_middleware(Edge, max_body=settings.api_max_body_bytes)

    # --- errors: always structured, never a bare 500 -------------------------------------
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.field, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
        return _error(422, "invalid_input", str(first.get("msg")), field or None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {413: "too_large", 404: "not_found", 405: "method_not_allowed"}
        return _error(exc.status_code, code.get(exc.status_code, "http_error"), str(exc.detail))

    @app.exception_handler(SQLAlchemyError)
    async def db_error(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        log.warning("database error: %s", str(exc).splitlines()[0])
        return _error(
            503,
            "warehouse_unavailable",
            "the warehouse is unavailable, retry later",
            headers={"Retry-After": "5"},
        )

    def serving_tables() -> Snapshot:
        snapshot = tables.snapshot
        if not snapshot.fingerprint:  # never loaded: the warehouse was down since start-up
            raise ApiError(
                503,
                "warehouse_unavailable",
                "the serving tables are not loaded yet, retry later",
                headers={"Retry-After": "5"},
            )
        return snapshot

    # --- auth ----------------------------------------------------------------------------
    def auth(scope: str) -> Callable[..., Any]:
        async def check(
            x_api_key: Annotated[
                str | None, Header(description="API key: fk_<id>_<secret>")
            ] = None,
        ) -> KeyInfo:
            if not x_api_key:
                raise ApiError(
                    401,
                    "unauthenticated",
                    "missing X-API-Key header",
                    headers={"WWW-Authenticate": "ApiKey"},
                )
            hit, key = key_cache.cached(x_api_key)
            if not hit:
                key = await run_in_threadpool(key_cache.verify, x_api_key)
            if key is None:
                raise ApiError(
                    401,
                    "unauthenticated",
                    "invalid or revoked API key",
                    headers={"WWW-Authenticate": "ApiKey"},
                )
            if scope not in key.scopes and "admin" not in key.scopes:
                raise ApiError(403, "forbidden", f"this key lacks the '{scope}' scope")
            wait = limiter.take(key.key_id)
            if wait:
                raise ApiError(
                    429,
                    "rate_limited",
                    "too many requests for this key",
                    headers={"Retry-After": str(max(1, round(wait)))},
                )
            return key

        return check

    # --- routes --------------------------------------------------------------------------
    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"], responses={503: {"description": "warehouse unreachable"}})
    def ready() -> JSONResponse:
        """Readiness: warehouse reachable, serving tables and a model loaded; 'degraded' on the
        fallback model."""
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            return JSONResponse(
                {"status": "unavailable", "reason": f"warehouse: {type(exc).__name__}"},
                status_code=503,
            )
        if not tables.snapshot.fingerprint:
            return JSONResponse(
                {"status": "unavailable", "reason": f"serving tables not loaded: {tables.error}"},
                status_code=503,
            )
        reason = holder.degraded_reason
        telemetry.FALLBACK_IN_USE.set(1 if reason else 0)
        body = {
            "status": "degraded" if reason else "ready",
            "reason": reason,
            "champion": holder.champion.version if holder.champion else None,
            "challenger": holder.challenger.version if holder.challenger else None,
            "last_sales_day": str(tables.snapshot.last_day) if tables.snapshot.last_day else None,
        }
        return JSONResponse(body)

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics of the API (all workers) and of the pipeline runs."""
        return Response(telemetry.exposition(engine), media_type="text/plain; version=0.0.4")

    @app.get(
        "/v1/forecasts",
        response_model=ForecastPage,
        tags=["forecasts"],
        responses=_errors(*DATA_ERRORS),
    )
    async def get_forecasts(
        key: Annotated[KeyInfo, Depends(auth("forecasts:read"))],
        params: Annotated[ForecastQuery, Query()],
    ) -> Response:
        """Batch forecasts of a store (optionally one product) between two target dates: for
        each day, the newest forecast. Recent and upcoming days are served from memory."""
        q = PageQuery(**params.model_dump())
        if q.start and q.end and q.start > q.end:
            raise ApiError(422, "invalid_input", "start must not be after end", "start")
        known = serving_tables()
        if q.store_id not in known.stores:
            raise ApiError(404, "not_found", f"unknown store {q.store_id}", "store_id")
        if q.product_id is not None and q.product_id not in known.products:
            raise ApiError(404, "not_found", f"unknown product {q.product_id}", "product_id")
        if known.forecasts.covers(q.start):
            items, total = known.forecasts.page(q)
        else:
            items, total = await run_in_threadpool(forecasts_from_warehouse, engine, q)
        return _json({"items": items, "total": total, "page": q.page, "page_size": q.page_size})

    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        tags=["predict"],
        responses=_errors(400, *DATA_ERRORS),
    )
    async def predict(
        body: PredictRequest, key: Annotated[KeyInfo, Depends(auth("predict"))]
    ) -> Response:
        """Online predictions for (store, product, date) rows, with an optional price/promo
        plan; features from the warehouse history with the shared feature code. Concurrent
        requests are batched into one model call."""
        if len(body.rows) > settings.api_max_rows:
            raise ApiError(
                422, "invalid_input", f"at most {settings.api_max_rows} rows per request", "rows"
            )
        snapshot = serving_tables()
        rows = [
            Row(r.store_id, r.product_id, r.date, r.price, r.promo, r.siblings_on_promo)
            for r in body.rows
        ]
        try:
            origins = check_rows(snapshot, rows)
            answer = await state["batcher"].submit(Job(rows, origins, key.key_id, snapshot))
        except InputError as exc:
            raise ApiError(
                exc.status,
                "not_found" if exc.status == 404 else "invalid_input",
                exc.message,
                exc.field,
            ) from None
        assert isinstance(answer, Answer)
        return _json({"request_id": answer.request_id, "predictions": answer.predictions})

    @app.get(
        "/v1/models/current",
        response_model=ModelsCurrent,
        tags=["models"],
        responses=_errors(401, 403, 429, 503),
    )
    def models_current(key: Annotated[KeyInfo, Depends(auth("forecasts:read"))]) -> ModelsCurrent:
        """Champion and challenger with their backtest metrics and the promotion record."""

        def info(served: Served | None) -> ModelInfo | None:
            return (
                ModelInfo(name=served.name, version=served.version, metrics=served.metrics)
                if served
                else None
            )

        with engine.connect() as conn:
            decisions = (
                conn.execute(
                    select(
                        model_decisions.c.decided_at,
                        model_decisions.c.model_version,
                        model_decisions.c.action,
                        model_decisions.c.champion_before,
                        model_decisions.c.champion_after,
                        model_decisions.c.reasons,
                    )
                    .where(model_decisions.c.model_name == settings.model_name)
                    .order_by(model_decisions.c.decision_id.desc())
                    .limit(10)
                )
                .mappings()
                .all()
            )
        fallback = info(holder.fallback)
        assert fallback is not None
        return ModelsCurrent(
            champion=info(holder.champion),
            challenger=info(holder.challenger),
            fallback=fallback,
            challenger_share=settings.api_challenger_share,
            degraded=holder.degraded_reason,
            decisions=[
                {k: (str(v) if isinstance(v, dt.datetime) else v) for k, v in d.items()}
                for d in decisions
            ],
        )

    return app
