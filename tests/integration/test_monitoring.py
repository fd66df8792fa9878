"""Monitoring on generated data where the truth is known; run metrics; Prometheus; alerts."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, insert, select

from fournil import alerts
from fournil.data.generator import GeneratedData, GeneratorConfig, generate
from fournil.db.schema import drift_reports, etl_runs, forecasts, pipeline_runs
from fournil.etl.runner import run_etl
from fournil.monitoring import drift_report, psi, run_health, score_forecasts
from fournil.pipeline_runs import RunRecorder
from fournil.prometheus import PipelineCollector
from fournil.settings import get_settings, reset_settings_cache
from tests.conftest import END_DATE


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> GeneratedData:
    return generate(
        GeneratorConfig(stores=8, products=8, days=120, end_date=END_DATE, seed=31),
        tmp_path_factory.mktemp("monitor-chain"),
    )


def _load(
    engine: Engine, chain: GeneratedData, tmp_path: Path, raise_last_week: float = 0.0
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    for path in (chain.stores_path, chain.products_path):
        (drop / path.name).write_bytes(path.read_bytes())
    sales = pd.read_csv(chain.sales_path, dtype=str, keep_default_na=False)
    if raise_last_week:
        last_week = pd.to_datetime(sales["date"]) > pd.Timestamp(END_DATE - dt.timedelta(days=7))
        raised = sales.loc[last_week, "price"].astype(float) * (1 + raise_last_week)
        sales.loc[last_week, "price"] = raised.round(2).astype(str)
    sales.to_csv(drop / "sales.csv", index=False)
    assert run_etl(drop, engine, get_settings()).ok


def test_injected_price_drift_is_detected(
    warehouse: Engine, chain: GeneratedData, tmp_path: Path
) -> None:
    _load(warehouse, chain, tmp_path, raise_last_week=0.30)
    report = drift_report(warehouse, get_settings(), evaluated_on=END_DATE).set_index("feature")
    price = report.to_dict("index")["price_index"]
    assert price["drifted"]
    assert float(price["psi"]) > 1.0
    assert price["current_start"] == END_DATE - dt.timedelta(days=6)


def test_no_drift_is_reported_on_unchanged_data(
    warehouse: Engine, chain: GeneratedData, tmp_path: Path
) -> None:
    _load(warehouse, chain, tmp_path)
    report = drift_report(warehouse, get_settings(), evaluated_on=END_DATE)
    assert not report["drifted"].any(), report[["feature", "psi"]]
    assert set(report["feature"]) >= {"price_index", "units_index", "promo", "price_ratio"}
    again = drift_report(warehouse, get_settings(), evaluated_on=END_DATE)  # idempotent per day
    assert len(again) == len(report)


def test_forecasts_equal_to_the_expected_demand_score_the_noise_floor(
    warehouse: Engine, chain: GeneratedData, tmp_path: Path
) -> None:
    _load(warehouse, chain, tmp_path)
    truth = pd.read_parquet(chain.expected_path)
    truth["date"] = pd.to_datetime(truth["date"]).dt.date
    origin = END_DATE - dt.timedelta(days=7)
    window = truth[(truth["date"] > origin)]
    rows = [
        {
            "model_name": "oracle",
            "model_version": "1",
            "forecast_date": origin,
            "store_id": int(store),
            "product_id": int(product),
            "target_date": day,
            "horizon": (day - origin).days,
            "yhat": float(units),
            "yhat_lower": float(units) * 0.5,
            "yhat_upper": float(units) * 1.5,
        }
        for store, product, day, units in zip(
            window["store_id"],
            window["product_id"],
            window["date"],
            window["expected_units"],
            strict=True,
        )
    ]
    with warehouse.begin() as conn:
        conn.execute(insert(forecasts), rows)
    scores = score_forecasts(warehouse, END_DATE, window_days=7)
    overall = scores[scores["level"] == "overall"].iloc[0]
    sales = pd.read_csv(chain.sales_path)
    sales["date"] = pd.to_datetime(sales["date"]).dt.date
    joined = window.merge(
        sales.rename(columns={"date": "date"}), on=["date", "store_id", "product_id"]
    )
    joined = joined[joined["stock_out"] != True]  # noqa: E712 - NaN means not reported
    expected_wape = (joined["expected_units"] - joined["units_sold"]).abs().sum() / joined[
        "units_sold"
    ].sum()
    assert overall["n"] == len(joined)
    assert overall["wape"] == pytest.approx(expected_wape, rel=1e-9)
    assert set(scores[scores["level"] == "horizon"]["key"]) == {str(h) for h in range(1, 8)}
    assert len(scores[scores["level"] == "store"]) == 8


def test_psi_is_zero_for_the_same_sample_and_grows_with_a_shift() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    base = rng.normal(size=5000)
    assert psi(base, base) == pytest.approx(0.0, abs=1e-9)
    assert psi(base, rng.normal(size=5000)) < 0.05
    assert psi(base, rng.normal(0.5, size=5000)) > 0.2


def test_run_metrics_are_recorded_and_exposed_to_prometheus(warehouse: Engine) -> None:
    with RunRecorder(warehouse, "train") as run:
        with run.stage("fit"):
            pass
        run.metrics.update({"train_rmse": 3.5, "val_rmse": 4.25})
        run.rows_processed, run.warnings = 1234, 2
    with (
        pytest.raises(ZeroDivisionError),
        RunRecorder(warehouse, "etl") as failing,
        failing.stage("load"),
    ):
        1 / 0  # noqa: B018
    with warehouse.connect() as conn:
        rows = {r.flow: r for r in conn.execute(select(pipeline_runs))}
    assert rows["train"].status == "success" and rows["train"].rows_processed == 1234
    assert rows["etl"].status == "failed" and rows["etl"].error.startswith("ZeroDivisionError")
    assert set(rows["etl"].stages) == {"load"}

    day = dt.date(2026, 6, 30)
    with warehouse.begin() as conn:  # the monitor's verdicts, not a second threshold
        conn.execute(
            insert(drift_reports),
            [
                {
                    "evaluated_on": day,
                    "feature": feature,
                    "psi": value,
                    "drifted": drifted,
                    "reference_start": day - dt.timedelta(days=62),
                    "reference_end": day - dt.timedelta(days=7),
                    "current_start": day - dt.timedelta(days=6),
                    "current_end": day,
                }
                for feature, value, drifted in (("price_index", 0.3, True), ("promo", 0.9, False))
            ],
        )
    registry = CollectorRegistry()
    registry.register(PipelineCollector(warehouse))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    assert samples[("fournil_warehouse_up", ())] == 1
    assert samples[("fournil_pipeline_last_run_success", (("flow", "train"),))] == 1
    assert samples[("fournil_pipeline_last_run_success", (("flow", "etl"),))] == 0
    assert samples[("fournil_pipeline_last_run_rows", (("flow", "train"),))] == 1234
    assert samples[("fournil_pipeline_metric", (("flow", "train"), ("name", "val_rmse")))] == 4.25
    assert samples[("fournil_pipeline_failed_runs", (("flow", "etl"),))] == 1
    assert samples[
        ("fournil_pipeline_last_success_timestamp_seconds", (("flow", "train"),))
    ] == pytest.approx(rows["train"].finished_at.timestamp())
    assert ("fournil_pipeline_last_success_timestamp_seconds", (("flow", "etl"),)) not in samples
    assert samples[("fournil_drift_psi", (("feature", "promo"),))] == 0.9
    assert samples[("fournil_drift_flagged", (("feature", "price_index"),))] == 1
    assert samples[("fournil_drift_flagged", (("feature", "promo"),))] == 0
    assert (
        "fournil_pipeline_stage_duration_seconds",
        (("flow", "train"), ("stage", "fit")),
    ) in samples


def test_run_health_reports_loads_stuck_in_running(warehouse: Engine) -> None:
    started = dt.datetime.now(dt.UTC) - dt.timedelta(hours=7)
    with warehouse.begin() as conn:
        conn.execute(
            insert(etl_runs).values(
                batch_id="b",
                source="sales.csv",
                kind="sales",
                started_at=started,
                status="running",
                warnings=[],
            )
        )
    problems = run_health(warehouse)
    assert len(problems) == 1 and "sales.csv" in problems[0] and "'running'" in problems[0]
    assert run_health(warehouse, now=started + dt.timedelta(hours=1)) == []


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, object]]] = []
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Receiver]]:
    _Receiver.received, _Receiver.status = [], 200
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("FOURNIL_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hook")
    reset_settings_cache()
    yield _Receiver
    server.shutdown()


def test_alerts_post_slack_compatible_json(webhook: type[_Receiver]) -> None:
    assert alerts.notify("drift detected", ["price_index: PSI 1.9"], settings=get_settings())
    (body,) = webhook.received
    assert "drift detected" in str(body["text"]) and "price_index" in str(body["text"])
    assert body["blocks"][0]["type"] == "section"  # type: ignore[index]


def test_a_broken_webhook_never_fails_the_pipeline(webhook: type[_Receiver]) -> None:
    webhook.status = 500
    assert alerts.notify("x", ["y"], settings=get_settings()) is False
