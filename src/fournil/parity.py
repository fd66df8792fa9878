"""Environment parity (seed 000's reproducibility check): the same figures computed on two
warehouses (e.g. production and preproduction), side by side.

For each important table: the row count, the NULL count of every column, and SUM / AVG / MIN /
MAX of its key numeric columns. `fournil parity URL_A URL_B` prints the comparison and can save
it to the `parity_checks` table, which the Superset "Environment parity" dashboard reads.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Engine, Integer, cast, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from fournil.db.schema import metadata, parity_checks

# the tables worth comparing, and their key numeric columns
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "stores": (),
    "products": ("base_price",),
    "sales": ("units_sold", "price", "promo", "stock_out"),
    "quarantine": (),
    "etl_runs": ("rows_read", "rows_inserted", "rows_rejected"),
    "forecasts": ("yhat", "yhat_lower", "yhat_upper", "horizon"),
    "forecast_accuracy": ("wape", "rmse", "bias"),
    "model_decisions": (),
}
AGGREGATES = ("sum", "avg", "min", "max")


@dataclass(frozen=True)
class Check:
    table: str
    column: str  # "*" for the row count
    stat: str  # rows, nulls, sum, avg, min, max
    a: float | None
    b: float | None

    @property
    def equal(self) -> bool:
        if self.a is None or self.b is None:
            return self.a is None and self.b is None
        return math.isclose(self.a, self.b, rel_tol=1e-9, abs_tol=1e-9)


def figures(engine: Engine) -> dict[tuple[str, str, str], float | None]:
    """(table, column, stat) -> value, for every table of KEY_COLUMNS present in `engine`."""
    out: dict[tuple[str, str, str], float | None] = {}
    with engine.connect() as conn:
        for name, keys in KEY_COLUMNS.items():
            table = metadata.tables[name]
            labels: list[tuple[str, str]] = [("*", "rows")]
            exprs: list[ColumnElement[Any]] = [func.count()]
            for column in table.columns:
                labels.append((column.name, "nulls"))
                exprs.append(func.count() - func.count(column))
            for key in keys:
                column = table.c[key]
                value = cast(column, Integer) if key in ("promo", "stock_out") else column
                for stat in AGGREGATES:
                    labels.append((key, stat))
                    exprs.append(getattr(func, stat)(value))
            try:
                row = conn.execute(select(*exprs).select_from(table)).one()
            except SQLAlchemyError:  # the table is missing (an older schema): say so, go on
                conn.rollback()
                out[(name, "*", "rows")] = None
                continue
            for (column_name, stat), value in zip(labels, row, strict=True):
                out[(name, column_name, stat)] = None if value is None else float(value)
    return out


def compare(a: Engine, b: Engine) -> list[Check]:
    first, second = figures(a), figures(b)
    keys = list(dict.fromkeys([*first, *second]))
    return [Check(t, c, s, first.get((t, c, s)), second.get((t, c, s))) for t, c, s in keys]


def save(engine: Engine, checks: list[Check], label_a: str, label_b: str) -> dt.datetime:
    """Store one comparison in `parity_checks` (every figure, equal or not)."""
    at = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(parity_checks),
            [
                {
                    "checked_at": at,
                    "label_a": label_a,
                    "label_b": label_b,
                    "table_name": c.table,
                    "column_name": c.column,
                    "stat": c.stat,
                    "value_a": c.a,
                    "value_b": c.b,
                    "equal": c.equal,
                }
                for c in checks
            ],
        )
    return at
