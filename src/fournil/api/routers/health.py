"""GET /health (liveness) and GET /ready (readiness): public, no key. What they say is safe to
show anyone: short reasons, no addresses, no exception text (those go to the logs)."""

import datetime as dt

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from fournil.api import telemetry
from fournil.api.deps import EngineDep, HolderDep, TablesDep

router = APIRouter(tags=["ops"])


@router.get("/", include_in_schema=False)
async def root() -> dict[str, str]:
    """Where to go from the bare address: the reference and the probes."""
    return {"name": "Fournil API", "docs": "/docs", "openapi": "/openapi.json", "ready": "/ready"}


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers (also before the warehouse is reachable)."""
    return {"status": "ok"}


def _unavailable(reason: str) -> JSONResponse:
    return JSONResponse(
        {"status": "unavailable", "reason": reason}, status_code=503, headers={"Retry-After": "5"}
    )


def _warehouse_up(engine: EngineDep) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:  # the pollers log what it was
        return False
    return True


@router.get("/ready", responses={503: {"description": "not ready: serving tables, keys or models"}})
def ready(
    request: Request, engine: EngineDep, tables: TablesDep, holder: HolderDep
) -> JSONResponse:
    """Readiness: the serving tables, the API keys and a model loaded and warmed. 'degraded'
    (still 200: it answers) on the fallback model or while the warehouse is unreachable, when
    what is in memory answers."""
    snapshot = tables.snapshot
    if not snapshot.fingerprint:
        return _unavailable(f"serving tables not loaded: {tables.public_error or 'loading'}")
    if not request.app.state.keys.loaded:
        return _unavailable("API keys not loaded: warehouse unreachable")
    if not holder.warmed:
        return _unavailable("warming up")
    reasons = []
    if not _warehouse_up(engine):
        built = dt.datetime.fromtimestamp(snapshot.built_at, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        reasons.append(f"warehouse unreachable: serving the tables loaded at {built}")
    fallback = holder.degraded_reason
    telemetry.FALLBACK_IN_USE.set(1 if fallback else 0)
    if fallback:
        reasons.append(fallback)
    body = {
        "status": "degraded" if reasons else "ready",
        "reason": "; ".join(reasons) or None,
        "champion": holder.champion.version if holder.champion else None,
        "challenger": holder.challenger.version if holder.challenger else None,
        "last_sales_day": str(snapshot.last_day) if snapshot.last_day else None,
    }
    return JSONResponse(body)
