"""Daily: the forecast workbook e-mailed to the people who bake (seed 000's first delivery)."""

from __future__ import annotations

from prefect import flow, task

from fournil import pipeline
from fournil.db import warehouse_engine
from fournil.orchestration import markdown_artifact, on_failure, recorder, transient
from fournil.settings import get_settings


@task(retry_condition_fn=transient, retries=2, retry_delay_seconds=60, timeout_seconds=900)
def write_and_send() -> pipeline.ReportResult:
    settings = get_settings()
    return pipeline.report(warehouse_engine(settings), settings)


@flow(name="report", on_failure=[on_failure], log_prints=True)
def report_flow() -> int:
    with recorder("report", get_settings()) as run:
        with run.stage("report"):
            result = write_and_send()
        run.rows_processed = result.rows
        if result.workbook is None:
            run.warnings = 1
            markdown_artifact("report", "No forecasts yet: nothing to send.", "Report not sent")
            print("no forecasts yet: no workbook, nothing sent")
            return 0
        sent = ", ".join(result.sent_to) or "nobody (FOURNIL_REPORT_TO is empty)"
        summary = f"{result.rows:,} forecasts of {result.stores} stores; sent to {sent}."
        markdown_artifact("report", f"`{result.workbook.name}`: {summary}", "Forecast workbook")
        print(f"{result.workbook}: {summary}")
    return result.rows


if __name__ == "__main__":
    report_flow()
