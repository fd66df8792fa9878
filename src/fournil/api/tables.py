"""Replicated serving tables (seed 002): what the API reads on every request, held in memory.

- the catalogue: known stores and products, and the last day with sales;
- recent sales history: a dense panel of every series over the last `WINDOW` +
  `FOURNIL_API_HISTORY_DAYS` days, so an online prediction needs no warehouse read;
- the newest batch forecast per (store, product, target date), for target dates within
  `FOURNIL_API_SERVING_DAYS` of the furthest one.

A background thread reads a cheap fingerprint of the warehouse (successful ETL runs, newest
forecast write) every `FOURNIL_API_TABLES_POLL_SECONDS`, and rebuilds the tables when it moved.
Readers take one `Snapshot` reference and use only it, so a rebuild never shows them a mix of old
and new tables. Requests outside what memory holds are answered from the warehouse, with the same
result (tests/integration/test_api.py checks the two paths agree).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DBAPIError, OperationalError

from fournil.api.errors import describe
from fournil.api.polling import poll
from fournil.db.migrate import SchemaNotCurrentError, require_current
from fournil.db.schema import etl_runs, forecasts, products, stores
from fournil.features import WINDOW
from fournil.forecast import last_sales_date
from fournil.panel import Panel, load_panel
from fournil.settings import Settings

log = logging.getLogger("fournil.api")

FORECAST_COLUMNS = (
    "store_id",
    "product_id",
    "target_date",
    "forecast_date",
    "horizon",
    "yhat",
    "yhat_lower",
    "yhat_upper",
    "model_name",
    "model_version",
)


def _newest_forecasts(conditions: list[Any]) -> Any:
    """For each (store, product, target date) matching `conditions`: the newest forecast."""
    rank = func.row_number().over(
        partition_by=[forecasts.c.store_id, forecasts.c.product_id, forecasts.c.target_date],
        order_by=[forecasts.c.forecast_date.desc(), forecasts.c.created_at.desc()],
    )
    ranked = select(forecasts, rank.label("rank")).where(*conditions).subquery()
    return ranked, select(*(ranked.c[c] for c in FORECAST_COLUMNS)).where(ranked.c.rank == 1)


def _item(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for name in ("target_date", "forecast_date"):
        out[name] = str(out[name])
    for name in ("yhat_lower", "yhat_upper"):
        value = out[name]
        out[name] = None if value is None or math.isnan(value) else float(value)
    out["yhat"] = float(out["yhat"])
    out["model_version"] = str(out["model_version"])
    return out


@dataclass(frozen=True)
class PageQuery:
    """GET /v1/forecasts: a store (and maybe one product), a target date range, a page."""

    store_id: int
    product_id: int | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    page: int = 1
    page_size: int = 100


def forecasts_from_warehouse(engine: Engine, q: PageQuery) -> tuple[list[dict[str, Any]], int]:
    """One page of newest forecasts, ordered by product and target date, and the total."""
    conditions = [forecasts.c.store_id == q.store_id]
    if q.product_id is not None:
        conditions.append(forecasts.c.product_id == q.product_id)
    if q.start:
        conditions.append(forecasts.c.target_date >= q.start)
    if q.end:
        conditions.append(forecasts.c.target_date <= q.end)
    ranked, newest = _newest_forecasts(conditions)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(newest.subquery())).scalar_one()
        rows = conn.execute(
            newest.order_by(ranked.c.product_id, ranked.c.target_date)
            .limit(q.page_size)
            .offset((q.page - 1) * q.page_size)
        ).mappings()
        return [_item(dict(r)) for r in rows], int(total)


@dataclass(frozen=True)
class ForecastTable:
    """Newest forecasts for every target date >= `window_start`, sorted by store, product and
    target date, as columns. `complete` when the warehouse holds nothing older."""

    window_start: dt.date | None
    complete: bool
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    by_store: dict[int, tuple[int, int]] = field(default_factory=dict)
    by_pair: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def load(cls, engine: Engine, serving_days: int) -> ForecastTable:
        with engine.connect() as conn:
            oldest, furthest = conn.execute(
                select(func.min(forecasts.c.target_date), func.max(forecasts.c.target_date))
            ).one()
        if furthest is None:
            return cls(window_start=None, complete=True)
        window_start = furthest - dt.timedelta(days=serving_days - 1)
        ranked, newest = _newest_forecasts([forecasts.c.target_date >= window_start])
        with engine.connect() as conn:
            cursor = conn.execute(
                newest.order_by(ranked.c.store_id, ranked.c.product_id, ranked.c.target_date)
            ).cursor
            frame = pd.DataFrame.from_records(
                cursor.fetchall() if cursor is not None else [], columns=list(FORECAST_COLUMNS)
            )
        columns = {
            "store_id": frame["store_id"].to_numpy(np.int64),
            "product_id": frame["product_id"].to_numpy(np.int64),
            "target_date": pd.to_datetime(frame["target_date"]).to_numpy("datetime64[D]"),
            "forecast_date": pd.to_datetime(frame["forecast_date"]).to_numpy("datetime64[D]"),
            "horizon": frame["horizon"].to_numpy(np.int64),
            "yhat": frame["yhat"].to_numpy(np.float64),
            "yhat_lower": frame["yhat_lower"].to_numpy(np.float64, na_value=np.nan),
            "yhat_upper": frame["yhat_upper"].to_numpy(np.float64, na_value=np.nan),
            "model_name": frame["model_name"].astype(str).to_numpy(object),
            "model_version": frame["model_version"].astype(str).to_numpy(object),
        }
        by_store: dict[int, tuple[int, int]] = {}
        by_pair: dict[tuple[int, int], tuple[int, int]] = {}
        keys = frame[["store_id", "product_id"]].to_numpy(np.int64)
        if len(keys):
            pair_starts = np.flatnonzero(np.r_[True, (np.diff(keys, axis=0) != 0).any(axis=1)])
            bounds = np.r_[pair_starts, len(keys)]
            for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
                store, product = int(keys[lo, 0]), int(keys[lo, 1])
                by_pair[(store, product)] = (lo, hi)
                first, _ = by_store.get(store, (lo, hi))
                by_store[store] = (first, hi)
        return cls(
            window_start=window_start,
            complete=oldest >= window_start,
            columns=columns,
            by_store=by_store,
            by_pair=by_pair,
        )

    def covers(self, start: dt.date | None) -> bool:
        """Whether a query from `start` (None: all dates) can be answered from memory."""
        if self.complete:
            return True
        return self.window_start is not None and start is not None and start >= self.window_start

    def page(self, q: PageQuery) -> tuple[list[dict[str, Any]], int]:
        """Same answer as `forecasts_from_warehouse`, from memory (check `covers` first)."""
        if q.product_id is None:
            lo, hi = self.by_store.get(q.store_id, (0, 0))
        else:
            lo, hi = self.by_pair.get((q.store_id, q.product_id), (0, 0))
        if hi == lo:
            return [], 0
        targets = self.columns["target_date"][lo:hi]
        keep = np.ones(hi - lo, dtype=bool)
        if q.start is not None:
            keep &= targets >= np.datetime64(q.start, "D")
        if q.end is not None:
            keep &= targets <= np.datetime64(q.end, "D")
        rows = np.flatnonzero(keep) + lo
        total = len(rows)
        rows = rows[(q.page - 1) * q.page_size : q.page * q.page_size]
        if not len(rows):
            return [], total
        c = self.columns
        lower, upper = c["yhat_lower"][rows], c["yhat_upper"][rows]
        values = zip(
            c["store_id"][rows].tolist(),
            c["product_id"][rows].tolist(),
            np.datetime_as_string(c["target_date"][rows]).tolist(),
            np.datetime_as_string(c["forecast_date"][rows]).tolist(),
            c["horizon"][rows].tolist(),
            c["yhat"][rows].tolist(),
            [None if math.isnan(v) else v for v in lower.tolist()],
            [None if math.isnan(v) else v for v in upper.tolist()],
            c["model_name"][rows].tolist(),
            c["model_version"][rows].tolist(),
            strict=True,
        )
        return [dict(zip(FORECAST_COLUMNS, v, strict=True)) for v in values], total


@dataclass(frozen=True)
class Snapshot:
    """One consistent state of the serving tables."""

    fingerprint: tuple[Any, ...]
    stores: frozenset[int]
    products: frozenset[int]
    last_day: dt.date | None
    history: Panel | None  # every series, from `history_start` to `last_day`
    series_index: dict[tuple[int, int], int]
    forecasts: ForecastTable
    built_seconds: float
    absent_days: str | None = None  # settings.absent_days, for windows loaded on demand
    built_at: float = 0.0  # time.time() when built

    def history_covers(self, origin: dt.date) -> bool:
        """Whether the panel holds the WINDOW days of history up to `origin`."""
        return (
            self.history is not None
            and self.history.start <= origin - dt.timedelta(days=WINDOW - 1)
            and origin <= self.history.end
        )

    def history_covers_all(self, origins: list[dt.date]) -> bool:
        return self.history is not None and all(self.history_covers(o) for o in origins)


EMPTY = Snapshot(
    fingerprint=(),
    stores=frozenset(),
    products=frozenset(),
    last_day=None,
    history=None,
    series_index={},
    forecasts=ForecastTable(window_start=None, complete=False),
    built_seconds=0.0,
)


class ServingTables:
    """The current `Snapshot`, rebuilt when the warehouse changes."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine, self.settings = engine, settings
        self.snapshot: Snapshot = EMPTY
        self.error: str | None = None  # the last refresh's error, for logs
        self.public_error: str | None = None  # the same, safe to show anyone
        self.failing_since: float | None = None  # time.time() of the first failed refresh
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.on_build: list[Any] = []  # callbacks(snapshot), for metrics

    def fingerprint(self) -> tuple[Any, ...]:
        """Moves whenever an ETL run succeeds or forecasts are written (both indexed reads)."""
        succeeded = etl_runs.c.status == "success"
        with self.engine.connect() as conn:
            return tuple(
                conn.execute(
                    select(
                        select(func.count())
                        .select_from(etl_runs)
                        .where(succeeded)
                        .scalar_subquery(),
                        select(func.max(etl_runs.c.finished_at)).where(succeeded).scalar_subquery(),
                        select(func.max(forecasts.c.created_at)).scalar_subquery(),
                        select(func.count()).select_from(stores).scalar_subquery(),
                        select(func.count()).select_from(products).scalar_subquery(),
                    )
                ).one()
            )

    def build(self, fingerprint: tuple[Any, ...]) -> Snapshot:
        started = time.perf_counter()
        with self.engine.connect() as conn:
            store_ids = frozenset(conn.execute(select(stores.c.store_id)).scalars())
            product_ids = frozenset(conn.execute(select(products.c.product_id)).scalars())
        last_day = last_sales_date(self.engine)
        history, index = None, {}
        if last_day is not None:
            start = last_day - dt.timedelta(days=WINDOW - 1 + self.settings.api.history_days)
            try:
                history = load_panel(
                    self.engine,
                    start=start,
                    end=last_day,
                    absent_days=self.settings.absent_days,
                )
                index = history.series_rows()
            except ValueError:  # no sales in that window
                history = None
        table = ForecastTable.load(self.engine, self.settings.api.serving_days)
        return Snapshot(
            fingerprint=fingerprint,
            stores=store_ids,
            products=product_ids,
            last_day=last_day,
            history=history,
            series_index=index,
            forecasts=table,
            built_seconds=time.perf_counter() - started,
            absent_days=self.settings.absent_days,
            built_at=time.time(),
        )

    def refresh(self) -> bool:
        """Rebuild if the warehouse changed. True if rebuilt. Never raises: on a warehouse error
        the current tables stay in service. Before the first load the schema must be current
        (the API never migrates: `fournil db upgrade` does)."""
        with self._lock:
            try:
                if not self.snapshot.fingerprint:
                    require_current(self.engine)
                fingerprint = self.fingerprint()
                if fingerprint == self.snapshot.fingerprint:
                    self._ok()
                    return False
                snapshot = self.build(fingerprint)
            except Exception as exc:
                self._failed(exc)
                return False
            self.snapshot = snapshot  # one reference swap
            self._ok()
        log.info(
            "serving tables rebuilt in %.2f s: %d series, %d forecasts",
            snapshot.built_seconds,
            len(snapshot.series_index),
            len(snapshot.forecasts.columns.get("yhat", ())),
        )
        for callback in self.on_build:
            callback(snapshot)
        return True

    def _failed(self, exc: Exception) -> None:
        error = describe(exc)
        if error != self.error:  # log a change, not every poll of an outage
            log.warning("serving tables not refreshed (serving what is loaded): %s", error)
        self.error = error
        if isinstance(exc, SchemaNotCurrentError):
            self.public_error = "warehouse schema not current"
        elif isinstance(exc, OperationalError | DBAPIError):
            self.public_error = "warehouse unreachable"
        else:
            self.public_error = "warehouse read failed"
        if self.failing_since is None:
            self.failing_since = time.time()

    def _ok(self) -> None:
        if self.error is not None:
            log.info("serving tables: warehouse reachable again")
        self.error = self.public_error = self.failing_since = None

    def poll_seconds(self) -> float:
        """The polling interval: every second until loaded or while failing (to notice the
        warehouse's return at once), else `FOURNIL_API_TABLES_POLL_SECONDS`."""
        if not self.snapshot.fingerprint or self.error is not None:
            return min(1.0, self.settings.api.tables_poll_seconds)
        return self.settings.api.tables_poll_seconds

    def start_polling(self) -> None:
        poll(self.poll_seconds, self.refresh, self._stop, "tables-poller")

    def stop(self) -> None:
        self._stop.set()
