"""Monitoring: accuracy of stored forecasts once actuals land, and drift of inputs and
predictions (population stability index) against the champions' training window. Each series
is predicted by the champion `registry.routing` gives it (its segment's, or the global one).

Both write to the warehouse (`forecast_accuracy`, `drift_reports`), idempotently per
evaluation day, so dashboards and alerts read one source.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sqlalchemy import Engine, and_, delete, insert, select

from fournil import registry
from fournil.db.schema import drift_reports, forecast_accuracy, forecasts, sales
from fournil.features import WINDOW, PanelRequests, Vocabulary, from_panel, series_blocks
from fournil.forecast import last_sales_date
from fournil.models.estimators import Forecaster
from fournil.panel import Panel, load_panel
from fournil.scores import wape
from fournil.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger("fournil.monitor")
LEVELS = ("overall", "horizon", "store", "product")
#: Below this many current values, PSI is mostly sampling noise (about bins / n): reported,
#: never flagged.
MIN_DRIFT_SAMPLES = 200


def _scores(part: pd.DataFrame) -> pd.Series:
    err = part["yhat"] - part["actual"]
    total = float(part["actual"].sum())
    inside = (part["actual"] >= part["yhat_lower"]) & (part["actual"] <= part["yhat_upper"])
    has_interval = part["yhat_lower"].notna() & part["yhat_upper"].notna()
    return pd.Series(
        {
            "n": len(part),
            "actual_sum": total,
            "wape": wape(part["actual"], part["yhat"]),
            "rmse": float(np.sqrt(np.mean(err**2))),
            "bias": float(err.mean()),
            "coverage": float(inside[has_interval].mean()) if has_interval.any() else np.nan,
        }
    )


def score_forecasts(
    engine: Engine, evaluated_on: dt.date | None = None, window_days: int = 7
) -> pd.DataFrame:
    """Join stored forecasts whose target day is in the last `window_days` up to
    `evaluated_on` (default: the last day with sales) to the actuals; score them per model
    version, overall and per horizon, store and product. Stock-out days are censored and left
    out. Replaces that day's rows in `forecast_accuracy`."""
    evaluated_on = evaluated_on or last_sales_date(engine)
    if evaluated_on is None:
        return pd.DataFrame()
    first = evaluated_on - dt.timedelta(days=window_days - 1)
    query = (
        select(
            forecasts.c.model_name,
            forecasts.c.model_version,
            forecasts.c.horizon,
            forecasts.c.store_id,
            forecasts.c.product_id,
            forecasts.c.yhat,
            forecasts.c.yhat_lower,
            forecasts.c.yhat_upper,
            sales.c.units_sold.label("actual"),
            sales.c.stock_out,
        )
        .select_from(
            forecasts.join(
                sales,
                and_(
                    sales.c.store_id == forecasts.c.store_id,
                    sales.c.product_id == forecasts.c.product_id,
                    sales.c.sale_date == forecasts.c.target_date,
                ),
            )
        )
        .where(forecasts.c.target_date.between(first, evaluated_on))
    )
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all())
    rows: list[dict[str, object]] = []
    if not frame.empty:
        frame = frame[frame["stock_out"].ne(True)]
        for col in ("yhat", "yhat_lower", "yhat_upper", "actual"):
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
        for (name, version), part in frame.groupby(["model_name", "model_version"]):
            for level, column in zip(
                LEVELS, (None, "horizon", "store_id", "product_id"), strict=True
            ):
                groups = [("all", part)] if column is None else part.groupby(column)
                for key, group in groups:
                    scored = _scores(group)
                    rows.append(
                        {
                            "evaluated_on": evaluated_on,
                            "model_name": name,
                            "model_version": version,
                            "level": level,
                            "key": str(key),
                            **{
                                str(k): (None if pd.isna(v) else float(v))
                                for k, v in scored.items()
                                if k != "n"
                            },
                            "n": int(scored["n"]),
                        }
                    )
    with engine.begin() as conn:
        conn.execute(
            delete(forecast_accuracy).where(forecast_accuracy.c.evaluated_on == evaluated_on)
        )
        if rows:
            conn.execute(insert(forecast_accuracy), rows)
    return pd.DataFrame(rows)


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10, floor: float = 0.005) -> float:
    """Population stability index of `current` against `reference`: decile bins of the
    reference, equal-width bins over its range when ties collapse the deciles, one bin per
    value when it has few distinct values. The outer bins are open-ended."""
    reference = reference[np.isfinite(reference)]
    current = current[np.isfinite(current)]
    if len(reference) == 0 or len(current) == 0:
        return float("nan")
    distinct = np.unique(reference)
    if len(distinct) <= bins:
        edges = np.concatenate([[-np.inf], (distinct[:-1] + distinct[1:]) / 2, [np.inf]])
    else:
        inner = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
        if len(inner) < bins - 1:  # heavy ties (e.g. most prices at the regular one)
            inner = np.linspace(reference.min(), reference.max(), bins + 1)[1:-1]
        edges = np.concatenate([[-np.inf], inner, [np.inf]])
    ref = np.histogram(reference, edges)[0] / len(reference)
    cur = np.histogram(current, edges)[0] / len(current)
    # a floor on shares: an empty reference bin must not explode on a handful of values
    ref, cur = np.clip(ref, floor, None), np.clip(cur, floor, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


@dataclass
class DriftWindows:
    reference_start: dt.date
    reference_end: dt.date
    current_start: dt.date
    current_end: dt.date


def _windows(
    client: MlflowClient,
    champions: registry.Routing,
    evaluated_on: dt.date,
    current_days: int,
    reference_days: int,
) -> DriftWindows:
    current_start = evaluated_on - dt.timedelta(days=current_days - 1)
    reference_end = current_start - dt.timedelta(days=1)
    for ref in champions.models():  # the champions' training windows, if they ended earlier
        tags = client.get_model_version(ref.name, ref.version).tags or {}
        if "data_end" in tags:
            reference_end = min(reference_end, dt.date.fromisoformat(tags["data_end"]))
    return DriftWindows(
        reference_start=reference_end - dt.timedelta(days=reference_days - 1),
        reference_end=reference_end,
        current_start=current_start,
        current_end=evaluated_on,
    )


def _forecasters(champions: registry.Routing, panel: Panel) -> list[tuple[Forecaster, np.ndarray]]:
    """Each series' champion (through the one resolver), loaded once per model version."""
    return [
        (registry.load_forecaster(ref.name, ref.version), positions)
        for ref, positions in champions.resolve(panel.series)
        if ref is not None
    ]


def _feature_values(
    panel: Panel,
    first: int,
    last: int,
    vocab: Vocabulary,
    forecasters: list[tuple[Forecaster, np.ndarray]],
) -> dict[str, np.ndarray]:
    """Key inputs and predictions for origins first..last (day indices), horizon 1; each
    series' prediction comes from its own champion."""
    origins = np.arange(first, last + 1) - 1  # the target (h=1) is the day itself
    days = slice(first, last + 1)
    promo = panel.promo[:, days]
    values = {
        # regular prices only: promotions vary week to week and are watched through "promo"
        "price": np.where(promo == 1, np.nan, panel.price[:, days]).ravel(),
        "units": panel.units[:, days].ravel(),
        "promo": promo.ravel(),
    }
    watched: dict[str, list[np.ndarray]] = {
        name: [] for name in ("price_ratio", "level7_ratio", "log_base")
    }
    # series-major like the matrices above; block by block, so memory does not grow with the
    # chain (a window of history per series and origin is 1.8 KB)
    predictions = np.full((len(panel.series), len(origins)), np.nan)
    owner = np.full(len(panel.series), -1)
    for k, (_, positions) in enumerate(forecasters):
        owner[positions] = k
    for block in series_blocks(len(panel.series)):
        inputs, _, _ = from_panel(panel, vocab, PanelRequests.grid(block, origins, 1))
        for name in ("price_ratio", "level7_ratio"):
            watched[name].append(inputs.X[name].to_numpy(np.float64))
        watched["log_base"].append(inputs.log_base)
        for k, (forecaster, _) in enumerate(forecasters):
            mine = block[owner[block] == k]
            if len(mine):
                features, _, _ = from_panel(
                    panel, forecaster.vocab, PanelRequests.grid(mine, origins, 1)
                )
                predictions[mine] = forecaster.predict_inputs(features).reshape(
                    len(mine), len(origins)
                )
    values.update({name: np.concatenate(parts) for name, parts in watched.items()})
    if forecasters:
        values["prediction"] = predictions.ravel()
    return values


def drift_report(
    engine: Engine,
    settings: Settings,
    evaluated_on: dt.date | None = None,
    current_days: int = 7,
    reference_days: int = 56,
) -> pd.DataFrame:
    """PSI of key inputs and of the champion's predictions, last `current_days` against the
    training window. Regular (non-promo) prices and units are taken relative to each series'
    reference median, so a chain-wide price rise shows even though products differ 5x in
    price. Replaces the day's rows in `drift_reports`."""
    evaluated_on = evaluated_on or last_sales_date(engine)
    if evaluated_on is None:
        return pd.DataFrame()
    client = registry.configure(settings)
    champions = registry.routing(client, settings)
    win = _windows(client, champions, evaluated_on, current_days, reference_days)
    start = win.reference_start - dt.timedelta(days=WINDOW)
    panel = load_panel(engine, start=start, end=evaluated_on, absent_days=settings.absent_days)
    forecasters = _forecasters(champions, panel)
    # the inputs watched: with the champion's vocabulary when one model serves every series
    one = len(forecasters) == 1 and len(forecasters[0][1]) == len(panel.series)
    vocab = forecasters[0][0].vocab if one else Vocabulary.fit(panel, settings.country)
    ref = _feature_values(
        panel,
        panel.day_index(win.reference_start),
        panel.day_index(win.reference_end),
        vocab,
        forecasters,
    )
    cur = _feature_values(
        panel,
        panel.day_index(win.current_start),
        panel.day_index(win.current_end),
        vocab,
        forecasters,
    )
    n_ref_days = (win.reference_end - win.reference_start).days + 1
    n_cur_days = (win.current_end - win.current_start).days + 1
    for name in ("price", "units"):  # relative to each series' reference median
        series_ref = ref[name].reshape(len(panel.series), n_ref_days)
        with np.errstate(all="ignore"):
            median = np.nanmedian(np.where(series_ref > 0, series_ref, np.nan), axis=1)
        ref[f"{name}_index"] = (series_ref / median[:, None]).ravel()
        cur[f"{name}_index"] = (
            cur[name].reshape(len(panel.series), n_cur_days) / median[:, None]
        ).ravel()
        del ref[name], cur[name]
    rows = []
    for feature in sorted(ref):
        value = psi(ref[feature], cur[feature])
        enough = np.isfinite(cur[feature]).sum() >= MIN_DRIFT_SAMPLES
        rows.append(
            {
                "evaluated_on": evaluated_on,
                "feature": feature,
                "psi": 0.0 if not np.isfinite(value) else value,
                "drifted": bool(
                    enough and np.isfinite(value) and value > settings.drift_psi_threshold
                ),
                "reference_start": win.reference_start,
                "reference_end": win.reference_end,
                "current_start": win.current_start,
                "current_end": win.current_end,
            }
        )
    with engine.begin() as conn:
        conn.execute(delete(drift_reports).where(drift_reports.c.evaluated_on == evaluated_on))
        conn.execute(insert(drift_reports), rows)
    return pd.DataFrame(rows)


def run_health(
    engine: Engine,
    now: dt.datetime | None = None,
    stuck_after: dt.timedelta = dt.timedelta(hours=6),
) -> list[str]:
    """Problems with the pipeline runs themselves: loads or flows stuck in `running` (a killed
    process), failures in the last day, and runs much slower than usual."""
    from fournil.db.schema import etl_runs, pipeline_runs

    now = now or dt.datetime.now(dt.UTC)
    problems = []
    with engine.connect() as conn:
        runs = pd.DataFrame(
            conn.execute(
                select(
                    pipeline_runs.c.flow,
                    pipeline_runs.c.started_at,
                    pipeline_runs.c.finished_at,
                    pipeline_runs.c.status,
                    pipeline_runs.c.error,
                ).order_by(pipeline_runs.c.started_at)
            )
            .mappings()
            .all()
        )
        stuck_loads = conn.execute(
            select(etl_runs.c.run_id, etl_runs.c.source, etl_runs.c.started_at).where(
                etl_runs.c.status == "running"
            )
        ).all()
    for run_id, source, started_at in stuck_loads:
        started = started_at if started_at.tzinfo else started_at.replace(tzinfo=dt.UTC)
        if now - started > stuck_after:
            problems.append(
                f"ETL run {run_id} ({source}) has been 'running' since {started:%Y-%m-%d %H:%M} UTC"
            )
    if runs.empty:
        return problems
    runs["started_at"] = pd.to_datetime(runs["started_at"], utc=True)
    runs["finished_at"] = pd.to_datetime(runs["finished_at"], utc=True)
    ts_now = pd.Timestamp(now)
    for row in runs[runs["status"] == "running"].itertuples():
        if ts_now - pd.Timestamp(str(row.started_at)) > pd.Timedelta(stuck_after):
            problems.append(
                f"{row.flow} run started {row.started_at:%Y-%m-%d %H:%M} UTC never finished"
            )
    recent_failures = runs[
        (runs["status"] == "failed") & (runs["started_at"] > ts_now - pd.Timedelta(days=1))
    ]
    for row in recent_failures.itertuples():
        problems.append(f"{row.flow} failed at {row.started_at:%Y-%m-%d %H:%M} UTC: {row.error}")
    done = runs[runs["status"] == "success"].copy()
    done["seconds"] = (done["finished_at"] - done["started_at"]).dt.total_seconds()
    for flow_name, part in done.groupby("flow"):
        if len(part) >= 4:
            last, usual = part["seconds"].iloc[-1], part["seconds"].iloc[:-1].tail(10).median()
            if usual > 0 and last > 3 * usual and last > 60:
                problems.append(f"{flow_name} took {last:.0f}s, usually {usual:.0f}s")
    return problems
