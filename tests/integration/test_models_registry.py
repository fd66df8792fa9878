"""Training, the promotion gate, rollback and batch forecasts against a real PostgreSQL
warehouse, with MLflow either on its local store or as a real server on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pandas as pd
import pytest
from sqlalchemy import Engine, func, select

from fournil import registry
from fournil.api.keys import create_key
from fournil.data.generator import GeneratedData, GeneratorConfig, generate
from fournil.db import make_engine
from fournil.db.schema import forecasts, model_decisions, sales
from fournil.etl.runner import run_etl
from fournil.forecast import run_forecast
from fournil.models import pyfunc as pyfunc_module
from fournil.models.backtest import BacktestConfig
from fournil.models.estimators import ModelSpec
from fournil.models.gate import GateError, promote, rollback
from fournil.models.training import train
from fournil.monitoring import drift_report
from fournil.settings import get_settings, reset_settings_cache
from tests.conftest import END_DATE
from tests.integration.helpers import free_port, server_process, throwaway_database

SPEC = ModelSpec(num_boost_round=40, train_days=200, origin_stride=3, horizon=7)
WORSE = SPEC.replace(num_boost_round=2, num_leaves=2, learning_rate=0.01)
CONFIG = BacktestConfig(folds=2, fold_step=14, test_days=4)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on a throwaway PostgreSQL database, as compose runs it."""
    port = free_port()
    artifacts = tmp_path_factory.mktemp("mlflow-artifacts")
    with throwaway_database("fournil_mlflow") as backend:
        cmd = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", backend,
            "--artifacts-destination", str(artifacts),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ]  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        with server_process(cmd, f"{url}/health", artifacts.parent / "mlflow-server.log"):
            yield url


@pytest.fixture(scope="session")
def history_drop(tmp_path_factory: pytest.TempPathFactory) -> GeneratedData:
    return generate(
        GeneratorConfig(stores=3, products=4, days=200, end_date=END_DATE, seed=21),
        tmp_path_factory.mktemp("history"),
    )


