"""The panel read from PostgreSQL by COPY equals the one read row by row (SQLite's path), for
every window and store filter the callers use: training, forecasts, the API and monitoring
must not see different histories depending on the database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, update

from fournil.data.generator import GeneratedData
from fournil.data_report import data_report
from fournil.db import make_engine
from fournil.db.schema import sales
from fournil.etl.runner import run_etl
from fournil.panel import Panel, _load_panel_rows, load_panel
from fournil.settings import get_settings


@pytest.fixture
def loaded(pg_url: str, small_drop: GeneratedData) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    assert run_etl(small_drop.out_dir, engine, get_settings()).ok
    with engine.begin() as conn:  # a few unreported stock-outs: NULL must read as NaN
        conn.execute(update(sales).where(sales.c.store_id == 2).values(stock_out=None))
    yield engine
    engine.dispose()


def _assert_same(got: Panel, want: Panel) -> None:
    assert got.start == want.start and got.n_days == want.n_days
    pd.testing.assert_frame_equal(got.series, want.series)
    for name in ("units", "promo", "stock_out", "price", "siblings_on_promo"):
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype == np.float32, name
        np.testing.assert_array_equal(a, b, err_msg=name)  # NaN where NaN


@pytest.mark.parametrize(
    ("start_days", "end_days", "store_ids"),
    [(None, None, None), (-40, -5, None), (-30, None, [1, 3]), (None, -60, [2])],
)
def test_the_copy_path_reads_the_same_panel_as_the_row_path(
    loaded: Engine,
    small_drop: GeneratedData,
    start_days: int | None,
    end_days: int | None,
    store_ids: list[int] | None,
) -> None:
    def day(offset: int | None) -> dt.date | None:
        return None if offset is None else small_drop.end + dt.timedelta(days=offset)

    start, end = day(start_days), day(end_days)
    got = load_panel(loaded, start=start, end=end, store_ids=store_ids)
    _assert_same(got, _load_panel_rows(loaded, start, end, store_ids))
    store_two = got.series["store_id"].to_numpy() == 2
    assert store_two.any() == (store_ids is None or 2 in store_ids)
    assert np.isnan(got.stock_out[store_two]).all()  # NULL reads as NaN
    if (~store_two).any():
        assert not np.isnan(got.stock_out[~store_two]).all()  # reported ones are kept
    assert np.isfinite(got.units).mean() > 0.5  # it did read sales


def test_an_empty_window_says_so(loaded: Engine, small_drop: GeneratedData) -> None:
    with pytest.raises(ValueError, match="no sales in the requested window"):
        load_panel(loaded, start=small_drop.end + dt.timedelta(days=10))


def test_an_export_of_sale_days_only_reads_as_the_full_history_when_told(
    warehouse: Engine, small_drop: GeneratedData, tmp_path: Path
) -> None:
    """A `GROUP BY` export lists only days with sales: with FOURNIL_ABSENT_DAYS=zero its
    absent days are the zero days it left out; unset, they are unknown and training warns."""
    for path in (small_drop.stores_path, small_drop.products_path):
        assert run_etl(path, warehouse, get_settings()).ok
    reference = pd.read_csv(small_drop.sales_path)
    # a slow-selling range: one day in five without a sale (the bakery chain sells daily)
    quiet = np.random.default_rng(1).random(len(reference)) < 0.2
    reference.loc[quiet, "units_sold"] = 0
    sparse = tmp_path / "sales_export.csv"
    reference[reference["units_sold"] > 0].to_csv(sparse, index=False)
    assert run_etl(sparse, warehouse, get_settings()).ok
    end = dt.date.fromisoformat(str(reference["date"].max()))
    as_zero = load_panel(warehouse, end=end, absent_days="zero")
    unknown = load_panel(warehouse, end=end)
    index = as_zero.series_rows()
    for (store, product), rows in reference.groupby(["store_id", "product_id"]):
        row = index[(int(str(store)), int(str(product)))]
        first = (dt.date.fromisoformat(str(rows["date"].min())) - as_zero.start).days
        sold_first = rows[rows["units_sold"] > 0]["date"].min()
        start = (dt.date.fromisoformat(str(sold_first)) - as_zero.start).days
        want = np.full(as_zero.n_days, np.nan, np.float32)
        days = [(dt.date.fromisoformat(str(d)) - as_zero.start).days for d in rows["date"]]
        want[days] = rows["units_sold"].to_numpy(np.float32)
        # the true history, from the first day with a sale on (before it, nothing says zero)
        np.testing.assert_array_equal(as_zero.units[row, start:], np.nan_to_num(want[start:]))
        assert first <= start
    assert as_zero.filled_days == int(np.isnan(unknown.units).sum() - np.isnan(as_zero.units).sum())
    report = data_report(unknown, None)
    assert report.absent_days > 0 and report.warnings()
    told = data_report(as_zero, "zero")
    assert not any("FOURNIL_ABSENT_DAYS" in w for w in told.warnings())
    # the days it left out have no price or promo: both now tell a sale day, so both leak
    assert told.leaks == ("price", "promo")
