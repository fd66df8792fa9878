"""Raw model inputs for online prediction requests, read from the warehouse history."""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from fournil.db.schema import products, stores
from fournil.features import WINDOW, PanelRequests, raw_frame
from fournil.forecast import last_sales_date
from fournil.panel import load_panel

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


class Catalogue:
    """Known stores and products and the last day with sales, refreshed every minute."""

    def __init__(self, engine: Engine, ttl: float = 60.0) -> None:
        self.engine, self.ttl = engine, ttl
        self._at = 0.0
        self._lock = threading.Lock()
        self.stores: frozenset[int] = frozenset()
        self.products: frozenset[int] = frozenset()
        self.last_day: dt.date | None = None

    def fresh(self) -> Catalogue:
        with self._lock:
            if time.monotonic() - self._at > self.ttl:
                with self.engine.connect() as conn:
                    self.stores = frozenset(conn.execute(select(stores.c.store_id)).scalars())
                    self.products = frozenset(conn.execute(select(products.c.product_id)).scalars())
                self.last_day = last_sales_date(self.engine)
                self._at = time.monotonic()
        return self


def raw_inputs(engine: Engine, catalogue: Catalogue, rows: list[Row]) -> pd.DataFrame:
    """One raw-input row per request row (same order). Raises InputError (404 or 422)."""
    known = catalogue.fresh()
    if known.last_day is None:
        raise InputError(404, "store_id", "the warehouse has no sales yet")
    origins = []
    for i, row in enumerate(rows):
        if row.store_id not in known.stores:
            raise InputError(404, f"rows.{i}.store_id", f"unknown store {row.store_id}")
        if row.product_id not in known.products:
            raise InputError(404, f"rows.{i}.product_id", f"unknown product {row.product_id}")
        origin = min(row.date - dt.timedelta(days=1), known.last_day)
        horizon = (row.date - origin).days
        if horizon > MAX_HORIZON:
            last = known.last_day + dt.timedelta(days=MAX_HORIZON)
            raise InputError(
                422,
                f"rows.{i}.date",
                f"{row.date} is outside the forecast window: at most {last} "
                f"({MAX_HORIZON} days after the last sales day, {known.last_day})",
            )
        origins.append(origin)
    first = min(origins) - dt.timedelta(days=WINDOW - 1)
    try:
        panel = load_panel(
            engine, start=first, end=max(origins), store_ids=sorted({r.store_id for r in rows})
        )
    except ValueError:  # no sales at all in the window before those dates
        raise InputError(
            404, "rows", f"no sales history in the {WINDOW} days before the requested dates"
        ) from None
    index = {
        (int(s), int(p)): i
        for i, (s, p) in enumerate(
            zip(panel.series["store_id"], panel.series["product_id"], strict=True)
        )
    }
    series_rows = []
    for i, row in enumerate(rows):
        found = index.get((row.store_id, row.product_id))
        if found is None:
            raise InputError(
                404,
                f"rows.{i}",
                f"store {row.store_id} has no sales history for product {row.product_id}",
            )
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
