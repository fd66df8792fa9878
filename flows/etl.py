"""Daily ETL: load the drops in the landing folder that were not loaded successfully yet."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import flow, task

from fournil import alerts
from fournil.db import warehouse_engine
from fournil.etl.readers import file_sha256
from fournil.etl.runner import FileResult, discover, load_file, loaded_digests
from fournil.orchestration import markdown_artifact, on_failure, recorder, table_artifact, transient
from fournil.settings import get_settings


@task(retry_condition_fn=transient, retries=2, retry_delay_seconds=10, timeout_seconds=600)
def find_new_drops(source: str) -> list[tuple[str, str]]:
    folder = Path(source)
    folder.mkdir(parents=True, exist_ok=True)
    if not any(folder.iterdir()):
        return []
    done = loaded_digests(warehouse_engine())
    return [(str(p), kind) for p, kind in discover(folder) if file_sha256(p) not in done]


@task(retry_condition_fn=transient, retries=2, retry_delay_seconds=30, timeout_seconds=3600)
def load_drop(path: str, kind: str, batch: str) -> FileResult:
    return load_file(warehouse_engine(), Path(path), kind, batch)  # type: ignore[arg-type]


@flow(name="etl", on_failure=[on_failure], log_prints=True)
def etl_flow(source: str | None = None) -> dict[str, int]:
    settings = get_settings()
    landing = source or str(settings.landing)
    with recorder("etl") as run:
        with run.stage("discover"):
            drops = find_new_drops(landing)
        results = []
        with run.stage("load"):
            for path, kind in drops:
                results.append(load_drop(path, kind, run.run_id))
        run.rows_processed = sum(r.rows_read for r in results)
        run.warnings = sum(len(r.warnings) for r in results)
        read = sum(r.rows_read for r in results)
        rejected = sum(r.rows_rejected for r in results)
        run.metrics.update({"files": len(results), "rows_rejected": rejected})
        if results:
            table_artifact(
                "etl-files",
                pd.DataFrame(
                    [
                        {
                            "file": r.path.name,
                            "status": r.status,
                            "read": r.rows_read,
                            "inserted": r.rows_inserted,
                            "updated": r.rows_updated,
                            "unchanged": r.rows_unchanged,
                            "rejected": r.rows_rejected,
                            "error": r.error,
                        }
                        for r in results
                    ]
                ),
                "Files loaded by this ETL run",
            )
        else:
            markdown_artifact("etl-files", f"No new drop in `{landing}`.", "Nothing to load")
        if read and rejected / read > settings.alert_reject_rate:
            alerts.notify(
                "ETL quarantined many rows",
                [f"{rejected} of {read} rows rejected ({rejected / read:.1%})"],
            )
        failed = [r for r in results if r.status != "success"]
        if failed:
            raise RuntimeError("; ".join(f"{r.path.name}: {r.error}" for r in failed))
    return {"files": len(results), "rows": read, "rejected": rejected}


if __name__ == "__main__":
    etl_flow()
