from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
import pytest

from fournil.data.generator import GeneratedData, GeneratorConfig, batch_size, generate
from tests.conftest import END_DATE


def _sales(data: GeneratedData) -> pd.DataFrame:
    frame = pd.read_csv(data.sales_path, parse_dates=["date"], dtype={"stock_out": str})
    frame["stock_out"] = frame.stock_out.str.lower().map({"true": True, "false": False})
    return frame.merge(
        pd.read_parquet(data.expected_path).assign(date=lambda f: pd.to_datetime(f.date)),
        on=["date", "store_id", "product_id"],
    )


@pytest.fixture(scope="module")
def year(tmp_path_factory: pytest.TempPathFactory) -> GeneratedData:
    cfg = GeneratorConfig(
        stores=12, products=12, days=400, end_date=END_DATE, seed=5, new_store_share=0.3
    )
    return generate(cfg, tmp_path_factory.mktemp("year"))


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    cfg = GeneratorConfig(stores=3, products=4, days=60, end_date=END_DATE, seed=1)
    a, b = generate(cfg, tmp_path / "a"), generate(cfg, tmp_path / "b")
    c = generate(
        GeneratorConfig(stores=3, products=4, days=60, end_date=END_DATE, seed=2), tmp_path / "c"
    )
    assert a.sales_path.read_bytes() == b.sales_path.read_bytes()
    assert a.stores_path.read_bytes() == b.stores_path.read_bytes()
    assert a.sales_path.read_bytes() != c.sales_path.read_bytes()


def test_output_does_not_depend_on_the_number_of_stores_generated(tmp_path: Path) -> None:
    few = generate(
        GeneratorConfig(stores=2, products=3, days=40, end_date=END_DATE), tmp_path / "few"
    )
    more = generate(
        GeneratorConfig(stores=5, products=3, days=40, end_date=END_DATE), tmp_path / "more"
    )
    more_rows = pd.read_csv(more.sales_path, dtype=str, keep_default_na=False)
    first_two = more_rows[more_rows.store_id.isin(["1", "2"])].reset_index(drop=True)
    few_rows = pd.read_csv(few.sales_path, dtype=str, keep_default_na=False)
    assert len(more_rows) > len(few_rows)
    pd.testing.assert_frame_equal(few_rows, first_two)


def test_every_sale_has_its_expected_demand(year: GeneratedData) -> None:
    sales = pd.read_csv(year.sales_path)
    expected = pd.read_parquet(year.expected_path)
    assert len(sales) == len(expected) == year.rows
    assert (expected.expected_units > 0).all()


def test_dates_span_the_period_and_shops_close_on_christmas(year: GeneratedData) -> None:
    sales = pd.read_csv(year.sales_path, parse_dates=["date"])
    assert sales.date.max().date() == END_DATE
    assert sales.date.min().date() == END_DATE - dt.timedelta(days=399)
    assert not ((sales.date.dt.month == 12) & (sales.date.dt.day == 25)).any()


def test_new_stores_sell_nothing_before_opening(year: GeneratedData) -> None:
    stores = pd.read_csv(year.stores_path, parse_dates=["opened_on"])
    sales = pd.read_csv(year.sales_path, parse_dates=["date"])
    new = stores[stores.opened_on > pd.Timestamp(year.start)]
    assert len(new) >= 1
    first_sale = sales.groupby("store_id").date.min()
    for store in new.itertuples():
        assert first_sale[cast(int, store.store_id)] >= store.opened_on


def test_some_days_are_missing(year: GeneratedData) -> None:
    sales = pd.read_csv(year.sales_path, parse_dates=["date"])
    stores = pd.read_csv(year.stores_path, parse_dates=["opened_on"])
    days_present = sales.groupby("store_id").date.nunique()
    opened_on = stores.set_index("store_id").opened_on
    # pandas-stubs: Series.clip() bounds do not accept a Timestamp
    opened = opened_on.clip(lower=pd.Timestamp(year.start))  # type: ignore[call-overload]
    possible = (pd.Timestamp(year.end) - opened).dt.days + 1
    assert (days_present < possible - 1).sum() >= len(stores) // 2  # beyond the closed days