@pytest.fixture(params=["local-store", "server"])
def tracking(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "server":
        uri = str(request.getfixturevalue("mlflow_server"))
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        # each test gets its own model names on the shared server
        monkeypatch.setenv("FOURNIL_MODEL_NAME", f"fc-{uuid.uuid4().hex[:6]}")
    monkeypatch.setenv("FOURNIL_HORIZON", str(SPEC.horizon))
    # a loaded 2-core CI machine must not fail the gate on timing; the limit itself is tested
    monkeypatch.setenv("FOURNIL_GATE_MAX_LATENCY_MS", "5000")
    reset_settings_cache()
    return request.param


@pytest.fixture
def loaded(pg_url: str, history_drop: GeneratedData, tracking: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    assert run_etl(history_drop.out_dir, engine, get_settings()).ok
    yield engine
    engine.dispose()


def _train(engine: Engine, spec: ModelSpec = SPEC, truth: Path | None = None) -> str:
    versions = train(engine, get_settings(), spec=spec, config=CONFIG, truth_path=truth)
    assert len(versions) == 1
    return versions[0].version


def test_train_promote_refuse_rollback_and_forecast(
    loaded: Engine, history_drop: GeneratedData, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = get_settings()
    client = registry.configure(settings)
    name = settings.model_name

    v1 = _train(loaded, truth=history_drop.expected_path)
    run = client.get_run(str(client.get_model_version(name, v1).run_id))
    assert run.data.metrics["backtest_wape"] < run.data.metrics["backtest_wape_seasonal_naive"]
    assert {"git_commit", "granularity"} <= set(run.data.tags)
    assert run.data.params["data.hash"] and run.data.params["model.seed"] == "42"
    assert "backtest_wape_noise_floor" in run.data.metrics
    # named by what it is; metrics that mean what they say; a duration that covers the fit
    assert run.info.run_name == f"global, data to {run.data.params['data.end']}"
    assert "val_rmse" not in run.data.metrics and "backtest_rmse" in run.data.metrics
    assert run.info.end_time is not None
    duration = (run.info.end_time - run.info.start_time) / 1000
    assert duration >= run.data.metrics["train_seconds"], (duration, run.data.metrics)
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags[registry.EXPERIMENT_KIND[0]] == "custom_model_development"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert artifacts == {
        "plots/error_by_horizon.png",
        "plots/forecast_vs_actual.png",
        "plots/feature_importance.png",
    }
    assert registry.alias_version(client, name, registry.CHAMPION) is None  # train never promotes

    first = promote(loaded, name, v1, settings, CONFIG)
    assert first.promoted, first.reasons
    assert registry.alias_version(client, name, registry.CHAMPION) == v1
    champion = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    ok, _ = pyfunc_module.verify(champion)
    assert ok

    # a worse recipe: refused on the same backtest, stays challenger, champion unchanged
    v2 = _train(loaded, spec=WORSE)
    worse = promote(loaded, name, v2, settings, CONFIG)
    assert not worse.promoted
    assert any(r.startswith("FAILED: backtest WAPE") and "champion" in r for r in worse.reasons)
    assert registry.alias_version(client, name, registry.CHAMPION) == v1
    assert registry.alias_version(client, name, registry.CHALLENGER) == v2
    assert client.get_model_version(name, v2).tags["gate.decision"] == "refused"

    # a model whose verification samples do not reproduce: refused
    original = pyfunc_module.write_artifacts

    def tampered(forecaster, samples, folder):
        paths = original(forecaster, samples, folder)
        frame = pd.read_parquet(paths["verification"])
        frame.loc[frame.index[:1], "expected_yhat"] += 0.5
        frame.to_parquet(paths["verification"], index=False)
        return paths

    monkeypatch.setattr("fournil.models.training.write_artifacts", tampered)
    v3 = _train(loaded)
    monkeypatch.undo()
    bad = promote(loaded, name, v3, settings, CONFIG)
    assert not bad.promoted
    assert any("FAILED: verification samples differ" in r for r in bad.reasons)

    # a retrain with the same recipe on the same data ties with the champion: promoted
    v4 = _train(loaded)
    assert promote(loaded, name, v4, settings, CONFIG).promoted

    first_run = run_forecast(loaded, settings)
    again = run_forecast(loaded, settings)  # idempotent per (version, forecast date)
    with loaded.connect() as conn:
        active = conn.execute(
            select(func.count()).select_from(
                select(sales.c.store_id, sales.c.product_id)
                .where(sales.c.sale_date > first_run.forecast_date - dt.timedelta(days=28))
                .distinct()
                .subquery()
            )
        ).scalar_one()
    assert first_run.rows == again.rows == active * settings.horizon
    with loaded.connect() as conn:
        per_version = {
            version: n
            for version, n in conn.execute(
                select(forecasts.c.model_version, func.count()).group_by(forecasts.c.model_version)
            )
        }
        dupes = conn.execute(
            select(func.count()).select_from(
                select(forecasts.c.store_id, forecasts.c.product_id, forecasts.c.target_date)
                .where(forecasts.c.model_version == v4)
                .group_by(forecasts.c.store_id, forecasts.c.product_id, forecasts.c.target_date)
                .having(func.count() > 1)
                .subquery()
            )
        ).scalar_one()
        bounds = conn.execute(
            select(
                func.count().filter(
                    (forecasts.c.yhat_lower > forecasts.c.yhat)
                    | (forecasts.c.yhat_upper < forecasts.c.yhat)
                ),
                func.min(forecasts.c.horizon),
                func.max(forecasts.c.horizon),
            )
        ).one()
    assert per_version == {v4: first_run.rows} and dupes == 0
    assert bounds[0] == 0 and bounds[1] == 1 and bounds[2] == settings.horizon

    back = rollback(loaded, name, settings)
    assert (back.champion_before, back.champion_after) == (v4, v1)
    assert registry.alias_version(client, name, registry.CHAMPION) == v1
    with pytest.raises(GateError, match="no previous champion"):
        rollback(loaded, name, settings)
    run_forecast(loaded, settings)
    with loaded.connect() as conn:
        versions = set(conn.execute(select(forecasts.c.model_version).distinct()).scalars())
        actions = list(
            conn.execute(
                select(model_decisions.c.action).order_by(model_decisions.c.decision_id)
            ).scalars()
        )
    assert versions == {v1, v4}
    assert actions == ["promoted", "refused", "refused", "promoted", "rollback"]

    # size and latency limits: the same good version is refused when it exceeds them
    limits = settings.gate.model_copy(
        update={"max_model_mb": 0.01, "max_latency_ms": 0.001, "max_latency_ratio": 0.01}
    )
    strict = settings.model_copy(update={"gate": limits})
    limited = promote(loaded, name, v4, strict, CONFIG)
    assert not limited.promoted
    failed = [r for r in limited.reasons if r.startswith("FAILED")]
    assert any("size" in r for r in failed) and any("latency" in r for r in failed)
    assert registry.alias_version(client, name, registry.CHAMPION) == v1


def test_segment_models_are_gated_and_served_each_on_their_own(
    pg_url: str, history_drop: GeneratedData, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FOURNIL_GRANULARITY", "family")
    monkeypatch.setenv("FOURNIL_HORIZON", str(SPEC.horizon))
    monkeypatch.setenv("FOURNIL_GATE_MAX_LATENCY_MS", "5000")
    reset_settings_cache()
    settings = get_settings()
    engine = make_engine(pg_url)
    assert run_etl(history_drop.out_dir, engine, get_settings()).ok
    families = sorted(pd.read_csv(history_drop.products_path)["family"].unique())
    assert len(families) >= 2

    first = train(engine, settings, spec=SPEC, config=CONFIG)
    assert sorted(str(v.segment) for v in first) == families
    assert len({v.name for v in first}) == len(families) and settings.model_name not in {
        v.name for v in first
    }
    client = registry.configure(settings)
    for v in first:
        run = client.get_run(v.run_id)
        assert "backtest_wape_global_model" in run.data.metrics  # evidence for the granularity
        assert promote(engine, v.name, v.version, settings, CONFIG).promoted

    # the second round: one segment's model fails its verification samples
    bad_family = families[0]
    original = pyfunc_module.write_artifacts

    def tamper_one(forecaster, samples, folder):
        paths = original(forecaster, samples, folder)
        if forecaster.vocab.families == [bad_family]:
            frame = pd.read_parquet(paths["verification"])
            frame.loc[frame.index[:1], "expected_yhat"] += 1.0
            frame.to_parquet(paths["verification"], index=False)
        return paths

    monkeypatch.setattr("fournil.models.training.write_artifacts", tamper_one)
    second = train(engine, settings, spec=SPEC, config=CONFIG)
    decisions = {v.segment: promote(engine, v.name, v.version, settings, CONFIG) for v in second}
    assert not decisions[bad_family].promoted
    assert all(d.promoted for family, d in decisions.items() if family != bad_family)
    champions = {
        v.segment: registry.alias_version(client, v.name, registry.CHAMPION) for v in second
    }
    assert champions[bad_family] == "1"  # the bad segment keeps its champion...
    assert all(c == "2" for f, c in champions.items() if f != bad_family)  # ...others moved on

    result = run_forecast(engine, settings)
    with engine.connect() as conn:
        per_model = {
            model: n
            for model, n in conn.execute(
                select(
                    forecasts.c.model_name + ":" + forecasts.c.model_version, func.count()
                ).group_by(forecasts.c.model_name, forecasts.c.model_version)
            )
        }
    names = {v.segment: v.name for v in second}
    assert set(per_model) == {f"{names[f]}:{champions[f]}" for f in families}
    assert sum(per_model.values()) == result.rows

    # drift monitoring predicts each series with its segment's champion (no global one exists)
    drift = drift_report(engine, settings)
    assert "prediction" in set(drift["feature"])

    # the API serves the same segment champions, through real HTTP
    products = pd.read_csv(history_drop.products_path)
    rows = [
        {"store_id": 1, "product_id": int(pid), "date": str(END_DATE + dt.timedelta(days=1))}
        for pid in products.groupby("family")["product_id"].first()
    ]
    key = create_key(engine, "segment test", ["predict", "forecasts:read"], settings.secret_key)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "FOURNIL_API_MODEL_POLL_SECONDS": "3600",
        "FOURNIL_API_PREDICT_BUDGET_MS": "10000",  # routing is tested here, not a cold start
    }
    cmd = [sys.executable, "-m", "fournil", "api", "serve", "--port", str(port)]
    with server_process(cmd, base + "/ready", tmp_path / "api.log", env=env):
        ready = httpx.get(base + "/ready").json()
        current = httpx.get(base + "/v1/models/current", headers={"X-API-Key": key}).json()
        response = httpx.post(
            base + "/v1/predict", json={"rows": rows}, headers={"X-API-Key": key}, timeout=30
        )
    assert ready["status"] == "ready", ready  # segment champions: not degraded
    assert response.status_code == 200, response.text
    family_of = dict(zip(products["product_id"], products["family"], strict=True))
    served = {
        family_of[p["product_id"]]: (p["model_name"], p["model_version"], p["arm"])
        for p in response.json()["predictions"]
    }
    assert served == {f: (names[f], champions[f], "champion") for f in families}
    assert {f: (m["name"], m["version"]) for f, m in current["segments"].items()} == {
        f: (names[f], champions[f]) for f in families
    }
    engine.dispose()
