"""The API's request and response models (they make the OpenAPI document), and `raw_json`, the
response the data routes send."""

import datetime as dt
import re
from typing import Annotated, Any

import orjson
from fastapi import Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

#: the dates a request may name: plausible for sales, and far from the calendar's ends, so no
#: date arithmetic on them can overflow (the data's own range is checked against the warehouse)
MIN_DATE, MAX_DATE = dt.date(2000, 1, 1), dt.date(2099, 12, 31)
MAX_ID = 2_147_483_647


def _whole_number(value: Any) -> Any:
    """An id: a JSON integer or, in a query string, ASCII digits; never true, 1.0 or "1_0"."""
    if isinstance(value, bool) or not (
        isinstance(value, int) or (isinstance(value, str) and value.isascii() and value.isdigit())
    ):
        raise ValueError("must be a whole number")
    return int(value)


def _iso_date(value: Any) -> Any:
    """A date: a string YYYY-MM-DD; never a number (seconds since 1970) nor a timestamp."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if not (isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value)):
        raise ValueError("must be a date, YYYY-MM-DD")
    return value


QueryId = Annotated[int, BeforeValidator(_whole_number), Field(ge=1, le=MAX_ID)]
BodyId = Annotated[int, Field(ge=1, le=MAX_ID, strict=True)]  # a JSON integer: not "1", 1.0, true
Day = Annotated[dt.date, BeforeValidator(_iso_date), Field(ge=MIN_DATE, le=MAX_DATE)]


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
    store_id: QueryId
    product_id: QueryId | None = Field(None, description="default: all")
    start: Day | None = Field(None, description="first target date (default: the first)")
    end: Day | None = Field(None, description="last target date (default: the last)")
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
    store_id: BodyId
    product_id: BodyId
    date: Day = Field(description="the day to predict")
    price: float | None = Field(
        None,
        ge=0.01,
        le=1000,
        strict=True,
        allow_inf_nan=False,
        description="planned price (default: regular)",
    )
    promo: bool | None = Field(None, strict=True, description="planned promotion (default: none)")
    siblings_on_promo: int | None = Field(None, ge=0, le=1000, strict=True)


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
