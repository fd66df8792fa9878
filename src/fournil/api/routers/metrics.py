"""GET /metrics: Prometheus metrics, for the scraper on the internal network only. The proxy
does not forward /metrics, and a request that came through a proxy (X-Forwarded-For) gets 404
here too: model versions, prediction counts and process memory are nobody else's business."""

from fastapi import APIRouter, Request, Response

from fournil.api import telemetry
from fournil.api.deps import EngineDep
from fournil.api.errors import ApiError

router = APIRouter(tags=["ops"])


@router.get("/metrics", response_class=Response, include_in_schema=False)
def metrics(request: Request, engine: EngineDep) -> Response:
    """Prometheus metrics of the API (all workers) and of the pipeline runs."""
    if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
        raise ApiError(404, "not_found", "Not Found")
    return Response(telemetry.exposition(engine), media_type="text/plain; version=0.0.4")
