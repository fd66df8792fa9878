"""`fournil parity`: two warehouses loaded with the same drop, then one changed in known ways
(rows deleted, NULLs introduced, units changed): exactly those figures differ."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select, text
from typer.testing import CliRunner

from fournil.cli import app
from fournil.data.generator import GeneratedData
from fournil.db import make_engine
from fournil.db.schema import parity_checks
from fournil.etl.runner import run_etl
from fournil.parity import compare
from fournil.settings import get_settings, reset_settings_cache
from tests.integration.helpers import throwaway_database


@pytest.fixture
def twins(pg_template: str, small_drop: GeneratedData) -> Iterator[tuple[str, str]]:
    with (
        throwaway_database("parity_a", pg_template) as a,
        throwaway_database("parity_b", pg_template) as b,
    ):
        for url in (a, b):
            engine = make_engine(url)
            assert run_etl(small_drop.out_dir, engine, get_settings()).ok
            engine.dispose()
        yield a, b


def sales_figures(engine: Engine) -> dict[str, float]:
    with engine.connect() as conn:
        rows, units, nulls = conn.execute(
            text("SELECT count(*), sum(units_sold), count(*) - count(stock_out) FROM sales")
        ).one()
    return {"rows": rows, "units": units, "nulls": nulls}


def test_the_known_differences_and_only_them(twins: tuple[str, str]) -> None:
    a, b = make_engine(twins[0]), make_engine(twins[1])
    assert all(c.equal for c in compare(a, b))  # the same drop: every figure equal
    before = sales_figures(b)
    with b.begin() as conn:
        # 5 rows gone, 7 stock-outs unknown, one day 10 units higher (distinct rows for each)
        keys = conn.execute(
            text(
                "SELECT store_id, product_id, sale_date, units_sold FROM sales "
                "WHERE stock_out IS NOT NULL ORDER BY store_id, product_id, sale_date LIMIT 13"
            )
        ).all()
        gone, unknown, changed = keys[:5], keys[5:12], keys[12]
        where = "store_id = :s AND product_id = :p AND sale_date = :d"
        for s, p, d, _ in gone:
            conn.execute(text(f"DELETE FROM sales WHERE {where}"), {"s": s, "p": p, "d": d})
        for s, p, d, _ in unknown:
            conn.execute(
                text(f"UPDATE sales SET stock_out = NULL WHERE {where}"), {"s": s, "p": p, "d": d}
            )
        s, p, d, _ = changed
        conn.execute(
            text(f"UPDATE sales SET units_sold = units_sold + 10 WHERE {where}"),
            {"s": s, "p": p, "d": d},
        )
    checks = {(c.table, c.column, c.stat): c for c in compare(a, b)}
    assert checks[("sales", "*", "rows")].b == before["rows"] - 5
    assert (
        checks[("sales", "units_sold", "sum")].b == before["units"] - sum(k[3] for k in gone) + 10
    )
    assert checks[("sales", "stock_out", "nulls")].b == before["nulls"] + 7
    differing = {key for key, check in checks.items() if not check.equal}
    assert {key[0] for key in differing} == {"sales"}  # no other table differs
    assert {("sales", "*", "rows"), ("sales", "units_sold", "sum")} <= differing
    assert ("sales", "store_id", "nulls") not in differing  # untouched columns stay equal
    a.dispose()
    b.dispose()


def test_the_command_reports_saves_and_gates(
    twins: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = twins
    runner = CliRunner()
    same = runner.invoke(app, ["parity", a, b, "--strict"])
    assert same.exit_code == 0 and "0 differ" in same.output, same.output
    engine = make_engine(b)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM sales WHERE sale_date = (SELECT max(sale_date) FROM sales)"))
    engine.dispose()
    monkeypatch.setenv("DATABASE_URL", a)  # --save writes into the warehouse
    reset_settings_cache()
    result = runner.invoke(
        app,
        ["parity", a, b, "--label-a", "prod", "--label-b", "preprod", "--save", "--strict"],
        terminal_width=200,
    )
    assert result.exit_code == 1, result.output  # --strict: differences fail
    assert "differs" in result.output and "sales" in result.output
    engine = make_engine(a)
    with engine.connect() as conn:
        saved = conn.execute(select(parity_checks)).mappings().all()
    engine.dispose()
    assert {r["label_a"] for r in saved} == {"prod"} and {r["label_b"] for r in saved} == {
        "preprod"
    }
    rows = [
        r for r in saved if (r["table_name"], r["column_name"], r["stat"]) == ("sales", "*", "rows")
    ]
    assert len(rows) == 1 and rows[0]["value_b"] < rows[0]["value_a"] and not rows[0]["equal"]
    assert any(r["equal"] for r in saved)  # every figure is stored, equal or not


def test_an_unreachable_warehouse_is_a_clear_error(twins: tuple[str, str]) -> None:
    missing = twins[0].rsplit("/", 1)[0] + "/no_such_database"
    result = CliRunner().invoke(app, ["parity", twins[0], missing])
    assert result.exit_code == 1 and "cannot read a warehouse" in result.output
