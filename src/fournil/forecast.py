"""`fournil forecast`: batch forecasts of every active store x product from the champion(s).

The origin (`forecast_date`) is the last day with sales in the warehouse unless given; targets
are the next `horizon` days. The plan for those days is unknown here, so forecasts assume the
regular price and no promotion. Rows are routed to their segment's champion when per-segment
models exist, otherwise to the global champion. Writing is idempotent: one transaction replaces
the rows of (model, version, forecast date).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine, delete, func, insert, select

from fournil import registry
from fournil.db.schema import forecasts, sales
from fournil.features import WINDOW, PanelRequests, raw_frame
from fournil.panel import fill_absent, load_panel
from fournil.settings import Settings

log = logging.getLogger("fournil.forecast")
CHUNK_ROWS = 50_000
ACTIVE_DAYS = 28  #: a series with no sale in this many days before the origin is not forecast


class ForecastError(Exception):
    pass


@dataclass
class ForecastResult:
    forecast_date: dt.date
    rows: int
    models: dict[str, str]  # name -> version used
    fallback: str | None = None  # "name vN" when the fallback forecast (no champion)


def last_sales_date(engine: Engine) -> dt.date | None:
    with engine.connect() as conn:
        return conn.execute(select(func.max(sales.c.sale_date))).scalar_one_or_none()


def run_forecast(
    engine: Engine,
    settings: Settings,
    forecast_date: dt.date | None = None,
    horizon: int | None = None,
) -> ForecastResult:
    horizon = horizon or settings.horizon
    origin = forecast_date or last_sales_date(engine)
    if origin is None:
        raise ForecastError("the warehouse has no sales: run `fournil etl run` first")
    client = registry.configure(settings)
    panel = load_panel(engine, start=origin - dt.timedelta(days=WINDOW - 1), end=origin)
    recent = np.isfinite(panel.units[:, -ACTIVE_DAYS:]).any(axis=1)  # rows, not filled days
    if settings.absent_days == "zero":
        fill_absent(panel)
    rows = np.flatnonzero(recent)
    if len(rows) == 0:
        raise ForecastError(
            f"no store x product sold anything in the {ACTIVE_DAYS} days to {origin}"
        )

    routes: dict[tuple[str, str], np.ndarray] = {}
    fallback: str | None = None
    for found, positions in registry.resolve(client, settings, panel.series.iloc[rows]):
        ref = found
        if ref is None:
            # nothing was ever promoted: the fallback the gate put forward serves, and says so
            name = registry.fallback_name(settings)
            version = registry.alias_version(client, name, registry.CHAMPION)
            if version is None:
                raise ForecastError(
                    f"{settings.model_name} has no champion: run `fournil model train` and "
                    "`fournil model promote` first"
                )
            ref = registry.ModelRef(name, version)
            fallback = f"{name} v{version}"
            log.warning(
                "%s has no champion: the fallback %s forecasts %d series",
                settings.model_name,
                fallback,
                len(positions),
            )
        routes[(ref.name, ref.version)] = rows[positions]

    total = 0
    with engine.begin() as conn:
        for (name, version), series_rows in routes.items():
            model = registry.load_model(name, version)
            run_id = client.get_model_version(name, version).run_id
            conn.execute(
                delete(forecasts).where(
                    forecasts.c.model_name == name,
                    forecasts.c.model_version == version,
                    forecasts.c.forecast_date == origin,
                )
            )
            requests = PanelRequests(
                series_rows=series_rows,
                origins=np.full(len(series_rows), panel.n_days - 1),
                horizons=np.arange(1, horizon + 1),
            )
            raw = raw_frame(panel, requests)
            for start in range(0, len(raw), CHUNK_ROWS):
                part = raw.iloc[start : start + CHUNK_ROWS]
                predicted = model.predict(part)
                frame = pd.DataFrame(
                    {
                        "model_name": name,
                        "model_version": version,
                        "forecast_date": origin,
                        "store_id": part["store_id"].to_numpy(),
                        "product_id": part["product_id"].to_numpy(),
                        "target_date": pd.to_datetime(part["target_date"]).dt.date.to_numpy(),
                        "yhat": predicted["yhat"].to_numpy(),
                        "yhat_lower": predicted["yhat_lower"].to_numpy(),
                        "yhat_upper": predicted["yhat_upper"].to_numpy(),
                        "run_id": run_id,
                    }
                )
                frame["horizon"] = [(t - origin).days for t in frame["target_date"]]
                records = frame.astype(object).where(frame.notna(), None).to_dict("records")
                conn.execute(insert(forecasts), records)  # type: ignore[arg-type]
                total += len(frame)
            log.info("%s v%s: %d forecasts for %s", name, version, len(raw), origin)
    return ForecastResult(
        forecast_date=origin, rows=total, models={name: v for name, v in routes}, fallback=fallback
    )
