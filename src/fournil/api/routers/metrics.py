"""GET /metrics: Prometheus metrics, public (the scraper has no key)."""

from fastapi import APIRouter, Response

from fournil.api import telemetry
from fournil.api.deps import EngineDep

router = APIRouter(tags=["ops"])


@router.get("/metrics", response_class=Response)
def metrics(engine: EngineDep) -> Response:
    """Prometheus metrics of the API (all workers) and of the pipeline runs."""
    return Response(telemetry.exposition(engine), media_type="text/plain; version=0.0.4")
