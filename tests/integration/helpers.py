"""Helpers for ETL integration tests: writing drops, reading the warehouse back."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, func, select

from fournil.db.schema import etl_runs, quarantine, sales
from fournil.etl.runner import FileResult

SALES_HEADER = "date,store_id,product_id,units_sold,price,promo,stock_out"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            "sales": conn.execute(select(func.count()).select_from(sales)).scalar_one(),
            "quarantine": conn.execute(select(func.count()).select_from(quarantine)).scalar_one(),
            "units": conn.execute(
                select(func.coalesce(func.sum(sales.c.units_sold), 0))
            ).scalar_one(),
        }


def run_row(engine: Engine, run_id: int) -> dict[str, object]:
    with engine.connect() as conn:
        return dict(
            conn.execute(select(etl_runs).where(etl_runs.c.run_id == run_id)).mappings().one()
        )


def reasons(engine: Engine, run_id: int) -> list[tuple[int | None, str]]:
    with engine.connect() as conn:
        return [
            (r.line, r.reason)
            for r in conn.execute(
                select(quarantine.c.line, quarantine.c.reason)
                .where(quarantine.c.etl_run_id == run_id)
                .order_by(quarantine.c.line)
            )
        ]


def assert_reconciles(engine: Engine, result: FileResult) -> None:
    """The result and the run log agree, and read = inserted + updated + unchanged + rejected."""
    row = run_row(engine, result.run_id)
    assert row["status"] == result.status
    assert row["rows_read"] == (
        row["rows_inserted"] + row["rows_updated"] + row["rows_unchanged"] + row["rows_rejected"]
    )
    assert row["rows_rejected"] == len(reasons(engine, result.run_id))
    assert row["finished_at"] is not None
