"""`fournil export` (the forecast workbook or CSV) and `fournil report` (e-mail it now)."""

from __future__ import annotations

from pathlib import Path

import typer

from fournil.cli.common import console, fail, warehouse


def export(
    fmt: str = typer.Option("xlsx", "--format", help="xlsx (one sheet per store) or csv."),
    out: Path = typer.Option(
        None, help="File to write (default: fournil-forecasts-<date>.<format> here)."
    ),
    days: int = typer.Option(
        None, min=1, max=28, help="Days of forecasts (default: FOURNIL_REPORT_DAYS)."
    ),
    store: list[int] = typer.Option(None, help="Only these stores (repeat the option)."),
) -> None:
    """Write the next days' forecasts with their intervals, for people: an Excel workbook with
    one sheet per store, or one CSV."""
    from fournil import export as exporting
    from fournil.settings import get_settings

    if fmt not in ("xlsx", "csv"):
        raise fail(f"--format must be xlsx or csv, not {fmt!r}")
    settings = get_settings()
    data = exporting.upcoming(warehouse(settings), days or settings.report.days, store or None)
    if data.forecast_date is None or data.frame.empty:
        raise fail("no forecasts to export: run `fournil forecast` first")
    path = out or Path(f"fournil-forecasts-{data.forecast_date}.{fmt}")
    if fmt == "xlsx":
        exporting.write_workbook(data, path)
    else:
        exporting.write_csv(data, path)
    stores = data.frame["store_id"].nunique()
    console.print(
        f"wrote {path}: {len(data.frame):,} forecasts of {stores} stores, made on "
        f"{data.forecast_date}",
        highlight=False,
    )


def report(
    send: bool = typer.Option(True, help="E-mail it to FOURNIL_REPORT_TO (--no-send: only write)."),
) -> None:
    """Write the forecast workbook under FOURNIL_HOME/reports and e-mail it to
    FOURNIL_REPORT_TO now (what the daily report deployment does)."""
    from fournil import pipeline
    from fournil.report import ReportError
    from fournil.settings import get_settings

    settings = get_settings()
    try:
        result = pipeline.report(warehouse(settings), settings, send=send)
    except ReportError as exc:
        raise fail(str(exc)) from None
    if result.workbook is None:
        raise fail("no forecasts to report: run `fournil forecast` first")
    sent = ", ".join(result.sent_to) or "nobody (set FOURNIL_REPORT_TO)"
    console.print(f"wrote {result.workbook}; sent to {sent}", highlight=False)
