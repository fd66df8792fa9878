"""Raw model inputs for online prediction requests: from the in-memory history when it covers the
requested dates (the common case), else from the warehouse."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from fournil.api.tables import Snapshot
from fournil.features import WINDOW, PanelRequests, raw_frame
from fournil.panel import Panel, load_panel

MAX_HORIZON = 28


class InputError(Exception):
    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


@dataclass(frozen=True)
class Row:
    store_id: int
    product_id: int
    date: dt.date
    price: float | None
    promo: bool | None
    siblings_on_promo: int | None


def check_rows(snapshot: Snapshot, rows: list[Row]) -> list[dt.date]:
    """Each row's forecast origin (the last day of history its features use). Raises InputError
    (404 unknown store, product or series; 422 date outside the forecast window)."""
    if snapshot.last_day is None:
        raise InputError(404, "rows", "the warehouse has no sales yet")
    origins = []
    for i, row in enumerate(rows):
        if row.store_id not in snapshot.stores:
            raise InputError(404, f"rows.{i}.store_id", f"unknown store {row.store_id}")
        if row.product_id not in snapshot.products:
            raise InputError(404, f"rows.{i}.product_id", f"unknown product {row.product_id}")
        origin = min(row.date - dt.timedelta(days=1), snapshot.last_day)
        if (row.date - origin).days > MAX_HORIZON:
            last = snapshot.last_day + dt.timedelta(days=MAX_HORIZON)
            raise InputError(
                422,
                f"rows.{i}.date",
                f"{row.date} is outside the forecast window: at most {last} "
                f"({MAX_HORIZON} days after the last sales day, {snapshot.last_day})",
            )
        if (
            snapshot.history_covers(origin)
            and (row.store_id, row.product_id) not in snapshot.series_index
        ):
            raise _no_history(i, row)
        origins.append(origin)
    return origins


def _no_history(i: int, row: Row) -> InputError:
    return InputError(
        404, f"rows.{i}", f"store {row.store_id} has no sales history for product {row.product_id}"
    )


def _frame(
    panel: Panel, index: dict[tuple[int, int], int], rows: list[Row], origins: list[dt.date]
) -> pd.DataFrame:
    series_rows = []
    for i, row in enumerate(rows):
        found = index.get((row.store_id, row.product_id))
        if found is None:
            raise _no_history(i, row)
        series_rows.append(found)
    requests = PanelRequests(
        series_rows=np.asarray(series_rows, np.int64),
        origins=np.asarray([panel.day_index(o) for o in origins], np.int64),
        horizons=np.asarray([(r.date - o).days for r, o in zip(rows, origins, strict=True)]),
        per_pair=True,
    )
    raw = raw_frame(panel, requests)
    raw["price"] = [np.nan if r.price is None else float(r.price) for r in rows]
    raw["promo"] = [np.nan if r.promo is None else float(r.promo) for r in rows]
    raw["siblings_on_promo"] = [
        np.nan if r.siblings_on_promo is None else float(r.siblings_on_promo) for r in rows
    ]
    return raw


def raw_inputs(
    engine: Engine, snapshot: Snapshot, rows: list[Row], origins: list[dt.date] | None = None
) -> pd.DataFrame:
    """One raw-input row per request row (same order). Raises InputError (404 or 422)."""
    if origins is None:
        origins = check_rows(snapshot, rows)
    if snapshot.history_covers_all(origins):
        assert snapshot.history is not None
        return _frame(snapshot.history, snapshot.series_index, rows, origins)
    first = min(origins) - dt.timedelta(days=WINDOW - 1)
    try:
        panel = load_panel(
            engine,
            start=first,
            end=max(origins),
            store_ids=sorted({r.store_id for r in rows}),
            absent_days=snapshot.absent_days,
        )
    except ValueError:  # no sales at all in the window before those dates
        raise InputError(
            404, "rows", f"no sales history in the {WINDOW} days before the requested dates"
        ) from None
    return _frame(panel, panel.series_rows(), rows, origins)
