"""The panel read from PostgreSQL by COPY equals the one read row by row (SQLite's path), for
every window and store filter the callers use: training, forecasts, the API and monitoring
must not see different histories depending on the database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, update

from fournil.data.generator import GeneratedData
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
