"""`fournil etl`: load drops into the warehouse."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fournil.cli.common import console, fail, warehouse

if TYPE_CHECKING:
    from rich.table import Table

    from fournil.etl.runner import FileResult

app = typer.Typer(help="Load sales, stores and products drops.", no_args_is_help=True)


def results_table(files: list[FileResult]) -> Table:
    from rich.table import Table

    table = Table(title="ETL runs", title_justify="left")
    for column in ("run", "file", "status", "read", "inserted", "updated", "unchanged", "rejected"):
        table.add_column(column, justify="right" if column not in ("file", "status") else "left")
    for f in files:
        status = "[green]success[/]" if f.status == "success" else f"[red]{f.status}[/]"
        table.add_row(
            str(f.run_id),
            f.path.name,
            status,
            f"{f.rows_read:,}",
            f"{f.rows_inserted:,}",
            f"{f.rows_updated:,}",
            f"{f.rows_unchanged:,}",
            f"{f.rows_rejected:,}",
        )
    return table


def expected_rows(path: Path) -> int | None:
    """About how many data rows a drop holds, for a progress bar: exact for Parquet, from the
    first megabyte's lines for CSV; None when it cannot tell."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(1 << 20)
        lines = head.count(b"\n")
        if not lines:
            return None
        return max(0, round(size / len(head) * lines) - 1)  # less the header
    except Exception:  # unreadable or a bad Parquet footer: the load itself says why
        return None


@app.command("run")
def run(
    source: Path = typer.Option(..., "--source", help="A drop file, or a folder of drops."),
    kind: str = typer.Option(
        None, help="stores, products or sales (default: from the name, else the header)."
    ),
    delimiter: str = typer.Option(
        None, help="CSV field separator: ',' ';' '|' or 'tab' (default: detected)."
    ),
    decimal: str = typer.Option(None, help="Decimal separator: '.' or ',' (default: detected)."),
    date_format: str = typer.Option(
        None,
        help="yyyy-mm-dd, dd/mm/yyyy, mm/dd/yyyy, dd.mm.yyyy, dd-mm-yyyy or yyyy/mm/dd "
        "(default: detected; needed when no date tells dd/mm from mm/dd).",
    ),
    encoding: str = typer.Option(
        None, help="CSV encoding, e.g. utf-8, cp1252, latin-1 (default: detected)."
    ),
) -> None:
    """Validate and load drops (CSV in any usual dialect, .xlsx, Parquet); bad rows go to the
    quarantine, each with its reason. How each file was read is printed and kept in the run
    log."""
    import time

    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    from fournil import pipeline
    from fournil.etl.contract import CONTRACTS
    from fournil.etl.dialect import DialectError, DialectOptions
    from fournil.etl.runner import EtlError
    from fournil.settings import get_settings

    if kind is not None and kind not in CONTRACTS:
        raise fail(f"--kind must be one of {', '.join(CONTRACTS)}")
    try:
        options = DialectOptions(
            encoding=encoding,
            delimiter="\t" if delimiter in ("tab", "\\t") else delimiter,
            decimal=decimal,
            date_format=date_format,
        )
    except DialectError as exc:
        raise fail(str(exc)) from None
    settings = get_settings()
    engine = warehouse(settings)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        TextColumn("{task.completed:>12,.0f} rows  {task.fields[rate]:>9} rows/s"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        # file -> its bar, when it started, the rows expected
        tasks: dict[Path, tuple[TaskID, float, int | None]] = {}

        def on_progress(path: Path, rows: int) -> None:
            if path not in tasks:
                expected = expected_rows(path)
                bar = progress.add_task(path.name, total=expected, rate="-")
                tasks[path] = (bar, time.perf_counter(), expected)
            bar, started, expected = tasks[path]
            rate = rows / max(time.perf_counter() - started, 1e-9)
            progress.update(
                bar,
                completed=rows,
                total=max(expected, rows) if expected is not None else None,
                rate=f"{rate:,.0f}",
            )

        try:
            result = pipeline.ingest(
                engine,
                settings,
                source,
                only_new=False,  # what the user names is loaded, even if loaded before
                kind=kind,
                alert=False,  # someone is at the terminal: no webhook alert
                on_progress=on_progress,
                options=options,
            )
        except EtlError as exc:
            raise fail(str(exc)) from None
    console.print(results_table(result.files))
    for f in result.files:
        if f.read_as:
            console.print(f"[dim]read[/] {f.path.name}: {f.read_as}", highlight=False)
        for warning in f.warnings:
            console.print(f"[yellow]warning[/] {f.path.name}: {warning}", highlight=False)
        if f.error:
            console.print(f"[red]error[/] {f.path.name}: {f.error}", highlight=False)
    if not result.ok:
        raise typer.Exit(1)