def test_weekly_pattern_by_family(year: GeneratedData) -> None:
    sales = pd.read_csv(year.sales_path, parse_dates=["date"]).merge(
        pd.read_csv(year.products_path), on="product_id"
    )
    sales["weekend"] = sales.date.dt.day_of_week >= 5
    by = sales.groupby(["family", "weekend"]).units_sold.mean().unstack()
    viennoiserie_weekend = cast(float, by.loc["viennoiserie", True])
    viennoiserie_week = cast(float, by.loc["viennoiserie", False])
    snacking_weekend = cast(float, by.loc["snacking", True])
    snacking_week = cast(float, by.loc["snacking", False])
    assert viennoiserie_weekend > 1.3 * viennoiserie_week
    assert snacking_weekend < 0.8 * snacking_week


def test_promotions_lower_the_price_and_lift_demand(year: GeneratedData) -> None:
    frame = _sales(year)
    assert frame.promo.mean() > 0.02
    per_series = (
        frame.groupby(["store_id", "product_id", "promo"])
        .agg(price=("price", "mean"), demand=("expected_units", "mean"))
        .unstack()
    )
    per_series = per_series.dropna()
    assert (per_series["price"][True] < per_series["price"][False]).all()
    assert (per_series["demand"][True] > per_series["demand"][False]).mean() > 0.9


def test_stock_outs_censor_sales_and_are_unknown_for_some_stores(year: GeneratedData) -> None:
    frame = _sales(year)
    reported = frame.dropna(subset=["stock_out"])
    assert 0 < len(reported) < len(frame)  # some stores do not report stock-outs
    assert 0.02 < reported.stock_out.astype(bool).mean() < 0.12
    # censoring: nobody sells more than was baked, although demand sometimes exceeds it
    baked = batch_size(frame.expected_units.to_numpy(), 20.0)
    assert (frame.units_sold.to_numpy() <= baked).all()
    out = reported[reported.stock_out.astype(bool)]
    assert (out.units_sold > out.expected_units).mean() > 0.5  # a normal batch, sold out


def test_noise_has_the_configured_scale(tmp_path: Path) -> None:
    data = generate(
        GeneratorConfig(
            stores=6, products=6, days=300, end_date=END_DATE, seed=3, noise_shape=20.0
        ),
        tmp_path,
    )
    frame = _sales(data)
    frame = frame[frame.stock_out.ne(True)]
    big = frame[frame.expected_units.between(80, 200)]
    lam = big.expected_units.to_numpy()
    resid = big.units_sold.to_numpy() - lam
    # negative binomial: variance = lambda + lambda^2 / shape (censoring shrinks it a little)
    ratio = np.mean(resid**2) / np.mean(lam + lam**2 / 20.0)
    assert 0.6 < ratio < 1.2


def test_bad_rows_are_injected_only_when_asked(tmp_path: Path) -> None:
    clean = generate(
        GeneratorConfig(stores=2, products=3, days=60, end_date=END_DATE), tmp_path / "clean"
    )
    dirty = generate(
        GeneratorConfig(stores=2, products=3, days=60, end_date=END_DATE, bad_row_rate=0.05),
        tmp_path / "dirty",
    )
    assert clean.bad_rows == 0
    assert dirty.bad_rows > 0
    assert dirty.rows == clean.rows + dirty.bad_rows // 7 + (dirty.bad_rows % 7 > 6)


def test_parquet_output(tmp_path: Path) -> None:
    data = generate(
        GeneratorConfig(stores=2, products=2, days=30, end_date=END_DATE, fmt="parquet"), tmp_path
    )
    frame = pd.read_parquet(data.sales_path)
    assert len(frame) == data.rows
    assert list(frame.columns) == [
        "date",
        "store_id",
        "product_id",
        "units_sold",
        "price",
        "promo",
        "stock_out",
    ]


def test_invalid_config_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        GeneratorConfig(stores=0)
    with pytest.raises(ValueError, match="only be injected into CSV"):
        GeneratorConfig(fmt="parquet", bad_row_rate=0.1)
