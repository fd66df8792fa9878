from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from fournil.etl.contract import SALES, STORES, Context, kind_of, validate
from fournil.etl.load import KeyIndex
from fournil.etl.readers import BadFileError, check_csv, iter_csv

CTX = Context(
    today=dt.date(2026, 11, 23),
    known_stores={1: dt.date(2026, 1, 1)},
    known_products=frozenset({1, 2}),
)


def sales_rows(**overrides: list[str]) -> pa.Table:
    base = {
        "date": ["2026-05-01"],
        "store_id": ["1"],
        "product_id": ["1"],
        "units_sold": ["3"],
        "price": ["1.20"],
        "promo": ["0"],
        "stock_out": [""],
    }
    base.update(overrides)
    n = max(len(v) for v in base.values())
    return pa.table({k: v * n if len(v) == 1 else v for k, v in base.items()})


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("units_sold", "2.5", "units_sold: '2.5' is not a whole number"),
        ("units_sold", "", "units_sold is missing"),
        ("price", "1,20", "price: '1,20' is not a number"),
        ("date", "01/05/2026", "date: '01/05/2026' is not a date (expected YYYY-MM-DD)"),
        ("date", "2026-02-30", "date: '2026-02-30' is not a date (expected YYYY-MM-DD)"),
        ("promo", "oui", "promo: 'oui' is not one of 0/1/true/false"),
        ("units_sold", "100001", "units_sold: 100001 is implausibly large (> 100000)"),
        ("date", "2026-11-24", "date: 2026-11-24 is in the future (today is 2026-11-23)"),
        ("product_id", "3", "product_id: 3 is not a known product"),
    ],
)
def test_each_rule_has_its_reason(field: str, value: str, reason: str) -> None:
    checked = validate(sales_rows(**{field: [value]}), SALES, CTX)
    assert checked.good.num_rows == 0
    assert checked.bad_reasons == [reason]


def test_lenient_spellings_parse() -> None:
    rows = sales_rows(
        units_sold=[" 3 ", "4.0", "+5"],
        promo=["TRUE", "f", "yes"],
        stock_out=["", "1", "False"],
        product_id=["1", "2", "1"],
        date=["2026-05-01", "2026-05-01", "2026-05-02"],
    )
    checked = validate(rows, SALES, CTX)
    assert checked.bad_reasons == []
    assert checked.good.column("units_sold").to_pylist() == [3, 4, 5]
    assert checked.good.column("promo").to_pylist() == [True, False, True]
    assert checked.good.column("stock_out").to_pylist() == [None, True, False]
    assert checked.good.column("sale_date").to_pylist()[2] == dt.date(2026, 5, 2)


def test_rows_before_store_opening_load_with_a_warning() -> None:
    checked = validate(sales_rows(date=["2025-12-31"]), SALES, CTX)
    assert checked.good.num_rows == 1
    assert checked.warnings == {"rows dated before their store's opening date": 1}


def test_stores_contract() -> None:
    rows = pa.table(
        {
            "store_id": ["1", "1", "-2"],
            "name": ["A", "B", "C"],
            "city": ["Lyon", "Lyon", ""],
            "region": ["R", "R", "R"],
            "opened_on": ["2020-01-01", "2020-01-01", "2020-01-01"],
        }
    )
    checked = validate(rows, STORES, CTX)
    # the repeated store_id 1 is not the contract's to catch: the loader's KeyIndex does
    assert checked.bad_reasons == ["city is missing"]
    assert checked.good_positions.tolist() == [0, 1]


def test_kind_from_file_name() -> None:
    assert kind_of("sales_2026-05.csv") == "sales"
    assert kind_of("Stores.parquet") == "stores"
    assert kind_of("expected_demand.parquet") is None


def test_key_index_reports_the_first_line_of_a_repeated_key() -> None:
    index = KeyIndex()
    assert index.check_and_add(np.array([50, 10, 30]), np.array([2, 3, 4])).tolist() == [0, 0, 0]
    assert index.check_and_add(np.array([30, 20, 50]), np.array([5, 6, 7])).tolist() == [4, 0, 2]
    assert index.check_and_add(np.array([20, 5, 60]), np.array([8, 9, 10])).tolist() == [6, 0, 0]


def test_key_index_catches_repeats_within_a_chunk() -> None:
    index = KeyIndex()
    codes, lines = np.array([7, 3, 7, 9, 3, 7]), np.array([2, 3, 4, 5, 6, 8])
    assert index.check_and_add(codes, lines).tolist() == [0, 0, 2, 0, 3, 2]
    # only the first row of each key was remembered, with its own line
    assert index.check_and_add(np.array([3, 7, 9]), np.array([9, 10, 11])).tolist() == [3, 2, 5]
    # a key of an earlier chunk repeated twice in this one: both name the earlier line
    assert index.check_and_add(np.array([9, 9, 1]), np.array([12, 13, 14])).tolist() == [5, 5, 0]


def test_exact_lines_after_malformed_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "sales.csv"
    path.write_text(
        "date,store_id,product_id,units_sold,price,promo\n"
        '2026-05-01,1,1,1,1.2,0\n\n"2026-05-02",1,1\n2026-05-03,1,1,2,1.2,0\n'
        "2026-05-04,1,1,3,1.2,0,extra\n2026-05-05,1,1,3,1.2,0\n"
    )
    chunks = list(iter_csv(path, SALES, chunk_rows=2))
    lines = np.concatenate([c.lines for c in chunks]).tolist()
    malformed = [(m.line, m.reason) for c in chunks for m in c.malformed]
    assert lines == [2, 5, 7]
    assert malformed == [
        (4, "malformed line: expected 6 fields, found 3"),
        (6, "malformed line: expected 6 fields, found 7"),
    ]


def test_check_csv_reports_missing_columns_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "sales.csv"
    path.write_bytes(
        "\ufeffdate,store_id,product_id,units_sold,price,promo\n1,1,1,1,1,1\n".encode()
    )
    assert check_csv(path, SALES)[0][0] == "date"
    path.write_text("date,store_id\n2026-01-01,1\n")
    with pytest.raises(BadFileError, match=r"missing required column\(s\) product_id"):
        check_csv(path, SALES)


def test_prices_are_judged_against_their_own_products_base_price() -> None:
    ctx = Context(
        today=CTX.today,
        known_stores=CTX.known_stores,
        known_products=CTX.known_products,
        base_prices={1: 1.2, 2: 4500.0},  # a croissant, and a wedding cake in yen
    )
    rows = sales_rows(
        product_id=["1", "1", "1", "2", "2"],
        price=["1.35", "120", "0.05", "4800", "45"],
        date=["2026-05-01", "2026-05-02", "2026-05-03", "2026-05-01", "2026-05-02"],
    )
    checked = validate(rows, SALES, ctx)
    # the cake's 4,800 loads although a global cap of 1,000 would have refused it
    assert checked.good.column("price").to_pylist() == [1.35, 4800.0]
    assert checked.bad_positions.tolist() == [1, 2, 4]
    assert checked.bad_reasons[0] == (
        "price: 120 is implausible for product 1 (100x its base price 1.2; limit 20x either way)"
    )
    assert "0.0417x its base price 1.2" in checked.bad_reasons[1]
    assert "product 2 (0.01x its base price 4500" in checked.bad_reasons[2]
    # an absolute cap still applies when one is set
    capped = dataclasses.replace(ctx, max_price=1000.0)
    assert validate(rows, SALES, capped).bad_reasons[2].startswith("price: 4800")
    assert "is implausibly large (> 1000)" in validate(rows, SALES, capped).bad_reasons[2]
