"""The Superset dashboards, as code: `python superset/generate.py` (or `make dashboards`) writes
the import bundle under superset/bundle/ (YAML: metadata, the warehouse database, datasets,
charts, dashboards), which `superset/bootstrap.sh` imports at every start of the stack, with the
warehouse's address and the read-only role's password injected from the environment.

Every object's uuid derives from its name, so a regenerated bundle overwrites the same objects.
Every chart carries a saved `query_context` (what the chart's frontend would build from its
params), so its data can be fetched through `/api/v1/chart/{id}/data/` (reports, alerts, tests).
Datasets are virtual (SQL on the warehouse, PostgreSQL), named `fournil_<name>`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
OUT = HERE / "bundle"
VERSION = "1.0.0"
NAMESPACE = uuid.UUID("6f1c2a52-6a57-4f0e-9a0c-2f6b3a0d5e11")
DATABASE_NAME = "Fournil warehouse"
# Overwritten at import from SUPERSET_WAREHOUSE_URI; the compose address, for reference.
DATABASE_URI = "postgresql+psycopg2://warehouse_reader:XXXXXXXXXX@db:5432/warehouse"
GRID_WIDTH = 12


def uid(kind: str, name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{name}"))


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


# --- datasets -----------------------------------------------------------------------------------
@dataclass
class Dataset:
    name: str
    sql: str
    columns: dict[str, str]  # name -> type (TIMESTAMP/DATE columns are temporal)
    metrics: dict[str, tuple[str, str]]  # name -> (SQL expression, d3 format)
    description: str
    main_dttm_col: str | None = None

    @property
    def table_name(self) -> str:
        return f"fournil_{self.name}"

    @property
    def uuid(self) -> str:
        return uid("dataset", self.name)

    def config(self) -> dict[str, Any]:
        return {
            "table_name": self.table_name,
            "main_dttm_col": self.main_dttm_col,
            "description": self.description,
            "default_endpoint": None,
            "offset": 0,
            "cache_timeout": None,
            "schema": "public",
            "sql": " ".join(self.sql.split()),
            "params": None,
            "template_params": None,
            "filter_select_enabled": True,
            "fetch_values_predicate": None,
            "extra": None,
            "normalize_columns": False,
            "always_filter_main_dttm": False,
            "uuid": self.uuid,
            "metrics": [
                {
                    "metric_name": name,
                    "verbose_name": name.replace("_", " "),
                    "metric_type": None,
                    "expression": " ".join(expression.split()),
                    "description": None,
                    "d3format": d3format,
                    "extra": {},
                    "warning_text": None,
                }
                for name, (expression, d3format) in self.metrics.items()
            ],
            "columns": [
                {
                    "column_name": name,
                    "verbose_name": None,
                    "is_dttm": kind in ("DATE", "TIMESTAMP WITH TIME ZONE"),
                    "is_active": True,
                    "type": kind,
                    "advanced_data_type": None,
                    "groupby": True,
                    "filterable": True,
                    "expression": None,
                    "description": None,
                    "python_date_format": None,
                    "datetime_format": None,
                    "extra": {},
                }
                for name, kind in self.columns.items()
            ],
            "version": VERSION,
            "database_uuid": uid("database", DATABASE_NAME),
        }


TS = "TIMESTAMP WITH TIME ZONE"

SALES = Dataset(
    "sales_daily",
    """
    SELECT s.sale_date, st.name AS store, st.region, p.name AS product, p.family,
           s.units_sold, s.price, s.units_sold * s.price AS revenue,
           CASE WHEN s.promo THEN 'promo' ELSE 'regular price' END AS promo, s.stock_out
    FROM sales s
    JOIN stores st ON st.store_id = s.store_id
    JOIN products p ON p.product_id = s.product_id
    """,
    {
        "sale_date": "DATE",
        "store": "VARCHAR(200)",
        "region": "VARCHAR(100)",
        "product": "VARCHAR(200)",
        "family": "VARCHAR(100)",
        "units_sold": "INTEGER",
        "price": "DOUBLE PRECISION",
        "revenue": "DOUBLE PRECISION",
        "promo": "TEXT",
        "stock_out": "BOOLEAN",
    },
    {
        "units": ("SUM(units_sold)", ",d"),
        "revenue": ("SUM(revenue)", ",.0f"),
        "units_per_series_day": ("AVG(units_sold)", ".1f"),
        "stock_out_share": ("AVG(CASE WHEN stock_out THEN 1.0 ELSE 0.0 END)", ".1%"),
    },
    "Daily unit sales per store and product, with store and product attributes.",
    "sale_date",
)

FORECASTS = Dataset(
    "forecasts_vs_actuals",
    """
    WITH latest AS (
      SELECT DISTINCT ON (store_id, product_id, target_date) *
      FROM forecasts
      ORDER BY store_id, product_id, target_date, forecast_date DESC, created_at DESC
    ), recent_sales AS (
      SELECT * FROM sales
      WHERE sale_date >= (SELECT MIN(target_date) - 28 FROM forecasts)
    )
    SELECT COALESCE(f.target_date, s.sale_date) AS day, st.name AS store, p.name AS product,
           f.model_version, f.forecast_date, f.horizon, f.yhat, f.yhat_lower, f.yhat_upper,
           s.units_sold AS actual
    FROM latest f
    FULL JOIN recent_sales s
      ON s.store_id = f.store_id AND s.product_id = f.product_id AND s.sale_date = f.target_date
    JOIN stores st ON st.store_id = COALESCE(f.store_id, s.store_id)
    JOIN products p ON p.product_id = COALESCE(f.product_id, s.product_id)
    """,
    {
        "day": "DATE",
        "store": "VARCHAR(200)",
        "product": "VARCHAR(200)",
        "model_version": "VARCHAR(50)",
        "forecast_date": "DATE",
        "horizon": "INTEGER",
        "yhat": "DOUBLE PRECISION",
        "yhat_lower": "DOUBLE PRECISION",
        "yhat_upper": "DOUBLE PRECISION",
        "actual": "INTEGER",
    },
    {
        "forecast": ("SUM(yhat)", ",.1f"),
        "lower": ("SUM(yhat_lower)", ",.1f"),
        "upper": ("SUM(yhat_upper)", ",.1f"),
        "actual_units": ("SUM(actual)", ",d"),
        "forecasts": ("COUNT(yhat)", ",d"),
        "scored": ("COUNT(CASE WHEN yhat IS NOT NULL THEN actual END)", ",d"),
        "first_day": ("MIN(CASE WHEN yhat IS NOT NULL THEN day END)", ""),
        "last_day": ("MAX(CASE WHEN yhat IS NOT NULL THEN day END)", ""),
        "wape": (
            "SUM(ABS(yhat - actual)) / NULLIF(SUM(CASE WHEN yhat IS NOT NULL THEN actual END), 0)",
            ".1%",
        ),
    },
    "The newest forecast for every store, product and day (with its interval and the model "
    "version that made it) next to the actual units, from 28 days before the first forecast.",
    "day",
)

ACCURACY = Dataset(
    "forecast_accuracy",
    """
    SELECT evaluated_on, model_name, model_version, level, key, n, actual_sum, wape, rmse,
           bias, coverage
    FROM forecast_accuracy
    """,
    {
        "evaluated_on": "DATE",
        "model_name": "VARCHAR(200)",
        "model_version": "VARCHAR(50)",
        "level": "VARCHAR(20)",
        "key": "VARCHAR(50)",
        "n": "INTEGER",
        "actual_sum": "DOUBLE PRECISION",
        "wape": "DOUBLE PRECISION",
        "rmse": "DOUBLE PRECISION",
        "bias": "DOUBLE PRECISION",
        "coverage": "DOUBLE PRECISION",
    },
    {
        "weighted_wape": ("SUM(wape * actual_sum) / NULLIF(SUM(actual_sum), 0)", ".1%"),
        "mean_rmse": ("AVG(rmse)", ".2f"),
        "mean_bias": ("AVG(bias)", ".2f"),
        "interval_coverage": ("AVG(coverage)", ".1%"),
    },
    "Accuracy of stored forecasts once actuals landed, by horizon, store and product "
    "(the monitor flow).",
    "evaluated_on",
)

ARMS = Dataset(
    "online_predictions",
    """
    SELECT pl.logged_at, pl.target_date, pl.arm, pl.model_version, pl.yhat,
           s.units_sold AS actual
    FROM prediction_log pl
    LEFT JOIN sales s
      ON s.store_id = pl.store_id AND s.product_id = pl.product_id
      AND s.sale_date = pl.target_date
    """,
    {
        "logged_at": TS,
        "target_date": "DATE",
        "arm": "VARCHAR(20)",
        "model_version": "VARCHAR(50)",
        "yhat": "DOUBLE PRECISION",
        "actual": "INTEGER",
    },
    {
        "predictions": ("COUNT(*)", ",d"),
        "scored": ("COUNT(actual)", ",d"),
        "wape": (
            "SUM(CASE WHEN actual IS NOT NULL THEN ABS(yhat - actual) END) "
            "/ NULLIF(SUM(actual), 0)",
            ".1%",
        ),
    },
    "Every online prediction of the API by arm (champion, challenger, fallback), next to the "
    "actual units once they landed.",
    "logged_at",
)

ETL_RUNS = Dataset(
    "etl_runs",
    """
    SELECT run_id, batch_id, regexp_replace(source, '^.*/', '') AS file, kind, status,
           started_at, finished_at, EXTRACT(EPOCH FROM finished_at - started_at) AS seconds,
           rows_read, rows_inserted, rows_updated, rows_unchanged, rows_rejected, error
    FROM etl_runs
    """,
    {
        "run_id": "BIGINT",
        "batch_id": "VARCHAR(36)",
        "file": "TEXT",
        "kind": "VARCHAR(20)",
        "status": "VARCHAR(20)",
        "started_at": TS,
        "finished_at": TS,
        "seconds": "NUMERIC",
        "rows_read": "BIGINT",
        "rows_inserted": "BIGINT",
        "rows_updated": "BIGINT",
        "rows_unchanged": "BIGINT",
        "rows_rejected": "BIGINT",
        "error": "TEXT",
    },
    {
        "runs": ("COUNT(*)", ",d"),
        "failed_runs": ("SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END)", ",d"),
        "inserted": ("SUM(rows_inserted)", ",d"),
        "updated": ("SUM(rows_updated)", ",d"),
        "unchanged": ("SUM(rows_unchanged)", ",d"),
        "rejected": ("SUM(rows_rejected)", ",d"),
        "rejected_share": ("SUM(rows_rejected) * 1.0 / NULLIF(SUM(rows_read), 0)", ".2%"),
    },
    "One row per file an ETL run loaded: outcome and counts (read = inserted + updated + "
    "unchanged + rejected).",
    "started_at",
)

QUARANTINE = Dataset(
    "quarantine",
    """
    SELECT q.created_at, q.etl_run_id, regexp_replace(q.source, '^.*/', '') AS file, q.line,
           CASE WHEN q.reason LIKE 'duplicate%' THEN 'duplicate key'
                ELSE split_part(q.reason, ':', 1) END AS field,
           q.reason
    FROM quarantine q
    """,
    {
        "created_at": TS,
        "etl_run_id": "BIGINT",
        "file": "TEXT",
        "line": "BIGINT",
        "field": "TEXT",
        "reason": "TEXT",
    },
    {"rows": ("COUNT(*)", ",d")},
    "Rows the ETL rejected, each with its reason; `field` is the first field at fault.",
    "created_at",
)

PARITY = Dataset(
    "parity_checks",
    """
    SELECT checked_at, label_a, label_b, table_name, column_name, stat, value_a, value_b,
           value_b - value_a AS difference, equal,
           checked_at = (SELECT MAX(checked_at) FROM parity_checks) AS latest
    FROM parity_checks
    """,
    {
        "checked_at": TS,
        "label_a": "VARCHAR(200)",
        "label_b": "VARCHAR(200)",
        "table_name": "VARCHAR(100)",
        "column_name": "VARCHAR(100)",
        "stat": "VARCHAR(20)",
        "value_a": "DOUBLE PRECISION",
        "value_b": "DOUBLE PRECISION",
        "difference": "DOUBLE PRECISION",
        "equal": "BOOLEAN",
        "latest": "BOOLEAN",
    },
    {
        "figures": ("COUNT(*)", ",d"),
        "differences": ("SUM(CASE WHEN equal THEN 0 ELSE 1 END)", ",d"),
    },
    "Environment parity (`fournil parity --save`): the same figures on two warehouses.",
    "checked_at",
)

DATASETS = (SALES, FORECASTS, ACCURACY, ARMS, ETL_RUNS, QUARANTINE, PARITY)


# --- charts -------------------------------------------------------------------------------------
@dataclass
class Chart:
    name: str
    dataset: Dataset
    viz_type: str
    params: dict[str, Any]
    query: dict[str, Any]
    width: int = 6
    height: int = 50
    chart_id: int = 0  # stable per bundle: the dashboards' native filter scopes refer to it

    @property
    def uuid(self) -> str:
        return uid("chart", self.name)

    def config(self) -> dict[str, Any]:
        # the dataset's id is set on import (here a placeholder: 0)
        params = {
            "datasource": "0__table",
            "viz_type": self.viz_type,
            "annotation_layers": [],
            **self.params,
        }
        context = {
            "datasource": {"id": 0, "type": "table"},
            "force": False,
            "queries": [self.query],
            "form_data": params,
            "result_format": "json",
            "result_type": "full",
        }
        return {
            "slice_name": self.name,
            "description": None,
            "certified_by": None,
            "certification_details": None,
            "viz_type": self.viz_type,
            "params": params,
            "query_context": json.dumps(context, sort_keys=True),
            "cache_timeout": None,
            "uuid": self.uuid,
            "version": VERSION,
            "dataset_uuid": self.dataset.uuid,
        }


def _where(filters: list[str]) -> tuple[list[dict[str, Any]], str]:
    adhoc = [
        {"expressionType": "SQL", "clause": "WHERE", "sqlExpression": f, "subject": None}
        for f in filters
    ]
    return adhoc, " AND ".join(f"({f})" for f in filters)


def _query(
    columns: list[Any],
    metrics: list[str],
    where: str,
    row_limit: int,
    orderby: list[Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "filters": [],
        "extras": {"having": "", "where": where},
        "applied_time_extras": {},
        "columns": columns,
        "metrics": metrics,
        "orderby": orderby if orderby is not None else [[m, False] for m in metrics[:1]],
        "annotation_layers": [],
        "row_limit": row_limit,
        "series_limit": 0,
        "order_desc": True,
        "url_params": {},
        "custom_params": {},
        "custom_form_data": {},
        **extra,
    }


def series(
    name: str,
    dataset: Dataset,
    x: str,
    metrics: list[str],
    groupby: tuple[str, ...] = (),
    grain: str | None = "P1D",
    bar: bool = False,
    filters: tuple[str, ...] = (),
    width: int = 6,
    y_format: str = "SMART_NUMBER",
    rolling: int | None = None,
) -> Chart:
    """A line or bar chart; x is a temporal column (with `grain`) or a category (grain None).
    `rolling`: a trailing mean over that many points (no dip at partial weeks, unlike P1W)."""
    adhoc, where = _where(list(filters))
    temporal = grain is not None
    params: dict[str, Any] = {
        "x_axis": x,
        "metrics": metrics,
        "groupby": list(groupby),
        "adhoc_filters": adhoc,
        "row_limit": 10000,
        "truncate_metric": True,
        "show_legend": True,
        "legendType": "scroll",
        "legendOrientation": "top",
        "rich_tooltip": True,
        "y_axis_format": y_format,
        "x_axis_sort_asc": True,
        "order_desc": True,
        "comparison_type": "values",
        "extra_form_data": {},
        "color_scheme": "supersetColors",
    }
    axis: dict[str, Any] = {
        "columnType": "BASE_AXIS",
        "sqlExpression": x,
        "label": x,
        "expressionType": "SQL",
    }
    if temporal:
        params["time_grain_sqla"] = grain
        params["x_axis_time_format"] = "smart_date"
        params["markerEnabled"] = not rolling  # a single evaluation still shows as a point
        params["markerSize"] = 6
        axis["timeGrain"] = grain
    else:
        params["x_axis_sort"] = x
    pivot: dict[str, Any] = {
        "operation": "pivot",
        "options": {
            "index": [x],
            "columns": list(groupby),
            "aggregates": {m: {"operator": "mean"} for m in metrics},
            "drop_missing_columns": False,
        },
    }
    post: list[dict[str, Any]] = [pivot]
    if rolling:
        params.update(rolling_type="mean", rolling_periods=rolling, min_periods=rolling)
        post.append(
            {
                "operation": "rolling",
                "options": {
                    "rolling_type": "mean",
                    "window": rolling,
                    "min_periods": rolling,
                    "columns": {m: m for m in metrics},
                },
            }
        )
    if groupby and len(metrics) == 1:
        post.append(
            {
                "operation": "rename",
                "options": {"columns": {metrics[0]: None}, "level": 0, "inplace": True},
            }
        )
    post.append({"operation": "flatten"})
    query = _query(
        [axis, *groupby],
        metrics,
        where,
        10000,
        orderby=[] if temporal else [[x, True]],
        series_columns=list(groupby),
        time_offsets=[],
        post_processing=post,
    )
    if temporal:
        query["extras"]["time_grain_sqla"] = grain
    viz = "echarts_timeseries_bar" if bar else "echarts_timeseries_line"
    return Chart(name, dataset, viz, params, query, width=width)


def big_number(
    name: str, dataset: Dataset, metric: str, subheader: str, filters: tuple[str, ...] = ()
) -> Chart:
    adhoc, where = _where(list(filters))
    params = {
        "metric": metric,
        "adhoc_filters": adhoc,
        "header_font_size": 0.4,
        "subheader_font_size": 0.15,
        "subheader": subheader,
        "y_axis_format": "SMART_NUMBER",
        "extra_form_data": {},
    }
    query = _query([], [metric], where, 10000, orderby=[], post_processing=[])
    return Chart(name, dataset, "big_number_total", params, query, width=3, height=25)


def table(
    name: str,
    dataset: Dataset,
    columns: list[str],
    metrics: tuple[str, ...] = (),
    order: tuple[str, bool] | None = None,
    filters: tuple[str, ...] = (),
    width: int = 6,
    row_limit: int = 1000,
) -> Chart:
    """A table: aggregated by `columns` when there are metrics, else raw rows."""
    adhoc, where = _where(list(filters))
    raw = not metrics
    params: dict[str, Any] = {
        "query_mode": "raw" if raw else "aggregate",
        "adhoc_filters": adhoc,
        "row_limit": row_limit,
        "server_page_length": 10,
        "table_timestamp_format": "smart_date",
        "show_cell_bars": False,
        "extra_form_data": {},
    }
    if raw:
        params["all_columns"] = columns
        params["order_by_cols"] = [json.dumps(list(order))] if order else []
        orderby = [list(order)] if order else []
        query = _query(columns, [], where, row_limit, orderby=orderby, post_processing=[])
    else:
        params["groupby"] = columns
        params["metrics"] = list(metrics)
        params["order_desc"] = True
        orderby = [list(order)] if order else [[metrics[0], False]]
        query = _query(columns, list(metrics), where, row_limit, orderby=orderby)
        query["post_processing"] = []
    return Chart(name, dataset, "table", params, query, width=width)


# --- dashboards ---------------------------------------------------------------------------------
@dataclass
class NativeFilter:
    name: str
    dataset: Dataset
    column: str

    @property
    def id(self) -> str:
        return f"NATIVE_FILTER-{slug(self.name).lower()}"


@dataclass
class Dashboard:
    title: str
    slug: str
    description: str
    rows: list[list[Chart]]
    filters: list[NativeFilter] = field(default_factory=list)

    @property
    def uuid(self) -> str:
        return uid("dashboard", self.title)

    @property
    def charts(self) -> list[Chart]:
        return [chart for row in self.rows for chart in row]

    def position(self) -> dict[str, Any]:
        position: dict[str, Any] = {
            "DASHBOARD_VERSION_KEY": "v2",
            "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
            "GRID_ID": {
                "type": "GRID",
                "id": "GRID_ID",
                "children": [],
                "parents": ["ROOT_ID"],
            },
            "HEADER_ID": {"id": "HEADER_ID", "type": "HEADER", "meta": {"text": self.title}},
        }
        for number, row in enumerate(self.rows, start=1):
            assert sum(c.width for c in row) <= GRID_WIDTH, f"{self.title}: row {number} too wide"
            row_id = f"ROW-{number}"
            position["GRID_ID"]["children"].append(row_id)
            position[row_id] = {
                "type": "ROW",
                "id": row_id,
                "children": [],
                "parents": ["ROOT_ID", "GRID_ID"],
                "meta": {"background": "BACKGROUND_TRANSPARENT"},
            }
            for chart in row:
                chart_key = f"CHART-{slug(chart.name).lower()}"
                position[row_id]["children"].append(chart_key)
                position[chart_key] = {
                    "type": "CHART",
                    "id": chart_key,
                    "children": [],
                    "parents": ["ROOT_ID", "GRID_ID", row_id],
                    "meta": {
                        "width": chart.width,
                        "height": chart.height,
                        "chartId": chart.chart_id,
                        "uuid": chart.uuid,
                        "sliceName": chart.name,
                    },
                }
        return position

    def native_filters(self) -> list[dict[str, Any]]:
        out = []
        for nf in self.filters:
            excluded = [c.chart_id for c in self.charts if c.dataset is not nf.dataset]
            out.append(
                {
                    "id": nf.id,
                    "name": nf.name,
                    "filterType": "filter_select",
                    "type": "NATIVE_FILTER",
                    "description": "",
                    "targets": [{"datasetUuid": nf.dataset.uuid, "column": {"name": nf.column}}],
                    "controlValues": {
                        "enableEmptyFilter": False,
                        "defaultToFirstItem": False,
                        "multiSelect": True,
                        "searchAllOptions": False,
                        "inverseSelection": False,
                    },
                    "defaultDataMask": {"extraFormData": {}, "filterState": {}, "ownState": {}},
                    "cascadeParentIds": [],
                    "scope": {"rootPath": ["ROOT_ID"], "excluded": excluded},
                }
            )
        return out

    def config(self) -> dict[str, Any]:
        return {
            "dashboard_title": self.title,
            "description": self.description,
            "css": "",
            "slug": self.slug,
            "certified_by": None,
            "certification_details": None,
            "published": True,
            "uuid": self.uuid,
            "position": self.position(),
            "metadata": {
                "color_scheme": "supersetColors",
                "refresh_frequency": 0,
                "expanded_slices": {},
                "label_colors": {},
                "timed_refresh_immune_slices": [],
                "cross_filters_enabled": False,
                "native_filter_configuration": self.native_filters(),
            },
            "version": VERSION,
        }


def sales_dashboard() -> Dashboard:
    return Dashboard(
        "Sales",
        "fournil-sales",
        "Units and revenue over time, by store, by product family, promo vs regular price.",
        [
            [
                big_number("Units sold", SALES, "units", "all stores, all products"),
                big_number("Revenue", SALES, "revenue", "units x price charged"),
                big_number("Stock-out share", SALES, "stock_out_share", "of reported days"),
                big_number("Units per store-product-day", SALES, "units_per_series_day", "mean"),
            ],
            [
                series("Units sold per day (7-day mean)", SALES, "sale_date", ["units"], rolling=7),
                series("Revenue per day (7-day mean)", SALES, "sale_date", ["revenue"], rolling=7),
            ],
            [
                series(
                    "Units per day by product family (7-day mean)",
                    SALES,
                    "sale_date",
                    ["units"],
                    groupby=("family",),
                    rolling=7,
                ),
                series("Units by store", SALES, "store", ["units"], grain=None, bar=True),
            ],
            [
                series(
                    "Promo vs regular price: units per store-product-day, by family",
                    SALES,
                    "family",
                    ["units_per_series_day"],
                    groupby=("promo",),
                    grain=None,
                    bar=True,
                    width=12,
                ),
            ],
        ],
    )


def forecasts_dashboard() -> Dashboard:
    return Dashboard(
        "Forecasts vs actuals",
        "fournil-forecasts",
        "The newest forecast per day with its interval against actual units (pick a store "
        "and a product above), accuracy by horizon and store, the model versions behind the "
        "forecasts, and champion vs challenger on online predictions.",
        [
            [
                series(
                    "Forecast, interval and actual units",
                    FORECASTS,
                    "day",
                    ["actual_units", "forecast", "lower", "upper"],
                    width=12,
                ),
            ],
            [
                series(
                    "WAPE by horizon (days ahead)",
                    ACCURACY,
                    "key",
                    ["weighted_wape"],
                    grain=None,
                    bar=True,
                    filters=("level = 'horizon'",),
                    width=4,
                    y_format=".1%",
                ),
                series(
                    "WAPE by store",
                    ACCURACY,
                    "key",
                    ["weighted_wape"],
                    grain=None,
                    bar=True,
                    filters=("level = 'store'",),
                    width=4,
                    y_format=".1%",
                ),
                series(
                    "WAPE over time by model version",
                    ACCURACY,
                    "evaluated_on",
                    ["weighted_wape"],
                    groupby=("model_version",),
                    filters=("level = 'overall'",),
                    width=4,
                    y_format=".1%",
                ),
            ],
            [
                table(
                    "Model versions behind the forecasts",
                    FORECASTS,
                    ["model_version"],
                    metrics=("forecasts", "first_day", "last_day", "scored", "wape"),
                    filters=("yhat IS NOT NULL",),
                ),
                table(
                    "Champion vs challenger: online predictions on actuals",
                    ARMS,
                    ["arm", "model_version"],
                    metrics=("predictions", "scored", "wape"),
                ),
            ],
        ],
        filters=[
            NativeFilter("Store", FORECASTS, "store"),
            NativeFilter("Product", FORECASTS, "product"),
        ],
    )


def data_quality_dashboard() -> Dashboard:
    return Dashboard(
        "Data quality",
        "fournil-data-quality",
        "ETL runs and their outcome, rows loaded, updated and rejected per day, and why rows "
        "were quarantined.",
        [
            [
                big_number("Files loaded", ETL_RUNS, "runs", "ETL runs"),
                big_number("Failed ETL runs", ETL_RUNS, "failed_runs", "rolled back"),
                big_number("Rows rejected", ETL_RUNS, "rejected", "kept in quarantine"),
                big_number("Share of rows rejected", ETL_RUNS, "rejected_share", "of rows read"),
            ],
            [
                series(
                    "Rows per day: inserted, updated, unchanged, rejected",
                    ETL_RUNS,
                    "started_at",
                    ["inserted", "updated", "unchanged", "rejected"],
                    bar=True,
                ),
                series(
                    "Quarantined rows by field at fault",
                    QUARANTINE,
                    "field",
                    ["rows"],
                    grain=None,
                    bar=True,
                ),
            ],
            [
                table(
                    "ETL runs",
                    ETL_RUNS,
                    [
                        "started_at",
                        "file",
                        "kind",
                        "status",
                        "rows_read",
                        "rows_inserted",
                        "rows_updated",
                        "rows_unchanged",
                        "rows_rejected",
                        "seconds",
                        "error",
                    ],
                    order=("started_at", False),
                    width=12,
                ),
            ],
            [
                table(
                    "Quarantined rows, newest first",
                    QUARANTINE,
                    ["created_at", "file", "line", "reason"],
                    order=("created_at", False),
                    width=12,
                ),
            ],
        ],
    )


def parity_dashboard() -> Dashboard:
    latest = ("latest",)
    return Dashboard(
        "Environment parity",
        "fournil-parity",
        "Seed 000's reproducibility check: for the important tables, row counts, NULLs per "
        "column and SUM/AVG/MIN/MAX of key columns, side by side for two warehouses "
        "(`fournil parity URL_A URL_B --save`).",
        [
            [
                big_number(
                    "Differences in the latest check", PARITY, "differences", "figures", latest
                ),
                big_number("Figures compared", PARITY, "figures", "in the latest check", latest),
                series(
                    "Differences per check",
                    PARITY,
                    "checked_at",
                    ["differences"],
                    grain="PT1H",
                    bar=True,
                ),
            ],
            [
                table(
                    "Row counts (latest check)",
                    PARITY,
                    ["table_name", "label_a", "value_a", "label_b", "value_b", "difference"],
                    order=("table_name", True),
                    filters=("latest", "stat = 'rows'"),
                    width=12,
                ),
            ],
            [
                table(
                    "Every figure side by side (latest check, differences first)",
                    PARITY,
                    [
                        "table_name",
                        "column_name",
                        "stat",
                        "value_a",
                        "value_b",
                        "difference",
                        "equal",
                    ],
                    order=("equal", True),
                    filters=latest,
                    width=12,
                ),
            ],
        ],
    )


DASHBOARDS = (sales_dashboard, forecasts_dashboard, data_quality_dashboard, parity_dashboard)


# --- the bundle ---------------------------------------------------------------------------------
def database_config() -> dict[str, Any]:
    return {
        "database_name": DATABASE_NAME,
        "sqlalchemy_uri": DATABASE_URI,
        "cache_timeout": None,
        "expose_in_sqllab": True,
        "allow_run_async": False,
        "allow_ctas": False,
        "allow_cvas": False,
        "allow_dml": False,
        "allow_file_upload": False,
        "extra": {"allows_virtual_table_explore": True},
        "impersonate_user": False,
        "configuration_method": "sqlalchemy_form",
        "uuid": uid("database", DATABASE_NAME),
        "version": VERSION,
    }


def bundle() -> Iterator[tuple[str, dict[str, Any]]]:
    """(path inside the bundle, YAML content) for every file."""
    boards = [build() for build in DASHBOARDS]
    names = [chart.name for board in boards for chart in board.charts]
    assert len(names) == len(set(names)), "chart names (and so uuids) must be unique"
    number = 0
    for board in boards:
        for chart in board.charts:
            number += 1
            chart.chart_id = number
    yield "metadata.yaml", {"version": VERSION, "type": "assets"}
    yield f"databases/{slug(DATABASE_NAME)}.yaml", database_config()
    for dataset in DATASETS:
        yield f"datasets/{slug(DATABASE_NAME)}/{dataset.table_name}.yaml", dataset.config()
    for board in boards:
        for chart in board.charts:
            yield f"charts/{slug(chart.name)}_{chart.chart_id}.yaml", chart.config()
        yield f"dashboards/{slug(board.title)}.yaml", board.config()


def render(content: dict[str, Any]) -> str:
    return yaml.safe_dump(content, sort_keys=False, allow_unicode=True, width=100)


def main() -> None:
    files = dict(bundle())
    for old in OUT.rglob("*.yaml"):
        if str(old.relative_to(OUT)) not in files:
            old.unlink()
    for name, content in files.items():
        path = OUT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(content), encoding="utf-8")
    charts = sum(1 for name in files if name.startswith("charts/"))
    print(f"wrote {OUT.relative_to(HERE.parent)}: {len(files)} files, {charts} charts")


if __name__ == "__main__":
    main()
