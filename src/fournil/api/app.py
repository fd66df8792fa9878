"""The FastAPI app: `create_app()`; `fournil api serve` runs it with uvicorn.

(No `from __future__ import annotations` here: FastAPI must evaluate the route annotations,
which refer to dependencies built inside `create_app`.)
"""

import datetime as dt
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from fournil.api import telemetry
from fournil.api.inputs import Catalogue, InputError, Row, raw_inputs
from fournil.api.keys import KeyInfo, verify_key
from fournil.api.serving import ModelHolder, Served
from fournil.db import make_engine
from fournil.db.schema import forecasts, model_decisions
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


def create_app(
    settings: Settings | None = None, engine: Engine | None = None, poll: bool = True
) -> FastAPI:
    settings = settings or get_settings()
    engine = engine or make_engine(settings.warehouse_url, pool_pre_ping=True)
    holder = ModelHolder(settings)
    catalogue = Catalogue(engine)
    limiter = RateLimiter(settings.api_rate_per_minute)
    state: dict[str, Any] = {}

    def on_load(arm: str, served: Served) -> None:
        telemetry.MODEL_LOAD.labels(arm).set(served.loaded_seconds)
        with suppress(ValueError):
            telemetry.MODEL_VERSION.labels(arm).set(float(served.version))

    holder.on_load.append(on_load)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        holder.refresh()  # the champion is loaded before the first request is accepted
        telemetry.FALLBACK_IN_USE.set(1 if holder.champion is None else 0)
        if poll:
            holder.start_polling()
        state["log"] = telemetry.PredictionLog(engine)
        yield
        holder.stop()
        state["log"].close()

    app = FastAPI(
        title="Fournil API",
        version="1",
        description="Bakery demand forecasts: batch forecasts, online predictions, models.",
        lifespan=lifespan,
    )
    app.state.holder = holder
    app.state.engine = engine

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
        return _error(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(SQLAlchemyError)
    async def db_error(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        log.warning("database error: %s", str(exc).splitlines()[0])
        return _error(
            503,
            "warehouse_unavailable",
            "the warehouse is unavailable, retry later",
            headers={"Retry-After": "5"},
        )

    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.api_max_body_bytes:
            return _error(
                413, "too_large", f"request body over {settings.api_max_body_bytes} bytes"
            )
        start = time.perf_counter()
        route = request.url.path
        try:
            response = await call_next(request)
        except Exception:
            log.exception("unhandled error on %s", route)
            response = _error(503, "internal", "the service could not answer, retry later")
        matched = request.scope.get("route")
        route = getattr(matched, "path", "unmatched")
        telemetry.REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        telemetry.LATENCY.labels(route).observe(time.perf_counter() - start)
        return response

    # --- auth ----------------------------------------------------------------------------
    def auth(scope: str) -> Callable[..., KeyInfo]:
        def check(
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
            key = verify_key(engine, x_api_key)
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
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"], responses={503: {"description": "warehouse unreachable"}})
    def ready() -> JSONResponse:
        """Readiness: warehouse reachable, a model loaded; 'degraded' on the fallback."""
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            return JSONResponse(
                {"status": "unavailable", "reason": f"warehouse: {type(exc).__name__}"},
                status_code=503,
            )
        reason = holder.degraded_reason
        telemetry.FALLBACK_IN_USE.set(1 if reason else 0)
        body = {
            "status": "degraded" if reason else "ready",
            "reason": reason,
            "champion": holder.champion.version if holder.champion else None,
            "challenger": holder.challenger.version if holder.challenger else None,
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
    def get_forecasts(
        key: Annotated[KeyInfo, Depends(auth("forecasts:read"))],
        store_id: Annotated[int, Query(ge=1, le=2_147_483_647)],
        product_id: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
        start: dt.date | None = None,
        end: dt.date | None = None,
        page: Annotated[int, Query(ge=1, le=100_000)] = 1,
        page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> ForecastPage:
        """Batch forecasts of a store (optionally one product) between two target dates: for
        each day, the newest forecast."""
        if start and end and start > end:
            raise ApiError(422, "invalid_input", "start must not be after end", "start")
        known = catalogue.fresh()
        if store_id not in known.stores:
            raise ApiError(404, "not_found", f"unknown store {store_id}", "store_id")
        if product_id is not None and product_id not in known.products:
            raise ApiError(404, "not_found", f"unknown product {product_id}", "product_id")
        conditions = [forecasts.c.store_id == store_id]
        if product_id is not None:
            conditions.append(forecasts.c.product_id == product_id)
        if start:
            conditions.append(forecasts.c.target_date >= start)
        if end:
            conditions.append(forecasts.c.target_date <= end)
        rank = func.row_number().over(
            partition_by=[forecasts.c.store_id, forecasts.c.product_id, forecasts.c.target_date],
            order_by=[forecasts.c.forecast_date.desc(), forecasts.c.created_at.desc()],
        )
        ranked = select(forecasts, rank.label("rank")).where(*conditions).subquery()
        newest = select(ranked).where(ranked.c.rank == 1)
        with engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(newest.subquery())).scalar_one()
            rows = (
                conn.execute(
                    newest.order_by(ranked.c.product_id, ranked.c.target_date)
                    .limit(page_size)
                    .offset((page - 1) * page_size)
                )
                .mappings()
                .all()
            )
        items = [Forecast.model_validate(dict(r)) for r in rows]
        return ForecastPage(items=items, total=total, page=page, page_size=page_size)

    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        tags=["predict"],
        responses=_errors(400, *DATA_ERRORS),
    )
    def predict(
        body: PredictRequest, key: Annotated[KeyInfo, Depends(auth("predict"))]
    ) -> PredictResponse:
        """Online predictions for (store, product, date) rows, with an optional price/promo
        plan; features from the warehouse history with the shared feature code."""
        if len(body.rows) > settings.api_max_rows:
            raise ApiError(
                422, "invalid_input", f"at most {settings.api_max_rows} rows per request", "rows"
            )
        rows = [
            Row(r.store_id, r.product_id, r.date, r.price, r.promo, r.siblings_on_promo)
            for r in body.rows
        ]
        try:
            raw = raw_inputs(engine, catalogue, rows)
        except InputError as exc:
            raise ApiError(
                exc.status,
                "not_found" if exc.status == 404 else "invalid_input",
                exc.message,
                exc.field,
            ) from None
        arms = [holder.arm_for(key.key_id, r.store_id) for r in rows]
        predicted, used, fell_back = holder.predict(raw, arms)
        request_id = str(uuid.uuid4())
        out, log_rows = [], []
        for i, row in enumerate(rows):
            served = used[i]
            arm = arms[i] if served.name == settings.model_name else "fallback"
            yhat = float(predicted["yhat"].iloc[i])
            lower, upper = predicted["yhat_lower"].iloc[i], predicted["yhat_upper"].iloc[i]
            out.append(
                Prediction(
                    store_id=row.store_id,
                    product_id=row.product_id,
                    date=row.date,
                    yhat=yhat,
                    yhat_lower=None if np.isnan(lower) else float(lower),
                    yhat_upper=None if np.isnan(upper) else float(upper),
                    model_name=served.name,
                    model_version=served.version,
                    arm=arm,
                )
            )
            telemetry.PREDICTIONS.labels(served.name, served.version, arm).inc()
            telemetry.PREDICTION_VALUE.observe(yhat)
            inputs = json.dumps(raw.iloc[i].to_dict(), sort_keys=True, default=str)
            log_rows.append(
                {
                    "request_id": request_id,
                    "key_id": key.key_id,
                    "model_name": served.name,
                    "model_version": served.version,
                    "arm": arm,
                    "store_id": row.store_id,
                    "product_id": row.product_id,
                    "target_date": row.date,
                    "inputs_hash": hashlib.sha256(inputs.encode()).hexdigest(),
                    "yhat": yhat,
                }
            )
        if fell_back:
            telemetry.FALLBACKS.inc(fell_back)
        state["log"].add(log_rows)
        return PredictResponse(request_id=request_id, predictions=out)

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
