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


@app.command("run")
def run(
    source: Path = typer.Option(..., "--source", help="A drop file, or a folder of drops."),
    kind: str = typer.Option(None, help="stores, products or sales (default: from the name)."),
) -> None:
    """Validate and load drops; bad rows go to the quarantine, each with its reason."""
    from rich.progress import Progress, SpinnerColumn, TimeElapsedColumn

    from fournil import pipeline
    from fournil.etl.contract import CONTRACTS
    from fournil.etl.runner import EtlError
    from fournil.settings import get_settings

    if kind is not None and kind not in CONTRACTS:
        raise fail(f"--kind must be one of {', '.join(CONTRACTS)}")
    settings = get_settings()
    engine = warehouse(settings)
    with Progress(
        SpinnerColumn(),
        "[progress.description]{task.description}",
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("loading")

        def on_progress(path: Path, rows: int) -> None:
            progress.update(task, description=f"{path.name}: {rows:,} rows read")

        try:
            result = pipeline.ingest(
                engine,
                settings,
                source,
                only_new=False,  # what the user names is loaded, even if loaded before
                kind=kind,
                alert=False,  # someone is at the terminal: no webhook alert
                on_progress=on_progress,
            )
        except EtlError as exc:
            raise fail(str(exc)) from None
    console.print(results_table(result.files))
    for f in result.files:
        for warning in f.warnings:
            console.print(f"[yellow]warning[/] {f.path.name}: {warning}", highlight=False)
        if f.error:
            console.print(f"[red]error[/] {f.path.name}: {f.error}", highlight=False)
    if not result.ok:
        raise typer.Exit(1)
