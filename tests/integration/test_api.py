"""The API over real HTTP (uvicorn + httpx) against a real PostgreSQL warehouse and a real
MLflow registry (local store): endpoints, auth, hot swap, fallback, split, prediction log."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import delete, insert, select

from fournil.api.app import create_app
from fournil.api.inputs import Row, raw_inputs
from fournil.api.keys import create_key, revoke_key
from fournil.api.serving import ModelHolder
from fournil.api.tables import (
    ForecastTable,
    PageQuery,
    forecasts_from_warehouse,
)
from fournil.db import make_engine
from fournil.db.schema import forecasts, prediction_log
from fournil.models.gate import promote
from fournil.models.pyfunc import EXPECTED_PREFIX
from fournil.models.training import train
from fournil.settings import Settings, reset_settings_cache
from tests.conftest import END_DATE
from tests.integration.conftest import CONFIG, SPEC, Api
from tests.integration.helpers import api_contract, free_port, serve, server_process

WORSE = SPEC.replace(num_boost_round=2, num_leaves=2, learning_rate=0.01)


def test_health_ready_and_models(api: Api) -> None:
    assert api.get("/health", key=None).json() == {"status": "ok"}
    ready = api.get("/ready", key=None).json()
    assert ready["status"] == "ready" and ready["champion"] == "1"
    response = api.get("/v1/models/current")
    assert response.status_code == 200, response.text
    models = response.json()
    assert models["champion"]["version"] == "1"
    assert "backtest_wape" in models["champion"]["metrics"]
    assert models["decisions"][0]["action"] == "promoted"
    assert models["fallback"]["name"].endswith("fallback")


def test_auth_no_key_wrong_key_wrong_scope_revoked(api: Api) -> None:
    assert api.get("/v1/models/current", key=None).status_code == 401
    api.keys["bogus"] = "fk_000000000000_not-a-real-secret"
    assert api.get("/v1/models/current", key="bogus").status_code == 401
    wrong = api.post(
        "/v1/predict",
        {"rows": [{"store_id": 1, "product_id": 1, "date": "2026-07-01"}]},
        key="read",
    )
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "forbidden"
    assert api.get("/v1/models/current", key="admin").status_code == 200  # admin has every scope
    api.keys["revoked"] = create_key(api.engine, "old", ["forecasts:read"], api.settings.secret_key)
    # a new key works within a second of its first use (its first use wakes the key table)
    deadline = time.monotonic() + 2
    while api.get("/v1/models/current", key="revoked").status_code != 200:
        assert time.monotonic() < deadline, "a new key is not known a second after its first use"
        time.sleep(0.2)
    revoke_key(api.engine, api.keys["revoked"].split("_")[1])
    deadline = time.monotonic() + api.settings.api.key_cache_seconds + 2
    while api.get("/v1/models/current", key="revoked").status_code != 401:
        assert time.monotonic() < deadline, "a revoked key still works past the key cache TTL"
        time.sleep(0.2)


def test_forecasts_paginated_with_their_model_version(api: Api) -> None:
    first = api.get("/v1/forecasts", store_id=1, page_size=5).json()
    assert first["total"] == 4 * 7 and len(first["items"]) == 5
    assert {i["model_version"] for i in first["items"]} == {"1"}
    pages = [api.get("/v1/forecasts", store_id=1, page_size=5, page=p).json() for p in range(1, 7)]
    seen = [(i["product_id"], i["target_date"]) for p in pages for i in p["items"]]
    assert len(seen) == len(set(seen)) == 28
    one = api.get(
        "/v1/forecasts",
        store_id=1,
        product_id=2,
        start=str(END_DATE + dt.timedelta(days=2)),
        end=str(END_DATE + dt.timedelta(days=3)),
    ).json()
    assert [i["target_date"] for i in one["items"]] == [
        str(END_DATE + dt.timedelta(days=d)) for d in (2, 3)
    ]
    assert api.get("/v1/forecasts", store_id=999).status_code == 404
    bad = api.get("/v1/forecasts", store_id=1, start="2026-07-05", end="2026-07-01")
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "start"


def test_predict_and_its_errors(api: Api) -> None:
    rows = [
        {"store_id": 1, "product_id": p, "date": str(END_DATE + dt.timedelta(days=1))}
        for p in (1, 2)
    ]
    ok = api.post("/v1/predict", {"rows": rows})
    assert ok.status_code == 200, ok.text
    preds = ok.json()["predictions"]
    assert len(preds) == 2 and all(p["yhat"] >= 0 and p["model_version"] == "1" for p in preds)
    promo = api.post("/v1/predict", {"rows": [{**rows[0], "promo": True, "price": 0.8}]}).json()
    assert promo["predictions"][0]["yhat"] > preds[0]["yhat"]  # a promotion lifts the forecast
    invalid = api.post(
        "/v1/predict", {"rows": [{"store_id": "abc", "product_id": 1, "date": "2026-07-01"}]}
    )
    assert invalid.status_code == 422 and invalid.json()["error"]["field"] == "rows.0.store_id"
    unknown = api.post(
        "/v1/predict", {"rows": [{"store_id": 1, "product_id": 999, "date": "2026-07-01"}]}
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "rows.0.product_id"
    far = api.post(
        "/v1/predict", {"rows": [{"store_id": 1, "product_id": 1, "date": "2027-01-01"}]}
    )
    assert far.status_code == 422 and "forecast window" in far.json()["error"]["message"]
    huge = httpx.post(
        api.url + "/v1/predict",
        content=b"x" * 2_000_000,
        headers={"X-API-Key": api.keys["predict"], "Content-Type": "application/json"},
    )
    assert huge.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        for _ in range(200):
            yield b"x" * 10_000

    chunked = httpx.post(
        api.url + "/v1/predict",
        content=chunks(),
        headers={"X-API-Key": api.keys["predict"], "Content-Type": "application/json"},
    )
    assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "too_large"


def test_serving_tables_answer_as_the_warehouse_does(api: Api) -> None:
    """Forecasts and model inputs from memory equal those read from the warehouse."""
    snapshot = api.tables.snapshot
    table = snapshot.forecasts
    assert table.complete and table.covers(None)
    after = END_DATE + dt.timedelta(days=3)
    queries = [
        (1, None, None, None, 1, 100),
        (2, 3, None, None, 1, 100),
        (3, None, after, None, 2, 5),
        (1, 4, END_DATE, after, 1, 2),
        (2, None, after, after, 1, 100),
        (1, 2, dt.date(2020, 1, 1), dt.date(2020, 1, 2), 1, 10),
        (3, None, None, None, 99, 10),
    ]
    for args in queries:
        query = PageQuery(*args)
        assert table.page(query) == forecasts_from_warehouse(api.engine, query), query
    narrow = ForecastTable.load(api.engine, serving_days=3)  # only the 3 furthest target dates
    assert not narrow.complete and not narrow.covers(None)
    assert narrow.window_start is not None and narrow.covers(narrow.window_start)
    query = PageQuery(2, None, narrow.window_start)
    assert narrow.page(query) == forecasts_from_warehouse(api.engine, query)
    assert narrow.page(query)[1] == 4 * 3

    rows = [
        Row(s, p, END_DATE + dt.timedelta(days=d), price, promo, None)
        for s, p, d, price, promo in [
            (1, 1, 1, None, None),
            (2, 3, 5, 0.9, True),
            (3, 4, -20, None, False),
            (1, 2, 28, 2.0, None),
        ]
    ]
    from_memory = raw_inputs(api.engine, snapshot, rows)
    without_history = dataclasses.replace(snapshot, history=None)
    from_warehouse = raw_inputs(api.engine, without_history, rows)
    pd.testing.assert_frame_equal(from_memory, from_warehouse)


def test_new_forecasts_are_served_after_the_next_table_refresh(api: Api) -> None:
    target = END_DATE + dt.timedelta(days=1)
    day = str(target)
    params: dict[str, str | int] = {"store_id": 2, "product_id": 2, "start": day, "end": day}
    before = api.get("/v1/forecasts", "read", **params).json()["items"][0]
    with api.engine.begin() as conn:
        conn.execute(
            insert(forecasts).values(
                model_name=before["model_name"],
                model_version="manual",
                forecast_date=END_DATE,  # same day as the batch run, written later: newest
                store_id=2,
                product_id=2,
                target_date=target,
                horizon=1,
                yhat=before["yhat"] + 100,
                yhat_lower=None,
                yhat_upper=None,
            )
        )
    try:
        deadline = time.monotonic() + 10
        while (item := api.get("/v1/forecasts", "read", **params).json()["items"][0])[
            "yhat"
        ] == before["yhat"]:
            assert time.monotonic() < deadline, "new forecast not served after a table refresh"
            time.sleep(0.2)
        assert item["yhat"] == before["yhat"] + 100 and item["model_version"] == "manual"
        assert item["yhat_lower"] is None
    finally:
        with api.engine.begin() as conn:
            conn.execute(delete(forecasts).where(forecasts.c.model_version == "manual"))
    deadline = time.monotonic() + 10
    while api.get("/v1/forecasts", "read", **params).json()["items"][0] != before:
        assert time.monotonic() < deadline, "deleted forecast still served"
        time.sleep(0.2)


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = END_DATE + dt.timedelta(days=2)
    bodies = [
        {"rows": [{"store_id": s, "product_id": p, "date": str(day)}]}
        for s in (1, 2, 3)
        for p in (1, 2, 3, 4)
    ]
    alone = [api.post("/v1/predict", b).json()["predictions"] for b in bodies]
    champion = api.holder.champion
    assert champion is not None
    real = champion.forecaster.predict_raw
    calls: list[int] = []

    def slowish(raw):
        calls.append(len(raw))
        time.sleep(0.15)  # within the time budget: requests queue up behind it
        return real(raw)

    monkeypatch.setattr(champion.forecaster, "predict_raw", slowish)
    monkeypatch.setattr(api.holder, "challenger", None)
    no_history = {"rows": [{"store_id": 1, "product_id": 1, "date": "2020-01-01"}]}
    with ThreadPoolExecutor(max_workers=len(bodies) + 1) as pool:
        answers = list(pool.map(lambda b: api.post("/v1/predict", b), [*bodies, no_history]))
    assert answers[-1].status_code == 404  # its own error, the others unaffected
    together = [a.json()["predictions"] for a in answers[:-1]]
    assert len(calls) < len(bodies) and sum(calls) == len(bodies)  # fewer model calls
    for got, expected in zip(together, alone, strict=True):
        assert [p["yhat"] for p in got] == [p["yhat"] for p in expected]
        assert [(p["store_id"], p["product_id"]) for p in got] == [
            (p["store_id"], p["product_id"]) for p in expected
        ]
    assert len({a.json()["request_id"] for a in answers[:-1]}) == len(bodies)


def test_the_endpoint_reproduces_the_verification_samples(api: Api) -> None:
    """Seed 004: serving must not change the model's behaviour."""
    model = mlflow.pyfunc.load_model(f"models:/{api.settings.model_name}@champion")
    samples = model.unwrap_python_model().verification
    clean = samples.iloc[: len(samples) - 4]  # the last rows are the deliberate-null ones
    rows = [
        {"store_id": int(r.store_id), "product_id": int(r.product_id), "date": r.target_date}
        for r in clean.itertuples()
    ]
    got = api.post("/v1/predict", {"rows": rows}).json()["predictions"]
    np.testing.assert_array_equal(
        [p["yhat"] for p in got], clean[EXPECTED_PREFIX + "yhat"].to_numpy()
    )


