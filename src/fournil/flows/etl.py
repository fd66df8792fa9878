"""Daily ETL: load the drops in the landing folder that were not loaded successfully yet."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import flow, task

from fournil import pipeline
from fournil.db import warehouse_engine
from fournil.etl.contract import Kind
from fournil.etl.runner import FileResult
from fournil.orchestration import (
    markdown_artifact,
    on_failure,
    record,
    recorder,
    table_artifact,
    transient,
)
from fournil.settings import get_settings


@task(retry_condition_fn=transient, retries=2, retry_delay_seconds=10, timeout_seconds=600)
def find_new_drops(source: str) -> list[tuple[str, Kind | None]]:
    return [
        (str(p), kind)
        for p, kind in pipeline.new_drops(warehouse_engine(get_settings()), Path(source))
    ]


@task(retry_condition_fn=transient, retries=2, retry_delay_seconds=30, timeout_seconds=3600)
def load_drop(path: str, kind: Kind | None, batch: str) -> FileResult:
    settings = get_settings()
    return pipeline.load_drop(warehouse_engine(settings), settings, Path(path), kind, batch)


@flow(name="etl", on_failure=[on_failure], log_prints=True)
def etl_flow(source: str | None = None) -> dict[str, int]:
    settings = get_settings()
    landing = source or str(settings.landing)
    with recorder("etl", get_settings()) as run:
        with run.stage("discover"):
            drops = find_new_drops(landing)
        files = []
        with run.stage("load"):
            for path, kind in drops:
                files.append(load_drop(path, kind, run.run_id))
        result = pipeline.IngestResult(Path(landing), files, run.run_id)
        record(run, rows=result.read, warnings=result.warnings, metrics=result.metrics)
        if files:
            table_artifact(
                "etl-files", pd.DataFrame(result.file_rows()), "Files loaded by this ETL run"
            )
        else:
            markdown_artifact("etl-files", f"No new drop in `{landing}`.", "Nothing to load")
        pipeline.alert_on_ingest(settings, result)
        if result.error:
            raise RuntimeError(result.error)
    return result.summary()


if __name__ == "__main__":
    etl_flow()
