"""Staging and merging validated rows into the warehouse, in the caller's transaction.

Rows go first into a temporary staging table (PostgreSQL: `COPY`; SQLite: one `executemany` per
chunk), then one set-based merge: an `UPDATE ... FROM` of the rows whose values changed and an
`INSERT ... SELECT` of the new keys. Nothing is written row by row, and nothing is visible to
others until the caller commits.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Connection, text

from fournil.etl.contract import Contract, FieldSpec

_PG_TYPES = {
    "int": "BIGINT",
    "float": "DOUBLE PRECISION",
    "date": "DATE",
    "bool": "BOOLEAN",
    "str": "TEXT",
}
_SQLITE_TYPES = {
    "int": "INTEGER",
    "float": "REAL",
    "date": "TEXT",
    "bool": "INTEGER",
    "str": "TEXT",
}
#: Audit column each target table has: which run wrote the row, or when.
_AUDIT = {
    "sales": ("etl_run_id", "CAST(:run_id AS BIGINT)"),
    "stores": ("updated_at", "CURRENT_TIMESTAMP"),
    "products": ("updated_at", "CURRENT_TIMESTAMP"),
}


@dataclass(frozen=True)
class MergeCounts:
    inserted: int
    updated: int
    unchanged: int


def later_duplicates(keys: list[np.ndarray], lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lines whose key an earlier line already has, and that earlier (first) line, for each."""
    if len(lines) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.lexsort([lines, *reversed(keys)])  # by key, then line
    same = np.ones(len(lines) - 1, bool)
    for key in keys:
        ordered = key[order]
        same &= ordered[1:] == ordered[:-1]
    later = np.flatnonzero(same) + 1
    if not len(later):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.concatenate([[True], ~same]))  # first row of each key group
    group_first = starts[np.searchsorted(starts, later, side="right") - 1]
    return lines[order[later]], lines[order[group_first]]


class Stage:
    """A temporary staging table for one file, living in the caller's transaction."""

    def __init__(self, conn: Connection, contract: Contract, present: list[str]) -> None:
        self.conn = conn
        self.contract = contract
        self.fields: list[FieldSpec] = [f for f in contract.fields if f.name in present]
        self.name = f"fournil_stage_{contract.kind}"
        self.postgres = conn.dialect.name == "postgresql"
        self.rows = 0
        types = _PG_TYPES if self.postgres else _SQLITE_TYPES
        columns = ", ".join(f"{f.column} {types[f.type]}" for f in self.fields)
        if self.postgres:
            conn.exec_driver_sql("SET LOCAL jit = off")  # compile time exceeds any gain here
            conn.exec_driver_sql(
                f"CREATE TEMP TABLE {self.name} (line BIGINT, {columns}) ON COMMIT DROP"
            )
        else:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{self.name}")
            conn.exec_driver_sql(f"CREATE TEMP TABLE {self.name} (line INTEGER, {columns})")

    @property
    def columns(self) -> list[str]:
        return [f.column for f in self.fields]

    @property
    def key_columns(self) -> list[str]:
        return [f.column for f in self.fields if f.name in self.contract.key]

    def add(self, good: pa.Table, lines: np.ndarray) -> None:
        """Stage typed rows (warehouse column names) with their line numbers."""
        if good.num_rows == 0:
            return
        table = good.select(self.columns).add_column(0, "line", pa.array(lines, pa.int64()))
        if self.postgres:
            buffer = io.BytesIO()
            pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False))
            cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            sql = f"COPY {self.name} (line, {', '.join(self.columns)}) FROM STDIN (FORMAT csv)"
            with cursor.copy(sql) as copy:
                copy.write(buffer.getbuffer())
        else:
            columns = []
            for name in table.column_names:
                column = table.column(name)
                if pa.types.is_date(column.type):
                    column = column.cast(pa.string())
                elif pa.types.is_boolean(column.type):
                    column = column.cast(pa.int8())
                columns.append(column.to_pylist())
            placeholders = ", ".join("?" * len(columns))
            cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            cursor.executemany(
                f"INSERT INTO {self.name} VALUES ({placeholders})", zip(*columns, strict=True)
            )
        self.rows += table.num_rows

    def pop_lines(self, lines: np.ndarray) -> list[dict[str, object]]:
        """Remove the staged rows at `lines`; return them (as staged) for the quarantine."""
        removed: list[dict[str, object]] = []
        for start in range(0, len(lines), 10_000):
            part = ", ".join(str(int(x)) for x in lines[start : start + 10_000])
            where = f"WHERE line IN ({part})"
            removed += [
                dict(r)
                for r in self.conn.exec_driver_sql(
                    f"SELECT line, {', '.join(self.columns)} FROM {self.name} {where} ORDER BY line"
                ).mappings()
            ]
            self.conn.exec_driver_sql(f"DELETE FROM {self.name} {where}")
        self.rows -= len(removed)
        return removed

    def merge(self, run_id: int) -> MergeCounts:
        """Update changed rows and insert new ones in the target table."""
        table = self.contract.table
        keys = self.key_columns
        values = [c for c in self.columns if c not in keys]
        audit_column, audit_value = _AUDIT[self.contract.kind]
        if self.postgres:
            self.conn.exec_driver_sql(f"ANALYZE {self.name}")  # temp tables have no stats
        distinct = "IS DISTINCT FROM" if self.postgres else "IS NOT"
        match = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        changed = " OR ".join(f"t.{v} {distinct} s.{v}" for v in values) or "FALSE"
        assignments = ", ".join(
            [f"{v} = s.{v}" for v in values] + [f"{audit_column} = {audit_value}"]
        )
        updated = self.conn.execute(
            text(
                f"UPDATE {table} AS t SET {assignments} FROM {self.name} AS s "
                f"WHERE {match} AND ({changed})"
            ),
            {"run_id": run_id},
        ).rowcount
        audit = audit_column == "etl_run_id"
        insert_columns = self.columns + ([audit_column] if audit else [])
        select_list = [f"s.{c}" for c in self.columns] + ([audit_value] if audit else [])
        inserted = self.conn.execute(
            text(
                f"INSERT INTO {table} ({', '.join(insert_columns)}) "
                f"SELECT {', '.join(select_list)} FROM {self.name} AS s "
                f"WHERE NOT EXISTS (SELECT 1 FROM {table} AS t WHERE {match})"
            ),
            {"run_id": run_id},
        ).rowcount
        return MergeCounts(
            inserted=inserted, updated=updated, unchanged=self.rows - inserted - updated
        )

    def drop(self) -> None:
        if not self.postgres:
            self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{self.name}")
