"""GET /v1/forecasts: the batch forecasts, paginated (key scope `forecasts:read`)."""

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.concurrency import run_in_threadpool

from fournil.api.deps import EngineDep, ReadKey, TablesDep, loaded_snapshot
from fournil.api.errors import DATA_ERRORS, ApiError, error_responses
from fournil.api.schemas import ForecastPage, ForecastQuery, raw_json
from fournil.api.tables import PageQuery, forecasts_from_warehouse

router = APIRouter(tags=["forecasts"])


@router.get("/v1/forecasts", response_model=ForecastPage, responses=error_responses(*DATA_ERRORS))
async def get_forecasts(
    key: ReadKey,
    params: Annotated[ForecastQuery, Query()],
    tables: TablesDep,
    engine: EngineDep,
) -> Response:
    """Batch forecasts of a store (optionally one product) between two target dates: for
    each day, the newest forecast. Recent and upcoming days are served from memory."""
    q = PageQuery(**params.model_dump())
    if q.start and q.end and q.start > q.end:
        raise ApiError(422, "invalid_input", "start must not be after end", "start")
    known = loaded_snapshot(tables)
    if q.store_id not in known.stores:
        raise ApiError(404, "not_found", f"unknown store {q.store_id}", "store_id")
    if q.product_id is not None and q.product_id not in known.products:
        raise ApiError(404, "not_found", f"unknown product {q.product_id}", "product_id")
    if known.forecasts.covers(q.start):
        items, total = known.forecasts.page(q)
    else:
        items, total = await run_in_threadpool(forecasts_from_warehouse, engine, q)
    return raw_json({"items": items, "total": total, "page": q.page, "page_size": q.page_size})
