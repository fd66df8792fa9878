"""Scale benchmark: the weekly pipeline's stages at a chain's size, on PostgreSQL.

Sizes (stores x products x days): S = 50 x 20 x 730 (1,000 series, 0.7M rows), M = 200 x 50
x 1095 (10,000 series, 11M rows), L = 1000 x 50 x 1095 (50,000 series, 55M rows); the sales
file is Parquet, as a chain's export would be at that size. Each stage runs as the `fournil`
command a user would type, in a process of its own, and is measured from its exit: wall time,
CPU seconds (user + system, client side), peak RSS.

Stages: the ETL's first load of the sales file, its re-delivery (the same file again: every
row unchanged), and the baseline, `psql`'s `\\copy` of the same rows (as CSV) into a table like
`sales` with the same indexes; then `fournil model train` (with the generator's noise-free
demand, so the backtest WAPE is also shown against the noise floor), `model promote`,
`forecast`, the API from start to ready (its peak RSS read from /proc while it runs), and the
monitor flow. `--stages etl` stops after the ETL. Goals (issue 17): the ETL's throughput at least
0.5x the raw COPY's, its CPU per row at L within 1.3x of S (compare two runs' tables), peak RSS
under 2 GB, a re-delivery at most 1.5x the first load; train at M within the worker's 2 GB, at L
under 8 GiB and 3 h, WAPE / noise floor at most 1.10; forecast under 10 min; monitor under 4 GB;
the API under 1.5 GB per worker and ready in under 60 s.

Run with `make bench-scale SIZE=S|M|L` or `python -m benchmarks.bench_scale --size S`.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.engine import make_url

from benchmarks.common import throwaway_postgres
from fournil.db import make_engine

console = Console(width=None if sys.stdout.isatty() else 120)  # tables unwrapped in logs

SIZES = {"S": (50, 20, 730), "M": (200, 50, 1095), "L": (1000, 50, 1095)}
COPY_COLUMNS = "sale_date, store_id, product_id, units_sold, price, promo, stock_out"


@dataclass(frozen=True)
class Measured:
    stage: str
    wall: float
    cpu: float
    peak_mb: float
    rows: int

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall if self.wall else 0.0


def measure(stage: str, cmd: list[str], env: dict[str, str], rows: int, log: Path) -> Measured:
    """Run `cmd` to its end; its wall time, CPU seconds and peak RSS (from wait4)."""
    console.print(f"[bold]{stage}[/]: {' '.join(cmd[:6])}{' ...' if len(cmd) > 6 else ''}")
    start = time.perf_counter()
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        console.print(log.read_text()[-3000:])
        raise SystemExit(f"{stage} failed (exit {proc.returncode}); log: {log}")
    measured = Measured(stage, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, rows)
    console.print(
        f"  {measured.wall:.1f} s wall, {measured.cpu:.1f} s CPU, {measured.peak_mb:,.0f} MB peak"
    )
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="S")
    parser.add_argument("--keep", type=Path, help="keep the generated files in this folder")
    parser.add_argument(
        "--stages", choices=["etl", "all"], default="all", help="etl: stop after the ETL"
    )
    parser.add_argument(
        "--no-etl-baselines",
        action="store_true",
        help="skip the re-delivery and the raw COPY (for a rerun of the later stages)",
    )
    args = parser.parse_args()
    stores, products, days = SIZES[args.size]
    fournil = [sys.executable, "-m", "fournil"]

    with tempfile.TemporaryDirectory() as tmp, throwaway_postgres("fournil_scale") as url:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        log = work / "bench_scale.log"
        env = {**os.environ, "DATABASE_URL": url, "FOURNIL_HOME": str(work / "home")}
        drop = work / "drop"
        gen = measure(
            "generate",
            [
                *fournil,
                "data",
                "generate",
                "--out",
                str(drop),
                "--stores",
                str(stores),
                "--products",
                str(products),
                "--days",
                str(days),
                "--end-date",
                "2026-06-30",
                "--format",
                "parquet",
                "--seed",
                "11",
            ],
            env,
            0,
            log,
        )
        sales = drop / "sales.parquet"
        rows = pq.ParquetFile(sales).metadata.num_rows
        console.print(f"  {rows:,} sales rows, {sales.stat().st_size / 1e6:,.0f} MB Parquet")
        measure("db upgrade", [*fournil, "db", "upgrade"], env, 0, log)
        for master in ("stores.csv", "products.csv"):
            measure(
                f"etl {master}",
                [*fournil, "etl", "run", "--source", str(drop / master)],
                env,
                0,
                log,
            )

        etl = [*fournil, "etl", "run", "--source", str(sales)]
        first = measure("ETL first load", etl, env, rows, log)
        skipped = Measured("skipped", float("nan"), float("nan"), float("nan"), rows)
        again = (
            skipped if args.no_etl_baselines else measure("ETL re-delivery", etl, env, rows, log)
        )

        copy = skipped if args.no_etl_baselines else _copy_baseline(url, work, sales, env, rows)
        later: list[Measured] = []
        quality = ""
        if args.stages == "all":
            truth = drop / "truth" / "expected_demand.parquet"
            trained = measure(
                "train", [*fournil, "model", "train", "--truth", str(truth)], env, rows, log
            )
            quality = _table_after(log, "registered (not promoted)")
            later += [
                trained,
                measure("promote (gate)", [*fournil, "model", "promote"], env, 0, log),
                measure("forecast", [*fournil, "forecast"], env, 0, log),
                serve_until_ready(fournil, env, log),
                measure("monitor flow", [*fournil, "flows", "run", "monitor"], env, 0, log),
            ]

    table = Table(title=f"scale {args.size}: {stores} stores x {products} products x {days} days")
    for column in ("stage", "wall s", "CPU s", "peak RSS MB", "rows", "rows/s", "CPU us/row"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for m in (gen, first, again, copy, *later):
        if m.stage == "skipped":
            continue
        table.add_row(
            m.stage,
            f"{m.wall:.1f}",
            f"{m.cpu:.1f}" if m.cpu == m.cpu else "-",  # NaN: not measured
            f"{m.peak_mb:,.0f}",
            f"{m.rows:,}" if m.rows else "-",
            f"{m.rows_per_s:,.0f}" if m.rows else "-",
            f"{m.cpu / m.rows * 1e6:.1f}" if m.rows else "-",
        )
    console.print(table)
    if copy.stage != "skipped":
        ratio = first.rows_per_s / copy.rows_per_s
        console.print(f"ETL first load vs raw COPY throughput: {ratio:.2f}x (goal >= 0.5x)")
        console.print(
            f"ETL re-delivery / first load: {again.wall / first.wall:.2f}x (goal <= 1.5x)"
        )
    console.print(f"ETL peak RSS: {first.peak_mb:,.0f} MB (goal < 2048 MB)")
    if quality:
        console.print(quality)
        _later_goals(args.size, later, quality)


def _later_goals(size: str, later: list[Measured], quality: str) -> None:
    """The goals of the stages after the ETL, as ratios (issue 17)."""
    by = {m.stage: m for m in later}
    numbers = [float(x) for x in re.findall(r"\b\d+\.\d{4}\b", quality.splitlines()[-2])]
    if len(numbers) >= 4:
        wape, floor = numbers[0], numbers[3]
        console.print(f"backtest WAPE / noise floor: {wape / floor:.3f} (goal <= 1.10)")
    limit = {"M": 2048.0, "L": 8192.0}.get(size)
    train = by["train"]
    if limit:
        console.print(
            f"train peak RSS: {train.peak_mb:,.0f} MB = {train.peak_mb / limit:.2f}x the goal "
            f"({limit:,.0f} MB); wall {train.wall / 3600:.2f} h (goal at L < 3 h)"
        )
    console.print(f"forecast: {by['forecast'].wall:.0f} s (goal < 600 s)")
    console.print(f"monitor peak RSS: {by['monitor flow'].peak_mb:,.0f} MB (goal < 4096 MB)")
    api = by["API start to ready"]
    console.print(f"API: {api.peak_mb:,.0f} MB (goal < 1536), ready in {api.wall:.1f} s (< 60 s)")


def _copy_baseline(url: str, work: Path, sales: Path, env: dict[str, str], rows: int) -> Measured:
    """psql's \\copy of the same rows (as CSV) into a table like `sales`, same indexes."""
    log = work / "bench_scale.log"
    csv = work / "sales.csv"
    with pacsv.CSVWriter(csv, pq.ParquetFile(sales).schema_arrow) as writer:
        for batch in pq.ParquetFile(sales).iter_batches(batch_size=1 << 20):
            writer.write_batch(batch)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE bench_copy (LIKE sales INCLUDING ALL)"))
        conn.execute(text("ALTER TABLE bench_copy ALTER etl_run_id DROP NOT NULL"))
    engine.dispose()
    columns = pq.ParquetFile(sales).schema_arrow.names
    target = ", ".join("sale_date" if c == "date" else c for c in columns)
    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    copy = measure(
        "raw COPY (baseline)",
        ["psql", libpq, "-q", "-c", f"\\copy bench_copy ({target}) FROM '{csv}' CSV HEADER"],
        env,
        rows,
        log,
    )
    return copy


