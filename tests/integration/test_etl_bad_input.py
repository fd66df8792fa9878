"""Each kind of bad input ends as README documents: nothing lost, counts reconciling."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from fournil.data.generator import GeneratedData
from fournil.etl.runner import load_file, run_etl
from fournil.settings import get_settings
from tests.integration.helpers import (
    SALES_HEADER,
    assert_reconciles,
    counts,
    reasons,
    run_row,
    write,
)

GOOD = "2026-05-01,1,1,10,1.2,0,0"  # store 1 and product 1 exist in small_drop


@pytest.fixture
def loaded(warehouse: Engine, small_drop: GeneratedData) -> Engine:
    """A warehouse with the small chain's masters loaded (no sales yet)."""
    for path in (small_drop.stores_path, small_drop.products_path):
        assert run_etl(path, warehouse, get_settings()).ok
    return warehouse


# (name, file body, expected rejected lines and reason fragments, rows that must load)
ROW_CASES = [
    (
        "non_numeric_units",
        f"{SALES_HEADER}\n{GOOD}\n2026-05-02,1,1,abc,1.2,0,0\n",
        {3: "units_sold: 'abc' is not a whole number"},
        1,
    ),
    (
        "negative_units",
        f"{SALES_HEADER}\n{GOOD}\n2026-05-02,1,1,-5,1.2,0,0\n",
        {3: "units_sold: -5 is negative"},
        1,
    ),
    (
        "duplicate_keys",
        f"{SALES_HEADER}\n{GOOD}\n2026-05-02,1,1,3,1.2,0,0\n{GOOD}\n",
        {4: "duplicate date/store_id/product_id"},
        2,
    ),
    (
        "future_date",
        f"{SALES_HEADER}\n{GOOD}\n2999-01-01,1,1,3,1.2,0,0\n",
        {3: "date: 2999-01-01 is in the future"},
        1,
    ),
    (
        "price_far_from_its_products_base_price",  # euros typed as cents
        f"{SALES_HEADER}\n{GOOD}\n2026-05-02,1,1,3,120,0,0\n",
        {3: "price: 120 is implausible for product 1"},
        1,
    ),
    (
        "unknown_store",
        f"{SALES_HEADER}\n{GOOD}\n2026-05-02,999,1,3,1.2,0,0\n",
        {3: "store_id: 999 is not a known store"},
        1,
    ),
    (
        "malformed_line",
        f"{SALES_HEADER}\n{GOOD}\n2026-05-02,1,1\n\n2026-05-03,1,1,4,1.2,1,0\n",
        {3: "malformed line: expected 7 fields, found 3"},
        2,
    ),
]


@pytest.mark.parametrize(
    ("name", "body", "expected", "loaded_rows"), ROW_CASES, ids=[c[0] for c in ROW_CASES]
)
def test_bad_rows_are_quarantined_with_their_reason(
    loaded: Engine,
    tmp_path: Path,
    name: str,
    body: str,
    expected: dict[int, str],
    loaded_rows: int,
) -> None:
    path = write(tmp_path / f"sales_{name}.csv", body)
    result = load_file(loaded, path, "sales", "test", get_settings())
    assert result.status == "success"
    assert_reconciles(loaded, result)
    got = reasons(loaded, result.run_id)
    assert [line for line, _ in got] == list(expected)
    for (_, reason), fragment in zip(got, expected.values(), strict=True):
        assert fragment in reason
    # nothing lost: every data row is in the warehouse or in the quarantine
    assert counts(loaded)["sales"] == loaded_rows
    assert result.rows_read == loaded_rows + len(expected)


def test_a_row_with_several_problems_lists_them_all(loaded: Engine, tmp_path: Path) -> None:
    path = write(tmp_path / "sales.csv", f"{SALES_HEADER}\n2026-05-02,1,77,-1,0,maybe,\n")
    result = load_file(loaded, path, "sales", "test", get_settings())
    [(_, reason)] = reasons(loaded, result.run_id)
    assert "promo: 'maybe' is not one of 0/1/true/false" in reason  # parse failure first
    result2 = load_file(
        loaded,
        write(tmp_path / "sales2.csv", f"{SALES_HEADER}\n2026-05-02,1,77,-1,0,1,\n"),
        "sales",
        "t",
        get_settings(),
    )
    [(_, reason2)] = reasons(loaded, result2.run_id)
    for part in (
        "product_id: 77 is not a known product",
        "units_sold: -1 is negative",
        "price: 0.0 must be positive",
    ):
        assert part in reason2


