"""`fournil data`: synthetic data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

from fournil.cli.common import console, fail

app = typer.Typer(help="Synthetic bakery data.", no_args_is_help=True)


@app.command()
def generate(
    out: Path = typer.Option(Path("data/generated"), "--out", help="Folder to write to."),
    stores: int = typer.Option(20, min=1, help="Number of stores."),
    products: int = typer.Option(10, min=1, help="Number of products."),
    days: int = typer.Option(730, min=14, help="Days of history."),
    end_date: str = typer.Option(None, help="Last day (YYYY-MM-DD); default: yesterday."),
    seed: int = typer.Option(42, help="Random seed: same seed, same data."),
    fmt: str = typer.Option("csv", "--format", help="Sales file format: csv or parquet."),
    bad_rows: float = typer.Option(
        0.0, min=0.0, max=0.49, help="CSV only: share of rows to corrupt (to see the quarantine)."
    ),
) -> None:
    """Generate a bakery chain's daily sales, its masters and the noise-free demand."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from fournil.data.generator import GeneratorConfig
    from fournil.data.generator import generate as run_generate
    from fournil.settings import get_settings

    settings = get_settings()

    if fmt not in ("csv", "parquet"):
        raise fail("--format must be csv or parquet")
    try:
        last = dt.date.fromisoformat(end_date) if end_date else None
        cfg = GeneratorConfig(
            stores=stores,
            products=products,
            days=days,
            end_date=last,
            seed=seed,
            fmt=fmt,  # type: ignore[arg-type]
            bad_row_rate=bad_rows,
            country=settings.country,
            timezone=settings.timezone,
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("generating stores", total=stores)
        result = run_generate(cfg, out, on_store_done=lambda n: progress.update(task, completed=n))
    console.print(
        f"wrote {result.rows:,} sales rows ({result.start} .. {result.end}) "
        f"for {stores} stores x {products} products to [bold]{out}[/]"
        + (f", {result.bad_rows:,} of them deliberately bad" if result.bad_rows else "")
    )
    console.print(f"noise-free demand: {result.expected_path}")