def _table_after(log: Path, title: str) -> str:
    """The last table titled `title` in the log (a command's summary), down to its border."""
    lines = log.read_text(errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if title in line]
    if not starts:
        return ""
    end = next((i for i in range(starts[-1], len(lines)) if lines[i].startswith("└")), None)
    return "\n".join(lines[starts[-1] : (end or starts[-1]) + 1])


def serve_until_ready(fournil: list[str], env: dict[str, str], log: Path) -> Measured:
    """`fournil api serve` from start to a 200 on /ready; its peak RSS (VmHWM) once ready."""
    import httpx

    port = _free_port()
    console.print(f"[bold]API start to ready[/]: fournil api serve --port {port}")
    start = time.perf_counter()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*fournil, "api", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the API exited ({proc.returncode}); log: {log}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - start > 600:
                raise SystemExit(f"the API was not ready within 600 s; log: {log}")
            time.sleep(0.2)
        wall = time.perf_counter() - start
        status = Path(f"/proc/{proc.pid}/status").read_text()
        peak_kb = int(next(x for x in status.splitlines() if x.startswith("VmHWM")).split()[1])
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    # CPU is read at a process's exit (wait4): the API is stopped, not exited, so none here
    measured = Measured("API start to ready", wall, float("nan"), peak_kb / 1024, 0)
    console.print(f"  ready in {wall:.1f} s, {measured.peak_mb:,.0f} MB peak")
    return measured


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    main()
