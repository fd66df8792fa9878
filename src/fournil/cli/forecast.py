"""`fournil forecast`: batch forecasts from the champion(s) into the warehouse."""

from __future__ import annotations

import datetime as dt

import typer

from fournil.cli.common import console, fail, warehouse


def forecast(
    date: str = typer.Option(None, help="Origin: last day of known sales (default: the latest)."),
    horizon: int = typer.Option(None, min=1, max=28, help="Days ahead (default: FOURNIL_HORIZON)."),
) -> None:
    """Forecast every active store x product for the next days; idempotent per model version
    and forecast date."""
    from fournil import pipeline
    from fournil.forecast import ForecastError
    from fournil.settings import get_settings

    try:
        origin = dt.date.fromisoformat(date) if date else None
    except ValueError:
        raise fail(f"--date must be YYYY-MM-DD, got {date!r}") from None
    settings = get_settings()
    engine = warehouse(settings)
    try:
        with console.status("forecasting..."):
            result = pipeline.forecast(engine, settings, date=origin, horizon=horizon)
    except ForecastError as exc:
        raise fail(str(exc)) from None
    models = ", ".join(f"{n} v{v}" for n, v in result.models.items())
    console.print(f"wrote {result.rows:,} forecasts from {result.forecast_date} with {models}")
    if result.fallback:
        console.print(
            f"[yellow]warning[/] no champion: the fallback {result.fallback} forecast "
            "(promote a version with `fournil model promote`)",
            highlight=False,
        )
