"""POST /v1/predict: online predictions, batched across concurrent requests (key scope
`predict`)."""

from fastapi import APIRouter, Response

from fournil.api.deps import BatcherDep, PredictKey, SettingsDep, TablesDep, loaded_snapshot
from fournil.api.errors import DATA_ERRORS, ApiError, error_responses
from fournil.api.inputs import InputError, Row, check_rows
from fournil.api.predicting import Answer, Job
from fournil.api.schemas import PredictRequest, PredictResponse, raw_json

router = APIRouter(tags=["predict"])


@router.post(
    "/v1/predict", response_model=PredictResponse, responses=error_responses(400, *DATA_ERRORS)
)
async def predict(
    body: PredictRequest,
    key: PredictKey,
    settings: SettingsDep,
    tables: TablesDep,
    batcher: BatcherDep,
) -> Response:
    """Online predictions for (store, product, date) rows, with an optional price/promo
    plan; features from the warehouse history with the shared feature code. Concurrent
    requests are batched into one model call."""
    if len(body.rows) > settings.api.max_rows:
        raise ApiError(
            422, "invalid_input", f"at most {settings.api.max_rows} rows per request", "rows"
        )
    snapshot = loaded_snapshot(tables)
    rows = [
        Row(r.store_id, r.product_id, r.date, r.price, r.promo, r.siblings_on_promo)
        for r in body.rows
    ]
    try:
        origins = check_rows(snapshot, rows)
        answer = await batcher.submit(Job(rows, origins, key.key_id, snapshot))
    except InputError as exc:
        raise ApiError(
            exc.status,
            "not_found" if exc.status == 404 else "invalid_input",
            exc.message,
            exc.field,
        ) from None
    assert isinstance(answer, Answer)
    return raw_json({"request_id": answer.request_id, "predictions": answer.predictions})
