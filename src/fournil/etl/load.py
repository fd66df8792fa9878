"""Staging and merging validated rows into the warehouse, in the caller's transaction.

Rows go first into a temporary staging table (PostgreSQL: `COPY`; SQLite: one `executemany` per
chunk), then one set-based merge: on PostgreSQL an `INSERT ... ON CONFLICT DO UPDATE` that
writes only new and changed rows (one primary-key probe per row, so a chunk's cost does not grow
with the table); on SQLite an `UPDATE ... FROM` of the changed rows and an `INSERT ... SELECT` of
the new keys. Nothing is written row by row, and nothing is visible to others until the caller
commits.

On PostgreSQL, sales rows that cannot be in the warehouse yet (their series has no rows, or
none that early or that late: the common case, a new day's drop or a first load) skip the
stage: they are `COPY`-ed straight into `sales`. The load holds a transaction-level advisory
lock per table, so no concurrent load can insert the same key in between.
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


class KeyIndex:
    """The keys a file has had so far (as sorted int64 codes), and the line of each.

    The one check for duplicate keys: a key repeated within a chunk or in a later chunk is
    caught before that chunk is merged, and named by the line that had it first. Adding a
    chunk sorts the chunk's new keys and inserts them in place (one copy of the index, no sort
    of it), so a file of n rows costs about n * chunks / 2 copies; 12 bytes a key (lines as
    int32: files up to 2**31 lines), 0.66 GB at 55M rows.
    """

    def __init__(self) -> None:
        self.codes = np.zeros(0, np.int64)
        self.lines = np.zeros(0, np.int32)

    def check_and_add(self, codes: np.ndarray, lines: np.ndarray) -> np.ndarray:
        """For each row, the line of an earlier row with the same key (in an earlier chunk or
        earlier in this one), or 0; then remember the chunk's new keys. `lines` ascend."""
        first = np.zeros(len(codes), np.int64)
        if len(self.codes) and len(codes):
            at = np.searchsorted(self.codes, codes).clip(max=len(self.codes) - 1)
            hit = self.codes[at] == codes
            first[hit] = self.lines[at[hit]]
        if len(codes) > 1:  # repeats within the chunk: the first row of each key keeps it
            order = np.argsort(codes, kind="stable")
            ranked = codes[order]
            starts = np.concatenate([[True], ranked[1:] != ranked[:-1]])
            group_start = np.maximum.accumulate(np.where(starts, np.arange(len(codes)), 0))
            repeat, owner = order[~starts], order[group_start[~starts]]
            inside = first[repeat] == 0
            first[repeat[inside]] = lines[owner[inside]]
        fresh = first == 0  # distinct, and none of them known yet
        order = np.argsort(codes[fresh])
        new_codes, new_lines = codes[fresh][order], lines[fresh][order].astype(np.int32)
        at = np.searchsorted(self.codes, new_codes)
        self.codes = np.insert(self.codes, at, new_codes)
        self.lines = np.insert(self.lines, at, new_lines)
        return first


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

    def lock_target(self) -> None:
        """Serialise loads into the same table (PostgreSQL; SQLite has one writer anyway)."""
        if self.postgres:
            self.conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:name))"),
                {"name": f"fournil.etl.{self.contract.table}"},
            )

    def sales_series_spans(self) -> np.ndarray:
        """(store id, product id, first day number, last day number) of every series already
        in `sales`: one pass over the primary key, once per file, so that a chunk learns which
        of its rows are new without fetching keys (a row outside its series' span is new)."""
        cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(
            "SELECT store_id, product_id, min(sale_date) - DATE '1970-01-01', "
            "max(sale_date) - DATE '1970-01-01' FROM sales GROUP BY store_id, product_id"
        )
        return np.array(cursor.fetchall(), dtype=np.int64).reshape(-1, 4)

    def copy_into_target(self, good: pa.Table, run_id: int) -> int:
        """COPY rows whose keys are known to be new straight into the target (PostgreSQL)."""
        if good.num_rows == 0:
            return 0
        audit_column, _ = _AUDIT[self.contract.kind]
        table = good.select(self.columns).append_column(
            audit_column, pa.array(np.full(good.num_rows, run_id, np.int64))
        )
        buffer = io.BytesIO()
        pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False))
        columns = ", ".join([*self.columns, audit_column])
        cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {self.contract.table} ({columns}) FROM STDIN (FORMAT csv)") as copy:
            copy.write(buffer.getbuffer())
        return good.num_rows

    def clear(self) -> None:
        """Empty the stage (after a merge), ready for the next chunk."""
        self.conn.exec_driver_sql(
            f"TRUNCATE {self.name}" if self.postgres else f"DELETE FROM {self.name}"
        )
        self.rows = 0

    def merge(self, run_id: int) -> MergeCounts:
        """Update changed rows and insert new ones in the target table."""
        if self.postgres:
            return self._upsert(run_id)
        table = self.contract.table
        keys = self.contract.key_columns
        values = [c for c in self.columns if c not in keys]
        audit_column, audit_value = _AUDIT[self.contract.kind]
        match = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        changed = " OR ".join(f"t.{v} IS NOT s.{v}" for v in values) or "FALSE"
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

    def _upsert(self, run_id: int) -> MergeCounts:
        """PostgreSQL: one `INSERT ... ON CONFLICT DO UPDATE ... WHERE <changed>`. Each staged
        row costs one probe of the target's primary key, whatever the target's size (a join
        of the stage with the target may scan the whole target per chunk); unchanged rows are
        not written. `xmax = 0` tells the inserted rows from the updated ones."""
        table = self.contract.table
        keys = self.contract.key_columns
        values = [c for c in self.columns if c not in keys]
        audit_column, audit_value = _AUDIT[self.contract.kind]
        columns = [*self.columns, audit_column]
        select_list = [f"s.{c}" for c in self.columns] + [audit_value]
        if values:
            assignments = ", ".join(
                [f"{v} = EXCLUDED.{v}" for v in values] + [f"{audit_column} = {audit_value}"]
            )
            changed = " OR ".join(f"t.{v} IS DISTINCT FROM EXCLUDED.{v}" for v in values)
            action = f"DO UPDATE SET {assignments} WHERE {changed}"
        else:
            action = "DO NOTHING"
        inserted, updated = self.conn.execute(
            text(
                f"WITH written AS (INSERT INTO {table} AS t ({', '.join(columns)}) "
                f"SELECT {', '.join(select_list)} FROM {self.name} AS s "
                f"ON CONFLICT ({', '.join(keys)}) {action} RETURNING (t.xmax = 0) AS fresh) "
                "SELECT count(*) FILTER (WHERE fresh), count(*) FILTER (WHERE NOT fresh) "
                "FROM written"
            ),
            {"run_id": run_id},
        ).one()
        return MergeCounts(
            inserted=inserted, updated=updated, unchanged=self.rows - inserted - updated
        )

    def drop(self) -> None:
        if not self.postgres:
            self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{self.name}")