def test_predictions_are_logged_off_the_request_path(api: Api) -> None:
    body = {
        "rows": [{"store_id": 2, "product_id": 3, "date": str(END_DATE + dt.timedelta(days=2))}]
    }
    request_id = api.post("/v1/predict", body).json()["request_id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with api.engine.connect() as conn:
            row = (
                conn.execute(
                    select(prediction_log).where(prediction_log.c.request_id == request_id)
                )
                .mappings()
                .first()
            )
        if row:
            break
        time.sleep(0.2)
    assert (
        row is not None
        and row["arm"] in ("champion", "challenger")
        and row["key_id"] == api.keys["predict"].split("_")[1]
    )
    assert len(row["inputs_hash"]) == 64


def test_metrics_cover_requests_predictions_and_pipeline(api: Api) -> None:
    body = {"rows": [{"store_id": 1, "product_id": 1, "date": str(END_DATE)}]}
    assert api.post("/v1/predict", body).status_code == 200
    text = httpx.get(api.url + "/metrics").text
    assert 'fournil_api_requests_total{method="POST",route="/v1/predict",status="200"}' in text
    assert "fournil_api_predictions_total" in text and "fournil_api_request_seconds_bucket" in text
    assert "fournil_warehouse_up 1.0" in text


def test_split_is_sticky_and_proportional() -> None:
    base = Settings()
    holder = ModelHolder(
        base.model_copy(update={"api": base.api.model_copy(update={"challenger_share": 0.3})})
    )
    holder.champion = holder.challenger = holder.fallback  # any two loaded arms
    arms = [holder.arm_for("key", store) for store in range(20_000)]
    assert abs(arms.count("challenger") / len(arms) - 0.3) < 0.02
    assert arms == [holder.arm_for("key", store) for store in range(20_000)]  # sticky


def test_hot_swap_on_promotion_without_dropping_requests(api: Api) -> None:
    errors: list[int] = []
    stop = threading.Event()
    body = {
        "rows": [{"store_id": 1, "product_id": 1, "date": str(END_DATE + dt.timedelta(days=1))}]
    }

    def hammer() -> None:
        while not stop.is_set():
            status = api.post("/v1/predict", body).status_code
            if status != 200:
                errors.append(status)

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        (v2,) = train(api.engine, api.settings, spec=SPEC, config=CONFIG)
        assert promote(api.engine, v2.name, v2.version, api.settings, CONFIG).promoted
        deadline = time.monotonic() + 30
        while api.get("/ready", key=None).json()["champion"] != v2.version:
            assert time.monotonic() < deadline, "champion not swapped"
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert api.post("/v1/predict", body).json()["predictions"][0]["model_version"] == v2.version


def test_registry_down_keeps_the_loaded_model(api: Api) -> None:
    loaded = api.holder.champion
    good = api.holder.settings
    api.holder.settings = good.model_copy(update={"mlflow_tracking_uri": "http://127.0.0.1:9"})
    try:
        api.holder.refresh()
        assert api.holder.registry_error and api.holder.champion is loaded
        assert api.get("/ready", key=None).json()["status"] == "ready"
    finally:
        api.holder.settings = good
        api.holder.refresh()


def test_no_registry_at_start_serves_the_fallback_and_says_degraded(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = api.settings.model_copy(update={"mlflow_tracking_uri": "http://127.0.0.1:9"})
    app = create_app(down, api.engine, poll=False)
    for base in serve(app, free_port()):
        ready = httpx.get(base + "/ready").json()
        assert ready["status"] == "degraded" and "fallback" in ready["reason"]
        body = {
            "rows": [{"store_id": 1, "product_id": 1, "date": str(END_DATE + dt.timedelta(days=1))}]
        }
        got = httpx.post(
            base + "/v1/predict", json=body, headers={"X-API-Key": api.keys["predict"]}
        ).json()
        assert got["predictions"][0]["arm"] == "fallback" and got["predictions"][0]["yhat"] >= 0


def test_a_prediction_over_its_time_budget_is_answered_by_the_fallback(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    champion = api.holder.champion
    assert champion is not None
    real = champion.forecaster.predict_raw

    budget = api.settings.api.predict_budget_ms / 1000
    late = budget + 5.0  # when the model would answer: far past the budget

    def slow(raw):
        time.sleep(late)
        return real(raw)

    monkeypatch.setattr(champion.forecaster, "predict_raw", slow)
    monkeypatch.setattr(api.holder, "challenger", None)
    before = httpx.get(api.url + "/metrics").text
    body = {
        "rows": [{"store_id": 3, "product_id": 1, "date": str(END_DATE + dt.timedelta(days=1))}]
    }
    started = time.perf_counter()
    got = api.post("/v1/predict", body)
    elapsed = time.perf_counter() - started
    assert got.status_code == 200
    prediction = got.json()["predictions"][0]
    assert prediction["arm"] == "fallback" and prediction["model_name"].endswith("fallback")
    assert budget <= elapsed < late - 2.0  # waited out the budget, not the model (busy-VM slack)

    def fallbacks(text: str) -> float:
        for line in text.splitlines():
            if line.startswith("fournil_api_fallback_predictions_total "):
                return float(line.split()[1])
        return 0.0

    assert fallbacks(httpx.get(api.url + "/metrics").text) == fallbacks(before) + 1


def test_two_workers_report_their_metrics_together(api: Api, tmp_path: Path) -> None:
    """`fournil api serve --workers 2`: /metrics (answered by either worker) counts all."""
    import os
    import sys

    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": api.settings.warehouse_url,
        "FOURNIL_API_MODEL_POLL_SECONDS": "3600",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "fournil", "api", "serve", "--port", str(port), "--workers", "2"]
    with server_process(cmd, base + "/ready", tmp_path / "api.log", env=env):
        for _ in range(40):  # a new connection each time: both workers get some
            assert httpx.get(base + "/health").status_code == 200
        text = httpx.get(base + "/metrics").text
    health = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("fournil_api_requests_total{")
        and 'route="/health"' in line
        and 'status="200"' in line
    ]
    assert health == [40.0], text[:2000]
    workers = [line for line in text.splitlines() if line.startswith("fournil_api_worker_up{")]
    assert len(workers) == 2 and all('pid="' in w for w in workers), workers
    assert "fournil_warehouse_up 1.0" in text


def test_schemathesis_finds_no_server_error_nor_schema_violation(api: Api) -> None:
    """Property-based run over the OpenAPI schema, bounded in examples and time for CI."""
    done = api_contract(f"{api.url}/openapi.json", api.keys["admin"], examples=25)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_the_deploy_smoke_test_passes_on_a_good_api_and_fails_on_a_wrong_key(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`fournil api smoke` (the deploy stage's check): with a temporary key it creates and
    revokes, with a given key, and against a key the API refuses."""
    from typer.testing import CliRunner

    from fournil.api.keys import list_keys
    from fournil.api.smoke import run_smoke
    from fournil.cli import app as cli

    before = {k["key_id"] for k in list_keys(api.engine)}
    monkeypatch.setenv("DATABASE_URL", api.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("FOURNIL_SECRET_KEY", api.settings.secret_key.get_secret_value())
    reset_settings_cache()  # the CLI makes its key in the API's warehouse
    result = CliRunner().invoke(cli, ["api", "smoke", "--url", api.url, "--wait", "10"])
    assert result.exit_code == 0, result.output
    assert result.output.count(" ok ") == 4, result.output
    temporary = [k for k in list_keys(api.engine) if k["key_id"] not in before]
    assert len(temporary) == 1 and temporary[0]["revoked_at"] is not None  # cleaned up

    store = 1  # the generator numbers stores from 1
    both = create_key(api.engine, "smoke", ["forecasts:read", "predict"], api.settings.secret_key)
    checks = run_smoke(api.url, both, store, wait_seconds=5)
    assert [(c.name, c.ok) for c in checks] == [
        ("health", True),
        ("ready", True),
        ("forecasts", True),
        ("predict", True),
    ], checks
    read_only = create_key(api.engine, "read only", ["forecasts:read"], api.settings.secret_key)
    checks = run_smoke(api.url, read_only, store, wait_seconds=5)
    assert checks[-1].name == "predict" and not checks[-1].ok
    assert "403" in checks[-1].detail
    assert not run_smoke("http://127.0.0.1:9", both, store, wait_seconds=1)[0].ok


def test_openapi_declares_the_api_key_scheme_on_the_protected_routes_only() -> None:
    """The key is an `APIKeyHeader`: the document has its security scheme (Swagger UI's
    Authorize button) and the protected operations require it; the ops routes stay public."""
    doc = create_app(Settings(), make_engine("sqlite://")).openapi()
    assert doc["components"]["securitySchemes"] == {
        "ApiKey": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "API key: fk_<id>_<secret>",
        }
    }
    secured = {
        (path, method)
        for path, operations in doc["paths"].items()
        for method, operation in operations.items()
        if operation.get("security") == [{"ApiKey": []}]
    }
    assert secured == {
        ("/v1/forecasts", "get"),
        ("/v1/predict", "post"),
        ("/v1/models/current", "get"),
    }
    for path in ("/health", "/ready"):
        assert "security" not in doc["paths"][path]["get"], path
    assert "/metrics" not in doc["paths"]  # internal: for the scraper, not the public document
    headers = [
        p["name"].lower()
        for operations in doc["paths"].values()
        for operation in operations.values()
        for p in operation.get("parameters", [])
        if p["in"] == "header"
    ]
    assert "x-api-key" not in headers  # the scheme, not a plain header parameter


def test_dependencies_can_be_overridden_on_a_real_app(api: Api) -> None:
    """`app.dependency_overrides` replaces the key and the settings the routes get."""
    from fournil.api import deps
    from fournil.api.keys import KeyInfo

    app = create_app(api.settings, api.engine, poll=False)
    share = api.settings.api.challenger_share + 0.25
    app.dependency_overrides[deps.current_key] = lambda: KeyInfo(
        "override", "test", frozenset({"forecasts:read"})
    )
    shared = api.settings.api.model_copy(update={"challenger_share": share})
    app.dependency_overrides[deps.app_settings] = lambda: api.settings.model_copy(
        update={"api": shared}
    )
    body = {"rows": [{"store_id": 1, "product_id": 1, "date": str(END_DATE)}]}
    for base in serve(app, free_port()):
        models = httpx.get(base + "/v1/models/current")  # no key: the override is the key
        assert models.status_code == 200, models.text
        assert models.json()["challenger_share"] == share
        forbidden = httpx.post(base + "/v1/predict", json=body)  # the override's scopes count
        assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
        app.dependency_overrides.clear()
        missing = httpx.get(base + "/v1/models/current")
        assert missing.status_code == 401, missing.text
        assert missing.json()["error"] == {
            "code": "unauthenticated",
            "message": "missing X-API-Key header",
        }
        assert missing.headers["WWW-Authenticate"] == "ApiKey"
        real = httpx.get(base + "/v1/models/current", headers={"X-API-Key": api.keys["read"]})
        assert real.json()["challenger_share"] == api.settings.api.challenger_share


def test_the_settings_passed_to_create_app_key_the_api_key_hashes(api: Api) -> None:
    """A key made with another secret is refused by the API, and accepted by an app created
    with `Settings` holding that secret, which refuses the keys of the first secret."""
    from pydantic import SecretStr

    other = SecretStr("another-secret-only-for-this-test-0123456789")
    assert other.get_secret_value() != api.settings.secret_key.get_secret_value()
    api.keys["other-secret"] = create_key(api.engine, "other secret", ["forecasts:read"], other)
    refused = api.get("/v1/models/current", key="other-secret")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthenticated"
    assert api.get("/v1/models/current", key="read").status_code == 200

    app = create_app(api.settings.model_copy(update={"secret_key": other}), api.engine, poll=False)
    for base in serve(app, free_port()):
        url = base + "/v1/models/current"
        accepted = httpx.get(url, headers={"X-API-Key": api.keys["other-secret"]})
        assert accepted.status_code == 200, accepted.text
        assert httpx.get(url, headers={"X-API-Key": api.keys["read"]}).status_code == 401
