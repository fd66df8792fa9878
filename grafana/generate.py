"""The Grafana dashboards, as code: `python grafana/generate.py` (or `make dashboards`) writes
grafana/dashboards/<folder>/<uid>.json, which Grafana provisions at start
(grafana/provisioning/dashboards/dashboards.yml). The JSON files are committed; a test checks
they match this script, and the stack test runs every panel's query against real data.

Datasources (grafana/provisioning/datasources/datasources.yml): `prometheus` (PromQL) and
`warehouse` (PostgreSQL, the read-only role). SQL panels use Grafana's `$__timeFilter(column)`
macro; PromQL panels use `$__rate_interval`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
PROMETHEUS = {"type": "prometheus", "uid": "prometheus"}
WAREHOUSE = {"type": "grafana-postgresql-datasource", "uid": "warehouse"}
SCHEMA_VERSION = 39
WIDTH, HEIGHT = 12, 8


def prom(expr: str, legend: str = "") -> dict[str, Any]:
    return {"datasource": PROMETHEUS, "expr": expr, "legendFormat": legend or "__auto"}


def sql(query: str, fmt: str = "time_series") -> dict[str, Any]:
    return {
        "datasource": WAREHOUSE,
        "editorMode": "code",
        "format": fmt,
        "rawQuery": True,
        "rawSql": " ".join(query.split()),
    }


def panel(
    title: str,
    targets: list[dict[str, Any]],
    kind: str = "timeseries",
    unit: str = "short",
    description: str = "",
    width: int = WIDTH,
) -> dict[str, Any]:
    datasource = targets[0]["datasource"]
    for ref, target in zip("ABCDEFGH", targets, strict=False):
        target["refId"] = ref
    out: dict[str, Any] = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": datasource,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "_width": width,
    }
    if kind == "timeseries":
        out["fieldConfig"]["defaults"]["custom"] = {"lineWidth": 2, "fillOpacity": 10}
        out["options"] = {"legend": {"displayMode": "table", "placement": "bottom"}}
    if kind == "heatmap":
        out["options"] = {"calculate": False, "yAxis": {"unit": unit}}
        for target in targets:
            target["format"] = "heatmap"
    return out


def dashboard(
    uid: str, title: str, description: str, panels: list[dict[str, Any]]
) -> dict[str, Any]:
    x = y = 0
    laid_out = []
    for number, p in enumerate(panels, start=1):
        width = p.pop("_width")
        if x + width > 24:
            x, y = 0, y + HEIGHT
        laid_out.append({"id": number, "gridPos": {"x": x, "y": y, "w": width, "h": HEIGHT}, **p})
        x += width
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["fournil"],
        "timezone": "browser",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": False,
        "refresh": "1m",
        "time": {"from": "now-7d", "to": "now"},
        "panels": laid_out,
        "templating": {"list": []},
        "annotations": {"list": []},
    }


RATE = "$__rate_interval"


def api_service() -> dict[str, Any]:
    v1 = 'route=~"/v1/.*"'
    return dashboard(
        "fournil-api",
        "API service",
        "The FastAPI service: traffic, latency, errors, predictions by model and arm, fallback.",
        [
            panel(
                "Requests per second by route",
                [prom(f"sum by (route) (rate(fournil_api_requests_total[{RATE}]))", "{{route}}")],
                unit="reqps",
            ),
            panel(
                "Latency of /v1 routes: p50, p95, p99",
                [
                    prom(
                        f"histogram_quantile({q}, sum by (le) "
                        f"(rate(fournil_api_request_seconds_bucket{{{v1}}}[{RATE}])))",
                        f"p{round(q * 100)}",
                    )
                    for q in (0.5, 0.95, 0.99)
                ],
                unit="s",
            ),
            panel(
                "Errors by route and status",
                [
                    prom(
                        "sum by (route, status) "
                        f'(rate(fournil_api_requests_total{{status=~"[45].."}}[{RATE}]))',
                        "{{route}} {{status}}",
                    )
                ],
                unit="reqps",
                description="4xx are client errors (auth, validation); 5xx should stay at zero.",
            ),
            panel(
                "Predictions by model version and arm",
                [
                    prom(
                        f"sum by (version, arm) (rate(fournil_api_predictions_total[{RATE}]))",
                        "v{{version}} {{arm}}",
                    )
                ],
                unit="short",
            ),
            panel(
                "Fallback: in use, and predictions it answered",
                [
                    prom("max(fournil_api_fallback_in_use)", "no champion loaded"),
                    prom(
                        f"sum(rate(fournil_api_fallback_predictions_total[{RATE}]))",
                        "fallback predictions/s",
                    ),
                ],
            ),
            panel(
                "Rows per model call (batched /v1/predict)",
                [
                    prom(
                        f"sum(rate(fournil_api_predict_batch_rows_sum[{RATE}])) / "
                        f"sum(rate(fournil_api_predict_batch_rows_count[{RATE}]))",
                        "mean rows per call",
                    )
                ],
            ),
            panel(
                "Predicted units (distribution)",
                [
                    prom(
                        f"sum by (le) (increase(fournil_api_prediction_value_bucket[{RATE}]))",
                        "{{le}}",
                    )
                ],
                kind="heatmap",
            ),
            panel(
                "Loaded model version and its load time",
                [
                    prom("max by (arm) (fournil_api_model_version)", "{{arm}} version"),
                    prom("max by (arm) (fournil_api_model_load_seconds)", "{{arm}} load s"),
                ],
            ),
            panel(
                "Workers and serving tables",
                [
                    prom("count(fournil_api_worker_up)", "workers"),
                    prom("max by (table) (fournil_api_serving_table_rows)", "{{table}} rows"),
                ],
            ),
        ],
    )


def pipelines() -> dict[str, Any]:
    return dashboard(
        "fournil-pipelines",
        "Pipelines",
        "The Prefect flows: last successes, durations per stage, rows, warnings and failures.",
        [
            panel(
                "Time since the last successful run",
                [
                    prom(
                        "time() - max by (flow) (fournil_pipeline_last_success_timestamp_seconds)",
                        "{{flow}}",
                    )
                ],
                unit="s",
                description="The stale-pipeline alerts fire past 26 h for etl and forecast.",
            ),
            panel(
                "Last run succeeded (1) or failed (0)",
                [prom("max by (flow) (fournil_pipeline_last_run_success)", "{{flow}}")],
            ),
            panel(
                "Run duration",
                [
                    sql(
                        """SELECT finished_at AS time, flow AS metric,
                        extract(epoch FROM finished_at - started_at) AS value
                        FROM pipeline_runs
                        WHERE finished_at IS NOT NULL AND $__timeFilter(started_at)
                        ORDER BY 1"""
                    )
                ],
                unit="s",
            ),
            panel(
                "Stage durations",
                [
                    sql(
                        """SELECT r.started_at AS time, r.flow || ' / ' || s.key AS metric,
                        s.value::float AS value
                        FROM pipeline_runs r, json_each_text(r.stages) s
                        WHERE $__timeFilter(r.started_at)
                        ORDER BY 1"""
                    )
                ],
                unit="s",
            ),
            panel(
                "Rows processed per run",
                [
                    sql(
                        """SELECT started_at AS time, flow AS metric, rows_processed AS value
                        FROM pipeline_runs WHERE $__timeFilter(started_at) ORDER BY 1"""
                    )
                ],
            ),
            panel(
                "Warnings per run",
                [
                    sql(
                        """SELECT started_at AS time, flow AS metric, warnings AS value
                        FROM pipeline_runs WHERE $__timeFilter(started_at) ORDER BY 1"""
                    )
                ],
            ),
            panel(
                "ETL: share of rows quarantined",
                [
                    sql(
                        """SELECT date_trunc('hour', started_at) AS time,
                        sum(rows_rejected)::float / nullif(sum(rows_read), 0) AS "quarantined"
                        FROM etl_runs WHERE $__timeFilter(started_at)
                        GROUP BY 1 ORDER BY 1"""
                    )
                ],
                unit="percentunit",
            ),
            panel(
                "Failed runs (all time, by flow)",
                [prom("max by (flow) (fournil_pipeline_failed_runs)", "{{flow}}")],
            ),
            panel(
                "Recent failures",
                [
                    sql(
                        """SELECT started_at AS "started", flow, error
                        FROM pipeline_runs
                        WHERE status = 'failed' AND $__timeFilter(started_at)
                        ORDER BY started_at DESC LIMIT 50""",
                        fmt="table",
                    )
                ],
                kind="table",
                width=24,
            ),
        ],
    )


def model_quality() -> dict[str, Any]:
    return dashboard(
        "fournil-models",
        "Model quality",
        "Training metrics, forecast accuracy once actuals land, champion vs challenger, drift.",
        [
            panel(
                "Training: RMSE on the training rows and on the backtest (weekly runs)",
                [
                    sql(
                        """SELECT started_at AS time,
                        (metrics->>'train_rmse')::float AS "train RMSE",
                        (metrics->>'backtest_rmse')::float AS "backtest RMSE"
                        FROM pipeline_runs
                        WHERE flow = 'train' AND status = 'success'
                        AND $__timeFilter(started_at)
                        ORDER BY 1"""
                    )
                ],
            ),
            panel(
                "Forecast WAPE per horizon (daily, on actuals)",
                [
                    sql(
                        """SELECT evaluated_on::timestamp AS time,
                        'h' || lpad(key, 2, '0') AS metric, wape AS value
                        FROM forecast_accuracy
                        WHERE level = 'horizon' AND wape IS NOT NULL
                        AND $__timeFilter(evaluated_on)
                        ORDER BY 1"""
                    )
                ],
                unit="percentunit",
            ),
            panel(
                "Forecast WAPE of the last evaluated day, by model version",
                [prom("max by (model, version) (fournil_forecast_wape)", "{{model}} v{{version}}")],
                unit="percentunit",
                description="The accuracy alert fires above 35%.",
            ),
            panel(
                "Online predictions on actuals: WAPE by arm (champion vs challenger)",
                [
                    sql(
                        """SELECT p.target_date::timestamp AS time, p.arm AS metric,
                        sum(abs(p.yhat - s.units_sold)) / nullif(sum(s.units_sold), 0) AS value
                        FROM prediction_log p
                        JOIN sales s ON s.store_id = p.store_id AND s.product_id = p.product_id
                        AND s.sale_date = p.target_date
                        WHERE $__timeFilter(p.target_date)
                        GROUP BY 1, 2 ORDER BY 1"""
                    )
                ],
                unit="percentunit",
            ),
            panel(
                "Drift: PSI per feature",
                [
                    sql(
                        """SELECT evaluated_on::timestamp AS time, feature AS metric, psi AS value
                        FROM drift_reports WHERE $__timeFilter(evaluated_on) ORDER BY 1"""
                    )
                ],
                description="The drift alert fires on the features the monitor flags: PSI "
                "above FOURNIL_DRIFT_PSI_THRESHOLD (default 0.2) on enough samples.",
            ),
            panel(
                "Drift: PSI of the last report",
                [prom("max by (feature) (fournil_drift_psi)", "{{feature}}")],
            ),
            panel(
                "Promotion gate decisions",
                [
                    sql(
                        """SELECT decided_at AS "decided", model_version AS "version", action,
                        champion_before AS "champion before", champion_after AS "champion after"
                        FROM model_decisions WHERE $__timeFilter(decided_at)
                        ORDER BY decided_at DESC LIMIT 50""",
                        fmt="table",
                    )
                ],
                kind="table",
                width=24,
            ),
        ],
    )


def infrastructure() -> dict[str, Any]:
    fs = 'fstype!~"tmpfs|overlay|squashfs"'
    return dashboard(
        "fournil-infra",
        "Infrastructure",
        "The VM (node exporter) and PostgreSQL (postgres exporter), and the scrape targets.",
        [
            panel(
                "CPU busy",
                [prom(f'1 - avg(rate(node_cpu_seconds_total{{mode="idle"}}[{RATE}]))', "busy")],
                unit="percentunit",
            ),
            panel(
                "Memory used",
                [prom("1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", "used")],
                unit="percentunit",
            ),
            panel(
                "Disk used per mount point",
                [
                    prom(
                        f"1 - node_filesystem_avail_bytes{{{fs}}} "
                        f"/ node_filesystem_size_bytes{{{fs}}}",
                        "{{mountpoint}}",
                    )
                ],
                unit="percentunit",
                description="The disk alert fires under 10% free.",
            ),
            panel(
                "Network traffic",
                [
                    prom(
                        "sum by (device) "
                        f'(rate(node_network_receive_bytes_total{{device!="lo"}}[{RATE}]))',
                        "{{device}} in",
                    ),
                    prom(
                        "sum by (device) "
                        f'(rate(node_network_transmit_bytes_total{{device!="lo"}}[{RATE}]))',
                        "{{device}} out",
                    ),
                ],
                unit="Bps",
            ),
            panel("Load average", [prom("node_load1", "1 min"), prom("node_load5", "5 min")]),
            panel(
                "PostgreSQL: connections per database",
                [
                    prom("max(pg_up)", "server up"),
                    prom("sum by (datname) (pg_stat_database_numbackends)", "{{datname}}"),
                ],
            ),
            panel(
                "PostgreSQL: commits per second",
                [
                    prom(
                        f"sum by (datname) (rate(pg_stat_database_xact_commit[{RATE}]))",
                        "{{datname}}",
                    )
                ],
                unit="ops",
            ),
            panel(
                "PostgreSQL: database size",
                [prom("max by (datname) (pg_database_size_bytes)", "{{datname}}")],
                unit="bytes",
            ),
            panel(
                "Scrape targets up",
                [prom("max by (job) (up)", "{{job}}")],
                width=24,
            ),
        ],
    )


DASHBOARDS = {"Fournil": (api_service, pipelines, model_quality, infrastructure)}


def dashboards() -> Iterator[tuple[Path, dict[str, Any]]]:
    for folder, builders in DASHBOARDS.items():
        for build in builders:
            board = build()
            yield OUT / folder / f"{board['uid']}.json", board


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, sort_keys=True) + "\n"


def main() -> None:
    for path, board in dashboards():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(board), encoding="utf-8")
        print(f"wrote {path.relative_to(HERE.parent)} ({len(board['panels'])} panels)")


if __name__ == "__main__":
    main()
