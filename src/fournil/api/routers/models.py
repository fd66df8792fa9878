"""GET /v1/models/current: the models served and the promotion record (key scope
`forecasts:read`)."""

import datetime as dt
import logging
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from fournil.api.deps import EngineDep, HolderDep, ReadKey, SettingsDep
from fournil.api.errors import describe, error_responses
from fournil.api.schemas import ModelInfo, ModelsCurrent
from fournil.api.serving import Served
from fournil.db.schema import model_decisions

log = logging.getLogger("fournil.api")
router = APIRouter(tags=["models"])


def _info(served: Served) -> ModelInfo:
    return ModelInfo(name=served.name, version=served.version, metrics=served.metrics)


def _decisions(engine: Engine, model_name: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = (
            conn.execute(
                select(
                    model_decisions.c.decided_at,
                    model_decisions.c.model_version,
                    model_decisions.c.action,
                    model_decisions.c.champion_before,
                    model_decisions.c.champion_after,
                    model_decisions.c.reasons,
                )
                .where(model_decisions.c.model_name == model_name)
                .order_by(model_decisions.c.decision_id.desc())
                .limit(10)
            )
            .mappings()
            .all()
        )
    return [{k: (str(v) if isinstance(v, dt.datetime) else v) for k, v in d.items()} for d in rows]


@router.get(
    "/v1/models/current",
    response_model=ModelsCurrent,
    responses=error_responses(401, 403, 429, 503),
)
def models_current(
    request: Request, key: ReadKey, settings: SettingsDep, engine: EngineDep, holder: HolderDep
) -> ModelsCurrent:
    """Champion and challenger (and per-segment champions) with their backtest metrics, and
    the promotion record (while the warehouse is unreachable: the last one read)."""
    state = request.app.state
    try:
        decisions = _decisions(engine, settings.model_name)
        state.last_decisions = decisions
    except SQLAlchemyError as exc:
        log.warning("promotion record not read, serving the last one: %s", describe(exc))
        decisions = getattr(state, "last_decisions", [])
    return ModelsCurrent(
        champion=_info(holder.champion) if holder.champion else None,
        challenger=_info(holder.challenger) if holder.challenger else None,
        segments={value: _info(served) for value, served in holder.segments.items()},
        fallback=_info(holder.fallback),
        challenger_share=settings.api.challenger_share,
        degraded=holder.degraded_reason,
        decisions=decisions,
    )
