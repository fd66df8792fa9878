"""Fixtures shared by the API's integration tests: `api`, a served chain (a PostgreSQL warehouse
with sales, a promoted champion and forecasts; keys of each scope) behind real uvicorn, built
once per test module. Not once per package: the served app's model poller points MLflow's
process-wide tracking URI at its own store every poll, under whatever runs beside it, so it must
stop with the module that uses it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import Engine

from fournil.api.app import create_app
from fournil.api.keys import create_key
from fournil.api.serving import ModelHolder
from fournil.api.tables import ServingTables
from fournil.data.generator import GeneratedData, GeneratorConfig, generate
from fournil.db import make_engine
from fournil.etl.runner import run_etl
from fournil.forecast import run_forecast
from fournil.models.backtest import BacktestConfig
from fournil.models.estimators import ModelSpec
from fournil.models.gate import promote
from fournil.models.training import train
from fournil.settings import Settings, get_settings, reset_settings_cache
from tests.conftest import END_DATE
from tests.integration.helpers import free_port, serve

SPEC = ModelSpec(num_boost_round=30, train_days=200, origin_stride=3, horizon=7)
CONFIG = BacktestConfig(folds=2, fold_step=14, test_days=4)


def forecasting_chain(
    engine: Engine,
    settings: Settings,
    drop: GeneratedData,
    spec: ModelSpec,
    config: BacktestConfig,
) -> dict[str, str]:
    """`drop` loaded, a champion of `spec` trained and promoted, its forecasts written; an API
    key of each scope (read, predict, admin)."""
    assert run_etl(drop.out_dir, engine, settings).ok
    (v1,) = train(engine, settings, spec=spec, config=config)
    assert promote(engine, v1.name, v1.version, settings, config).promoted
    run_forecast(engine, settings)
    return {
        "read": create_key(engine, "dashboards", ["forecasts:read"], settings.secret_key),
        "predict": create_key(engine, "shop app", ["predict"], settings.secret_key),
        "admin": create_key(engine, "ops", ["admin"], settings.secret_key),
    }


@dataclass
class Api:
    url: str
    engine: Engine
    settings: Settings
    keys: dict[str, str]
    holder: ModelHolder
    tables: ServingTables
    drop: GeneratedData

    def get(self, path: str, key: str | None = "read", **params: str | int) -> httpx.Response:
        headers = {"X-API-Key": self.keys[key]} if key else {}
        return httpx.get(self.url + path, params=params, headers=headers, timeout=30)

    def post(self, path: str, body: object, key: str | None = "predict") -> httpx.Response:
        headers = {"X-API-Key": self.keys[key]} if key else {}
        return httpx.post(self.url + path, json=body, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def api(pg_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    import uuid

    from sqlalchemy import text

    from tests.conftest import _admin_engine, test_server_url

    home = tmp_path_factory.mktemp("api-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("FOURNIL_HOME", str(home))
    mp.setenv("FOURNIL_HORIZON", "7")
    mp.setenv("FOURNIL_GATE_MAX_LATENCY_MS", "5000")
    mp.setenv("FOURNIL_API_MODEL_POLL_SECONDS", "0.5")
    mp.setenv("FOURNIL_API_RATE_PER_MINUTE", "100000")
    mp.setenv("FOURNIL_API_KEY_CACHE_SECONDS", "1")
    mp.setenv("FOURNIL_API_AUTH_FAILURES_PER_MINUTE", "100000")
    mp.setenv("FOURNIL_API_TABLES_POLL_SECONDS", "0.5")
    for var in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "FOURNIL_MODE"):
        mp.delenv(var, raising=False)
    name = f"fournil_api_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    from sqlalchemy.engine import make_url

    url = make_url(test_server_url()).set(database=name).render_as_string(hide_password=False)
    mp.setenv("DATABASE_URL", url)
    reset_settings_cache()
    settings = get_settings()
    engine = make_engine(url, pool_pre_ping=True)
    drop = generate(
        GeneratorConfig(stores=3, products=4, days=200, end_date=END_DATE, seed=21),
        tmp_path_factory.mktemp("api-drop"),
    )
    keys = forecasting_chain(engine, settings, drop, SPEC, CONFIG)
    app = create_app(settings, engine)
    for base in serve(app, free_port()):
        yield Api(base, engine, settings, keys, app.state.holder, app.state.tables, drop)
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    mp.undo()
    reset_settings_cache()
