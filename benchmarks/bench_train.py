"""Training benchmark: wall time of `fournil model train` vs its bare LightGBM fits, and
forecast quality vs seasonal naive and the noise floor.

On a generated chain (default 20 stores x 10 products = 200 series, 2 years), loaded into a
throwaway PostgreSQL warehouse, with MLflow on a local store in a temporary FOURNIL_HOME:

- overhead = train wall time (features, backtest, fits, plots, MLflow logging, registration)
  / the sum of the bare `lightgbm.train` calls inside it (target <= 1.3x);
- backtest WAPE of the model / seasonal naive (target <= 0.75x);
- backtest WAPE of the model / the noise floor, i.e. the expected demand the generator
  drew the sales from, scored on the same rows (target <= 1.10x).

Run with `make bench` or `python -m benchmarks.bench_train`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import lightgbm
from rich.console import Console
from rich.table import Table

from benchmarks.common import throwaway_postgres
from fournil.data.generator import GeneratorConfig, generate
from fournil.db import make_engine, upgrade
from fournil.etl.runner import run_etl
from fournil.models.training import train
from fournil.settings import get_settings, reset_settings_cache

console = Console()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=20)
    parser.add_argument("--products", type=int, default=10)
    parser.add_argument("--days", type=int, default=730)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, throwaway_postgres() as url:
        os.environ["FOURNIL_HOME"] = str(Path(tmp) / "home")
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        reset_settings_cache()
        gen = generate(
            GeneratorConfig(
                stores=args.stores,
                products=args.products,
                days=args.days,
                seed=3,
                end_date=dt.date(2026, 6, 30),
            ),
            Path(tmp) / "drop",
        )
        engine = make_engine(url)
        upgrade(engine)
        settings = get_settings()
        assert run_etl(gen.out_dir, engine, settings).ok
        series = args.stores * args.products
        console.print(
            f"[bold]train benchmark[/] {series} series x {args.days} days "
            f"({gen.rows:,} rows), PostgreSQL warehouse, local MLflow store"
        )
        fit_seconds: list[float] = []
        bare_train = lightgbm.train

        def timed_train(*args: Any, **kwargs: Any) -> Any:  # every bare fit inside `train`
            begin = time.perf_counter()
            try:
                return bare_train(*args, **kwargs)
            finally:
                fit_seconds.append(time.perf_counter() - begin)

        lightgbm.train = timed_train
        try:
            start = time.perf_counter()
            versions = train(engine, settings, truth_path=gen.expected_path)
            wall = time.perf_counter() - start
        finally:
            lightgbm.train = bare_train
        fits = sum(fit_seconds)
        n_fits = len(fit_seconds)
        engine.dispose()

    v = versions[0]
    assert v.wape_noise_floor is not None
    table = Table(title="training: wall time and backtest quality")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_column("", justify="left")
    rows = [
        ("train wall time (s)", f"{wall:.1f}", "", ""),
        (f"sum of {n_fits} bare LightGBM fits (s)", f"{fits:.1f}", "", ""),
        ("overhead: wall / fits", f"{wall / fits:.2f}x", "<= 1.30x", _verdict(wall / fits <= 1.3)),
        ("backtest WAPE: model", f"{v.wape:.4f}", "", ""),
        ("seasonal naive", f"{v.wape_naive:.4f}", "", ""),
        ("linear (fallback)", f"{v.wape_linear:.4f}", "", ""),
        ("noise floor (expected demand)", f"{v.wape_noise_floor:.4f}", "", ""),
        (
            "model / seasonal naive",
            f"{v.wape / v.wape_naive:.3f}x",
            "<= 0.75x",
            _verdict(v.wape / v.wape_naive <= 0.75),
        ),
        (
            "model / noise floor",
            f"{v.wape / v.wape_noise_floor:.3f}x",
            "<= 1.10x",
            _verdict(v.wape / v.wape_noise_floor <= 1.10),
        ),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _verdict(ok: bool) -> str:
    return "[green]meets[/]" if ok else "[red]misses[/]"


if __name__ == "__main__":
    main()
