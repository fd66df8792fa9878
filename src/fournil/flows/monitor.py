"""Daily monitoring: forecast accuracy once actuals land, drift of inputs and predictions,
and the health of the pipeline runs themselves."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from prefect import flow, task

from fournil import pipeline
from fournil.db import warehouse_engine
from fournil.orchestration import (
    on_failure,
    record,
    recorder,
    table_artifact,
    task_runner,
    transient,
)
from fournil.settings import get_settings


def _day(date: str | None) -> dt.date | None:
    return dt.date.fromisoformat(date) if date else None


# no timeout_seconds: these run side by side on the task runner, where a timeout cannot
# interrupt blocking work; the flow run itself is bounded by the deployment
@task(retry_condition_fn=transient, retries=2, retry_delay_seconds=30)
def accuracy(date: str | None) -> pd.DataFrame:
    return pipeline.score(warehouse_engine(get_settings()), _day(date))


@task(retry_condition_fn=transient, retries=2, retry_delay_seconds=30)
def drift(date: str | None) -> pd.DataFrame:
    return pipeline.drift(warehouse_engine(get_settings()), get_settings(), _day(date))


@task(retry_condition_fn=transient, retries=1)
def health() -> list[str]:
    return pipeline.health(warehouse_engine(get_settings()))


@flow(
    name="monitor",
    on_failure=[on_failure],
    log_prints=True,
    task_runner=task_runner(get_settings()),
)
def monitor_flow(date: str | None = None) -> dict[str, object]:
    with recorder("monitor", get_settings()) as run:
        with run.stage("accuracy+drift+health"):  # independent: run them side by side
            scored, drifting, checked = accuracy.submit(date), drift.submit(date), health.submit()
            result = pipeline.MonitorResult(scored.result(), drifting.result(), checked.result())
        overall, report = result.overall, result.drift
        if not overall.empty:
            table_artifact("forecast-accuracy", overall, "Forecast accuracy per model version")
        if not report.empty:
            table_artifact("drift", report[["feature", "psi", "drifted"]], "PSI per feature")
        record(run, rows=result.rows, warnings=result.warnings, metrics=result.metrics)
        pipeline.alert_on_monitor(get_settings(), result)
    return result.summary()


if __name__ == "__main__":
    monitor_flow()
