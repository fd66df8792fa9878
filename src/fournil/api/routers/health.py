"""GET /health (liveness) and GET /ready (readiness): public, no key."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from fournil.api import telemetry
from fournil.api.deps import EngineDep, HolderDep, TablesDep

router = APIRouter(tags=["ops"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "warehouse unreachable"}})
def ready(engine: EngineDep, tables: TablesDep, holder: HolderDep) -> JSONResponse:
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
