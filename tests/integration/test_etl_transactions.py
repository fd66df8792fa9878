"""Loads are transactional (a failure or a kill changes nothing) and idempotent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select

from fournil.data.generator import GeneratedData, GeneratorConfig, generate
from fournil.db.schema import sales
from fournil.etl import runner
from fournil.etl.runner import load_file, run_etl
from fournil.settings import get_settings
from tests.conftest import END_DATE
from tests.integration.helpers import assert_reconciles, counts, reasons, run_row


def test_rerunning_the_same_drop_changes_nothing(
    warehouse: Engine, small_drop: GeneratedData
) -> None:
    first = run_etl(small_drop.out_dir, warehouse, get_settings())
    assert first.ok
    after_first = counts(warehouse)
    second = run_etl(small_drop.out_dir, warehouse, get_settings())
    assert second.ok
    assert counts(warehouse) == after_first  # no duplicates, same totals
    for result in second.files:
        assert result.rows_inserted == result.rows_updated == 0
        assert result.rows_unchanged == result.rows_read
        assert_reconciles(warehouse, result)


def test_a_corrected_file_updates_only_the_changed_rows(
    warehouse: Engine, tmp_path: Path, small_drop: GeneratedData
) -> None:
    assert run_etl(small_drop.out_dir, warehouse, get_settings()).ok
    frame = pd.read_csv(small_drop.sales_path, dtype=str, keep_default_na=False)
    frame.loc[[3, 10, 42], "units_sold"] = "999"
    frame.loc[7, "price"] = "9.99"
    corrected = tmp_path / "sales_corrected.csv"
    frame.to_csv(corrected, index=False)
    result = load_file(warehouse, corrected, "sales", "fix", get_settings())
    assert (result.rows_updated, result.rows_inserted) == (4, 0)
    assert result.rows_unchanged == len(frame) - 4
    with warehouse.connect() as conn:
        n = conn.execute(select(sales.c.units_sold).where(sales.c.units_sold == 999)).all()
        assert len(n) == 3
        row = conn.execute(
            select(sales.c.etl_run_id, sales.c.price).where(
                sales.c.store_id == int(frame["store_id"].iloc[7]),
                sales.c.product_id == int(frame["product_id"].iloc[7]),
                sales.c.sale_date == pd.Timestamp(frame["date"].iloc[7]).date(),
            )
        ).one()
        assert row.price == 9.99 and row.etl_run_id == result.run_id


def test_a_failure_midway_leaves_the_warehouse_unchanged(
    warehouse: Engine, small_drop: GeneratedData, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_etl(small_drop.stores_path, warehouse, get_settings()).ok
    assert run_etl(small_drop.products_path, warehouse, get_settings()).ok
    before = counts(warehouse)
    original_write = runner._FileLoad._write

    def write_then_fail(self: runner._FileLoad, *args: object) -> None:
        original_write(self, *args)  # type: ignore[arg-type]
        inside = self.conn.execute(select(func.count()).select_from(sales)).scalar_one()
        assert inside > 0  # rows are in the warehouse, inside the transaction...
        raise ConnectionError("server closed the connection unexpectedly\nmore details")

    monkeypatch.setattr(runner._FileLoad, "_write", write_then_fail)
    result = load_file(warehouse, small_drop.sales_path, "sales", "t", get_settings())
    assert result.status == "failed"
    assert result.error == "ConnectionError: server closed the connection unexpectedly"
    assert counts(warehouse) == before  # ...and rolled back
    row = run_row(warehouse, result.run_id)
    assert row["status"] == "failed" and row["rows_inserted"] == 0
    assert_reconciles(warehouse, result)


def test_a_killed_load_leaves_the_warehouse_unchanged(warehouse_url: str, tmp_path: Path) -> None:
    drop = generate(
        GeneratorConfig(stores=6, products=8, days=400, end_date=END_DATE, seed=2),
        tmp_path / "drop",
    )
    env = {
        **os.environ,
        "DATABASE_URL": warehouse_url,
        "FOURNIL_ETL_CHUNK_ROWS": "2000",
        "FOURNIL_HOME": str(tmp_path / "home"),
    }
    cli = [sys.executable, "-m", "fournil"]
    masters = subprocess.run(
        [*cli, "etl", "run", "--source", str(drop.stores_path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert masters.returncode == 0, masters.stderr
    subprocess.run(
        [*cli, "etl", "run", "--source", str(drop.products_path)],
        env=env,
        check=True,
        capture_output=True,
    )
    from fournil.db import make_engine

    engine = make_engine(warehouse_url)
    before = counts(engine)
    proc = subprocess.Popen(
        [*cli, "-v", "etl", "run", "--source", str(drop.sales_path)],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    seen = ""
    while "sales.csv: chunk 3," not in seen and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
    assert "sales.csv: chunk 3," in seen, seen
    proc.send_signal(signal.SIGKILL)  # midway: chunks staged, nothing committed
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert counts(engine) == before
    # and the next run loads everything, once
    rerun = load_file(engine, drop.sales_path, "sales", "after-kill", get_settings())
    assert rerun.status == "success" and rerun.rows_inserted == drop.rows
    engine.dispose()


def test_duplicates_across_chunks_are_quarantined(
    warehouse: Engine,
    tmp_path: Path,
    small_drop: GeneratedData,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert run_etl(small_drop.stores_path, warehouse, get_settings()).ok
    assert run_etl(small_drop.products_path, warehouse, get_settings()).ok
    frame = pd.read_csv(small_drop.sales_path, dtype=str, keep_default_na=False)
    doubled = pd.concat([frame, frame.iloc[[0, 5]]], ignore_index=True)  # repeats at the end
    path = tmp_path / "sales_twice.csv"
    doubled.to_csv(path, index=False)
    monkeypatch.setenv("FOURNIL_ETL_CHUNK_ROWS", "500")
    from fournil.settings import reset_settings_cache

    reset_settings_cache()
    result = load_file(warehouse, path, "sales", "dup", get_settings())
    assert result.status == "success"
    assert result.rows_rejected == 2 and result.rows_inserted == len(frame)
    assert reasons(warehouse, result.run_id) == [
        (len(frame) + 2, "duplicate date/store_id/product_id: line 2 has the same key"),
        (len(frame) + 3, "duplicate date/store_id/product_id: line 7 has the same key"),
    ]
    assert_reconciles(warehouse, result)


def test_a_drop_overlapping_loaded_days_inserts_only_the_new_keys(
    warehouse: Engine, tmp_path: Path, small_drop: GeneratedData
) -> None:
    """New keys and already-loaded keys in one file take different paths; counts must agree."""
    assert run_etl(small_drop.stores_path, warehouse, get_settings()).ok
    assert run_etl(small_drop.products_path, warehouse, get_settings()).ok
    frame = pd.read_csv(small_drop.sales_path, dtype=str, keep_default_na=False)
    dates = sorted(frame["date"].unique())
    early = frame[frame["date"] < dates[len(dates) // 2]]
    first = tmp_path / "sales_early.csv"
    early.to_csv(first, index=False)
    assert load_file(warehouse, first, "sales", "a", get_settings()).rows_inserted == len(early)
    frame.loc[early.index[:5], "units_sold"] = "777"  # five loaded rows change too
    full = tmp_path / "sales_full.csv"
    frame.to_csv(full, index=False)
    result = load_file(warehouse, full, "sales", "b", get_settings())
    assert result.status == "success", result.error
    assert result.rows_inserted == len(frame) - len(early)
    assert result.rows_updated == 5
    assert result.rows_unchanged == len(early) - 5
    assert counts(warehouse)["sales"] == len(frame)
    with warehouse.connect() as conn:
        by_run = {
            run_id: n
            for run_id, n in conn.execute(
                select(sales.c.etl_run_id, func.count()).group_by(sales.c.etl_run_id)
            )
        }
    assert by_run[result.run_id] == len(frame) - len(early) + 5
    assert_reconciles(warehouse, result)


def test_a_drop_filling_holes_in_loaded_series_loads_in_small_chunks(
    warehouse: Engine, tmp_path: Path, small_drop: GeneratedData
) -> None:
    """Rows inside a loaded series' span (holes) and outside it (new days), over many chunks:
    the holes and the changed rows go through the merge, the rest straight in; the warehouse
    ends up holding exactly the file."""
    base = get_settings()
    settings = base.model_copy(update={"etl": base.etl.model_copy(update={"chunk_rows": 700})})
    assert run_etl(small_drop.stores_path, warehouse, settings).ok
    assert run_etl(small_drop.products_path, warehouse, settings).ok
    frame = pd.read_csv(small_drop.sales_path, dtype=str, keep_default_na=False)
    dates = sorted(frame["date"].unique())
    middle = set(dates[len(dates) // 4 : 3 * len(dates) // 4])
    holey = frame[frame["date"].isin(middle) & (frame.index % 3 != 0)]
    first = tmp_path / "sales_holey.csv"
    holey.to_csv(first, index=False)
    assert load_file(warehouse, first, "sales", "a", settings).rows_inserted == len(holey)
    frame.loc[holey.index[-3:], "price"] = "9.99"  # three loaded rows change
    full = tmp_path / "sales_full.csv"
    frame.to_csv(full, index=False)
    result = load_file(warehouse, full, "sales", "b", settings)
    assert result.status == "success", result.error
    assert (result.rows_inserted, result.rows_updated, result.rows_unchanged) == (
        len(frame) - len(holey),
        3,
        len(holey) - 3,
    )
    with warehouse.connect() as conn:
        stored = pd.read_sql(
            select(sales.c.sale_date, sales.c.store_id, sales.c.product_id, sales.c.price),
            conn,
        )
    assert len(stored) == len(frame)
    assert (stored["price"] == 9.99).sum() >= 3
    assert_reconciles(warehouse, result)
