"""Daily batch forecasts from the champion(s), after the ETL."""

from __future__ import annotations

import datetime as dt

from prefect import flow, task

from fournil import pipeline
from fournil.db import warehouse_engine
from fournil.forecast import ForecastResult
from fournil.orchestration import markdown_artifact, on_failure, recorder, transient
from fournil.settings import get_settings


@task(retry_condition_fn=transient, retries=2, retry_delay_seconds=30, timeout_seconds=3600)
def write_forecasts(date: str | None) -> ForecastResult:
    origin = dt.date.fromisoformat(date) if date else None
    return pipeline.forecast(warehouse_engine(get_settings()), get_settings(), date=origin)


@flow(name="forecast", on_failure=[on_failure], log_prints=True)
def forecast_flow(date: str | None = None) -> int:
    with recorder("forecast", get_settings()) as run:
        with run.stage("forecast"):
            result = write_forecasts(date)
        run.rows_processed = result.rows
        models = ", ".join(f"{n} v{v}" for n, v in result.models.items())
        markdown_artifact(
            "forecast-summary",
            f"**{result.rows:,}** forecasts from **{result.forecast_date}** with {models}.",
            "Batch forecasts written",
        )
    return result.rows


if __name__ == "__main__":
    forecast_flow()
