"""Ingest benchmark: the ETL vs raw COPY vs pandas to_sql, on the same 1M generated rows.

Each method loads the same generated CSV into an empty table shaped like `sales` (same primary
key, index and checks) on PostgreSQL:

- fournil ETL: `load_file` (read as text, validate, quarantine, COPY to staging, merge, run log);
- raw COPY:    `COPY ... FROM STDIN (FORMAT csv, HEADER)` of the file's bytes, no validation;
- to_sql:      `pandas.read_csv` then `DataFrame.to_sql` with its defaults.

Prints seconds, rows/s and the ETL's ratio to each baseline (targets: >= 0.5x raw COPY,
>= 10x to_sql). Run with `make bench` or `python -m benchmarks.bench_ingest`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from benchmarks.common import median_seconds, throwaway_postgres, truncate
from fournil.data.generator import GeneratorConfig, generate
from fournil.db import make_engine, upgrade
from fournil.etl.runner import load_file, run_etl
from fournil.settings import get_settings

console = Console()
COPY_SQL = (
    "COPY bench_copy (sale_date, store_id, product_id, units_sold, price, promo, stock_out)"
    " FROM STDIN (FORMAT csv, HEADER)"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="about this many rows")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--to-sql-repeat",
        type=int,
        default=1,
        help="to_sql is ~30x slower: once is enough for a ratio",
    )
    args = parser.parse_args()

    days, products = 730, 14
    stores = max(1, round(args.rows / (days * products * 0.99)))
    with tempfile.TemporaryDirectory() as tmp, throwaway_postgres() as url:
        gen = generate(
            GeneratorConfig(
                stores=stores,
                products=products,
                days=days,
                seed=7,
                end_date=dt.date(2026, 6, 30),
                new_store_share=0.0,
            ),
            Path(tmp),
        )
        n = gen.rows
        console.print(
            f"[bold]ingest benchmark[/] {n:,} rows "
            f"({gen.sales_path.stat().st_size / 1e6:.0f} MB CSV), PostgreSQL"
        )
        engine = make_engine(url)
        settings = get_settings()  # as the CLI reads them (FOURNIL_ETL_CHUNK_ROWS, ...)
        upgrade(engine)
        run_etl(gen.stores_path, engine, settings)
        run_etl(gen.products_path, engine, settings)
        with engine.begin() as conn:  # baseline tables: like sales, without the FKs
            for name in ("bench_copy", "bench_to_sql"):
                conn.execute(text(f"CREATE TABLE {name} (LIKE sales INCLUDING ALL)"))
                conn.execute(text(f"ALTER TABLE {name} ALTER etl_run_id DROP NOT NULL"))

        def fournil_etl() -> None:
            result = load_file(engine, gen.sales_path, "sales", "bench", settings)
            assert result.status == "success" and result.rows_inserted == n, result

        def raw_copy() -> None:
            raw = engine.raw_connection()
            try:
                driver: Any = raw.driver_connection  # psycopg's own connection: COPY
                with (
                    driver.cursor() as cur,
                    gen.sales_path.open("rb") as fh,
                    cur.copy(COPY_SQL) as copy,
                ):
                    while block := fh.read(1 << 20):
                        copy.write(block)
                raw.commit()
            finally:
                raw.close()

        def to_sql() -> None:
            frame = pd.read_csv(gen.sales_path, parse_dates=["date"]).rename(
                columns={"date": "sale_date"}
            )
            frame.to_sql("bench_to_sql", engine, if_exists="append", index=False)

        results = {
            "fournil ETL": median_seconds(
                fournil_etl, args.repeat, lambda: truncate(engine, "sales")
            ),
            "raw COPY": median_seconds(
                raw_copy, args.repeat, lambda: truncate(engine, "bench_copy")
            ),
        }
        console.print({k: round(v, 2) for k, v in results.items()})
        if args.to_sql_repeat:
            results["pandas to_sql"] = median_seconds(
                to_sql, args.to_sql_repeat, lambda: truncate(engine, "bench_to_sql")
            )
        start = time.perf_counter()
        rerun = load_file(engine, gen.sales_path, "sales", "bench", settings)
        rerun_seconds = time.perf_counter() - start
        engine.dispose()

    table = Table(
        title=f"ingest of {n:,} rows (median of {args.repeat}; to_sql: {args.to_sql_repeat})"
    )
    for column in ("method", "seconds", "rows/s", "fournil ETL vs this"):
        table.add_column(column, justify="right" if column != "method" else "left")
    etl = results["fournil ETL"]
    for name, seconds in results.items():
        ratio = seconds / etl  # rows/s ratio = inverse time ratio
        table.add_row(
            name,
            f"{seconds:.2f}",
            f"{n / seconds:,.0f}",
            "-" if name == "fournil ETL" else f"{ratio:.2f}x",
        )
    console.print(table)
    console.print(
        f"ETL re-run of the same file (all unchanged): {rerun_seconds:.2f}s "
        f"({rerun.rows_unchanged:,} unchanged)"
    )
    for label, target in (("raw COPY", 0.5), ("pandas to_sql", 10.0)):
        if label not in results:
            continue
        value = results[label] / etl
        verdict = "[green]meets[/]" if value >= target else "[red]misses[/]"
        console.print(f"ETL throughput vs {label}: {value:.2f}x (target >= {target}x) {verdict}")


if __name__ == "__main__":
    main()
