"""Daily monitoring: forecast accuracy once actuals land, drift of inputs and predictions,
and the health of the pipeline runs themselves."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from prefect import flow, task

from fournil import alerts
from fournil.db import warehouse_engine
from fournil.monitoring import drift_report, run_health, score_forecasts
from fournil.orchestration import on_failure, recorder, table_artifact, task_runner, transient
from fournil.settings import get_settings


def _day(date: str | None) -> dt.date | None:
    return dt.date.fromisoformat(date) if date else None


# no timeout_seconds: these run side by side on the task runner, where a timeout cannot
# interrupt blocking work; the flow run itself is bounded by the deployment
@task(retry_condition_fn=transient, retries=2, retry_delay_seconds=30)
def accuracy(date: str | None) -> pd.DataFrame:
    return score_forecasts(warehouse_engine(), _day(date))


@task(retry_condition_fn=transient, retries=2, retry_delay_seconds=30)
def drift(date: str | None) -> pd.DataFrame:
    return drift_report(warehouse_engine(), get_settings(), _day(date))


@task(retry_condition_fn=transient, retries=1)
def health() -> list[str]:
    return run_health(warehouse_engine())


@flow(name="monitor", on_failure=[on_failure], log_prints=True, task_runner=task_runner())
def monitor_flow(date: str | None = None) -> dict[str, object]:
    with recorder("monitor") as run:
        with run.stage("accuracy+drift+health"):  # independent: run them side by side
            scored, drifting, checked = accuracy.submit(date), drift.submit(date), health.submit()
            scores, report, problems = scored.result(), drifting.result(), checked.result()
        overall = scores[scores["level"] == "overall"] if not scores.empty else scores
        if not overall.empty:
            table_artifact("forecast-accuracy", overall, "Forecast accuracy per model version")
            wapes = overall["wape"].dropna()
            if not wapes.empty:
                run.metrics["forecast_wape"] = float(wapes.iloc[-1])
        drifted = report[report["drifted"]]["feature"].tolist() if not report.empty else []
        if not report.empty:
            table_artifact("drift", report[["feature", "psi", "drifted"]], "PSI per feature")
            run.metrics["max_psi"] = float(report["psi"].max())
        run.metrics["drifted_features"] = len(drifted)
        run.rows_processed = int(overall["n"].sum()) if not overall.empty else 0
        run.warnings = len(drifted) + len(problems)
        if drifted:
            alerts.notify("drift detected", [f"{f}: PSI above threshold" for f in drifted])
        if problems:
            alerts.notify("pipeline health", problems)
    return {"drifted": drifted, "problems": problems}


if __name__ == "__main__":
    monitor_flow()
