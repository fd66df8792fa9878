"""The API's request and response models (they make the OpenAPI document), and `raw_json`, the
response the data routes send."""

import datetime as dt
from typing import Any

import orjson
from fastapi import Response
from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


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
    #: per-segment champions (FOURNIL_GRANULARITY), by segment value; empty for a global model
    segments: dict[str, ModelInfo] = {}
    fallback: ModelInfo
    challenger_share: float
    degraded: str | None
    decisions: list[dict[str, Any]]


def raw_json(body: Any) -> Response:
    """A JSON response serialised by orjson, without FastAPI's re-validation of the body (the
    handlers build it from typed data; schemathesis checks it against the documented schema)."""
    return Response(orjson.dumps(body), media_type="application/json")