FILE_CASES = [
    (
        "missing_column",
        "date,store_id,product_id,price,promo\n2026-05-01,1,1,1.2,0\n",
        "missing required column(s) units_sold",
    ),
    ("empty_file", "", "empty file (0 bytes)"),
    ("header_only", f"{SALES_HEADER}\n", "no data rows (header only)"),
    (
        "ambiguous_dates",  # no day over 12: dd/mm or mm/dd cannot be told
        f"{SALES_HEADER}\n01/05/2026,1,1,3,1.2,0,0\n02/05/2026,1,1,3,1.2,0,0\n",
        "ambiguous dates: '01/05/2026' reads as dd/mm/yyyy and as mm/dd/yyyy",
    ),
    (
        "no_columns_in_any_delimiter",
        "date:store_id:product_id:units_sold:price:promo\n2026-05-01:1:1:3:1.2:0\n",
        "missing required column(s) date, store_id, product_id, units_sold, price, promo",
    ),
]


@pytest.mark.parametrize(("name", "body", "error"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_bad_files_fail_with_a_one_line_error(
    loaded: Engine, tmp_path: Path, name: str, body: str | bytes, error: str
) -> None:
    before = counts(loaded)
    path = write(tmp_path / f"sales_{name}.csv", body)
    result = load_file(loaded, path, "sales", "test", get_settings())
    assert result.status == "failed"
    assert result.error is not None and error in result.error
    assert "\n" not in result.error and "Traceback" not in result.error
    row = run_row(loaded, result.run_id)
    assert row["status"] == "failed" and row["error"] == result.error
    assert_reconciles(loaded, result)
    assert counts(loaded) == before  # nothing half-loaded


def test_bytes_the_given_encoding_cannot_decode_fail_with_their_line(
    loaded: Engine, tmp_path: Path
) -> None:
    from fournil.etl.dialect import DialectOptions

    body = f"{SALES_HEADER}\n{GOOD}\n".encode() + b"2026-05-02,1,1,3,1.2,0,0 caf\xe9\n"
    path = write(tmp_path / "sales.csv", body)
    result = load_file(
        loaded, path, "sales", "t", get_settings(), options=DialectOptions(encoding="utf-8")
    )
    assert result.status == "failed" and result.error is not None
    assert result.error.startswith("not utf-8: byte 0xE9 on line 3"), result.error
    assert "--encoding" in result.error


def test_parquet_drop_loads_like_csv(
    loaded: Engine, tmp_path: Path, small_drop: GeneratedData
) -> None:
    import pandas as pd

    frame = pd.read_csv(small_drop.sales_path, dtype={"stock_out": "boolean"}, parse_dates=["date"])
    frame["date"] = frame.date.dt.date
    path = tmp_path / "sales.parquet"
    frame.to_parquet(path)
    result = load_file(loaded, path, "sales", "test", get_settings())
    assert result.status == "success", result.error
    assert result.rows_inserted == len(frame) == small_drop.rows
    assert_reconciles(loaded, result)


def test_generated_bad_rows_all_reach_the_quarantine(warehouse: Engine, tmp_path: Path) -> None:
    from fournil.data.generator import GeneratorConfig, generate
    from tests.conftest import END_DATE

    drop = generate(
        GeneratorConfig(stores=3, products=4, days=90, end_date=END_DATE, bad_row_rate=0.02),
        tmp_path / "drop",  # not beside the SQLite warehouse file: that is no drop
    )
    result = run_etl(drop.out_dir, warehouse, get_settings())
    assert result.ok
    sales_result = result.files[-1]
    assert sales_result.rows_read == drop.rows
    assert sales_result.rows_rejected == drop.bad_rows
    assert counts(warehouse)["sales"] == drop.rows - drop.bad_rows


def test_a_file_whose_every_row_is_rejected_fails_and_keeps_them_all(
    loaded: Engine, tmp_path: Path
) -> None:
    body = f"{SALES_HEADER}\n2026-05-02,999,1,3,1.2,0,0\n2026-05-03,1,1,-4,1.2,0,0\n"
    path = write(tmp_path / "sales_all_bad.csv", body)
    result = run_etl(path, loaded, get_settings())
    (file,) = result.files
    assert not result.ok and file.status == "failed"
    assert file.error and file.error.startswith("every row was rejected (2)")
    row = run_row(loaded, file.run_id)
    assert row["status"] == "failed" and row["rows_rejected"] == 2 == row["rows_read"]
    # nothing lost: both rows are in the quarantine with their reasons
    assert [line for line, _ in reasons(loaded, file.run_id)] == [2, 3]
    assert counts(loaded)["sales"] == 0
    assert_reconciles(loaded, file)
