"""Prometheus view of the pipeline: a collector that reads the warehouse at scrape time.

Why not a Pushgateway: the `pipeline_runs`, `forecast_accuracy` and `drift_reports` tables are
already the durable record (dashboards and Superset read them too); a Pushgateway would be one
more service holding a second, volatile copy, whose "last push" hides a flow that never ran.
Reading the tables survives restarts, and exposing the last run's timestamp lets an alert rule
catch a missed schedule. The API registers this collector on its `/metrics`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from fournil.db.schema import drift_reports, forecast_accuracy, pipeline_runs

log = logging.getLogger("fournil.prometheus")


class PipelineCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "fournil_warehouse_up", "1 if the warehouse answered the metrics queries"
        )
        try:
            families = self._families()
        except SQLAlchemyError as exc:
            log.warning("metrics: warehouse unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> list[Metric]:
        last_ts = GaugeMetricFamily(
            "fournil_pipeline_last_run_timestamp_seconds", "End of the last run", labels=["flow"]
        )
        last_ok = GaugeMetricFamily(
            "fournil_pipeline_last_run_success", "1 if the last run succeeded", labels=["flow"]
        )
        duration = GaugeMetricFamily(
            "fournil_pipeline_last_run_duration_seconds",
            "Wall time of the last run",
            labels=["flow"],
        )
        rows = GaugeMetricFamily(
            "fournil_pipeline_last_run_rows", "Rows processed by the last run", labels=["flow"]
        )
        warnings = GaugeMetricFamily(
            "fournil_pipeline_last_run_warnings", "Warnings of the last run", labels=["flow"]
        )
        stages = GaugeMetricFamily(
            "fournil_pipeline_stage_duration_seconds",
            "Stage wall time in the last run",
            labels=["flow", "stage"],
        )
        values = GaugeMetricFamily(
            "fournil_pipeline_metric",
            "Metrics of the last successful run (e.g. train_rmse, backtest_rmse)",
            labels=["flow", "name"],
        )
        last_success = GaugeMetricFamily(
            "fournil_pipeline_last_success_timestamp_seconds",
            "End of the last successful run (alerts: a flow that stopped succeeding)",
            labels=["flow"],
        )
        failures = GaugeMetricFamily(
            "fournil_pipeline_failed_runs", "Failed runs recorded, all time", labels=["flow"]
        )
        wape = GaugeMetricFamily(
            "fournil_forecast_wape",
            "WAPE of stored forecasts on the last evaluated day's window",
            labels=["model", "version"],
        )
        psi = GaugeMetricFamily(
            "fournil_drift_psi", "Population stability index, last report", labels=["feature"]
        )
        flagged = GaugeMetricFamily(
            "fournil_drift_flagged",
            "1 if the last report flagged the feature (PSI above FOURNIL_DRIFT_PSI_THRESHOLD "
            "on enough samples): the one drift verdict, the monitor's",
            labels=["feature"],
        )
        with self.engine.connect() as conn:
            latest = (
                select(pipeline_runs.c.flow, func.max(pipeline_runs.c.started_at).label("at"))
                .where(pipeline_runs.c.status != "running")
                .group_by(pipeline_runs.c.flow)
                .subquery()
            )
            for run in conn.execute(
                select(pipeline_runs).join(
                    latest,
                    (latest.c.flow == pipeline_runs.c.flow)
                    & (latest.c.at == pipeline_runs.c.started_at),
                )
            ).mappings():
                flow = run["flow"]
                if run["finished_at"] is not None:
                    last_ts.add_metric([flow], run["finished_at"].timestamp())
                    duration.add_metric(
                        [flow], (run["finished_at"] - run["started_at"]).total_seconds()
                    )
                last_ok.add_metric([flow], 1.0 if run["status"] == "success" else 0.0)
                rows.add_metric([flow], float(run["rows_processed"]))
                warnings.add_metric([flow], float(run["warnings"]))
                for stage, seconds in (run["stages"] or {}).items():
                    stages.add_metric([flow, stage], float(seconds))
            ok_latest = (
                select(pipeline_runs.c.flow, func.max(pipeline_runs.c.started_at).label("at"))
                .where(pipeline_runs.c.status == "success")
                .group_by(pipeline_runs.c.flow)
                .subquery()
            )
            for ok_run in conn.execute(
                select(
                    pipeline_runs.c.flow, pipeline_runs.c.metrics, pipeline_runs.c.finished_at
                ).join(
                    ok_latest,
                    (ok_latest.c.flow == pipeline_runs.c.flow)
                    & (ok_latest.c.at == pipeline_runs.c.started_at),
                )
            ):
                if ok_run.finished_at is not None:
                    last_success.add_metric([ok_run.flow], ok_run.finished_at.timestamp())
                for name, value in (ok_run.metrics or {}).items():
                    values.add_metric([ok_run.flow, name], float(value))
            for flow, n in conn.execute(
                select(pipeline_runs.c.flow, func.count())
                .where(pipeline_runs.c.status == "failed")
                .group_by(pipeline_runs.c.flow)
            ):
                failures.add_metric([flow], float(n))
            day = conn.execute(select(func.max(forecast_accuracy.c.evaluated_on))).scalar()
            if day is not None:
                for row in conn.execute(
                    select(
                        forecast_accuracy.c.model_name,
                        forecast_accuracy.c.model_version,
                        forecast_accuracy.c.wape,
                    ).where(
                        forecast_accuracy.c.evaluated_on == day,
                        forecast_accuracy.c.level == "overall",
                    )
                ):
                    if row.wape is not None:
                        wape.add_metric([row.model_name, row.model_version], float(row.wape))
            day = conn.execute(select(func.max(drift_reports.c.evaluated_on))).scalar()
            if day is not None:
                for row in conn.execute(
                    select(
                        drift_reports.c.feature, drift_reports.c.psi, drift_reports.c.drifted
                    ).where(drift_reports.c.evaluated_on == day)
                ):
                    psi.add_metric([row.feature], float(row.psi))
                    flagged.add_metric([row.feature], 1.0 if row.drifted else 0.0)
        return [
            last_ts,
            last_ok,
            last_success,
            duration,
            rows,
            warnings,
            stages,
            values,
            failures,
            wape,
            psi,
            flagged,
        ]
