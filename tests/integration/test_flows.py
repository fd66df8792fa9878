"""The Prefect flows, for real: on Prefect's ephemeral API (through `fournil flows run`), and
deployed on a Prefect server on PostgreSQL with a process worker (as compose runs them)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from fournil.data.generator import GeneratedData, GeneratorConfig, generate
from fournil.db import make_engine
from fournil.db.schema import forecasts, pipeline_runs
from tests.conftest import END_DATE
from tests.integration.helpers import free_port, server_process, throwaway_database
from tests.integration.test_monitoring import _Receiver, webhook  # noqa: F401 - fixture

CLI = [sys.executable, "-m", "fournil"]
FORECAST_DATE = END_DATE - dt.timedelta(days=7)  # actuals exist after it: monitor can score


@pytest.fixture(scope="session")
def flow_drop(tmp_path_factory: pytest.TempPathFactory) -> GeneratedData:
    return generate(
        GeneratorConfig(stores=3, products=4, days=200, end_date=END_DATE, seed=41),
        tmp_path_factory.mktemp("flow-drop"),
    )


@pytest.fixture(scope="session")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One PREFECT_HOME for the session: only the first ephemeral run builds its database."""
    return tmp_path_factory.mktemp("prefect-home")


def _env(
    pg_url: str, home: Path, landing: Path, prefect_home: Path, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        {
            "COLUMNS": "200",
            "DATABASE_URL": pg_url,
            "FOURNIL_HOME": str(home),
            "FOURNIL_LANDING_DIR": str(landing),
            "FOURNIL_GATE_MAX_LATENCY_MS": "5000",
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            # the first ephemeral start builds a database: on a busy 2-core CI machine this
            # can exceed Prefect's default 20 s
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        }
    )
    env.update(extra)
    return env


def _landing(tmp_path: Path, drop: GeneratedData) -> Path:
    landing = tmp_path / "landing"
    landing.mkdir()
    for path in (drop.stores_path, drop.products_path, drop.sales_path):
        shutil.copy(path, landing / path.name)
    return landing


def _runs(pg_url: str) -> dict[str, list[dict[str, Any]]]:
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        rows = conn.execute(select(pipeline_runs).order_by(pipeline_runs.c.started_at)).mappings()
        out: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            out.setdefault(str(row["flow"]), []).append(dict(row))
    engine.dispose()
    return out


def test_flows_on_the_ephemeral_api(
    pg_url: str,
    flow_drop: GeneratedData,
    prefect_home: Path,
    tmp_path: Path,
    webhook: type[_Receiver],  # noqa: F811
) -> None:
    landing = _landing(tmp_path, flow_drop)
    env = _env(
        pg_url,
        tmp_path / "home",
        landing,
        prefect_home,
        FOURNIL_ALERT_WEBHOOK_URL=os.environ["FOURNIL_ALERT_WEBHOOK_URL"],
    )

    def flow(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, "flows", "run", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )

    early = flow("forecast")  # nothing loaded yet: the flow fails, is recorded, alerts
    assert early.returncode == 1 and "Failed" in early.stderr
    assert any("flow forecast failed" in str(b["text"]) for b in webhook.received)

    # one process, one ephemeral API; etl twice: the second finds nothing new to load
    done = flow("etl", "train", "forecast", "monitor", "etl", "--date", str(FORECAST_DATE))
    # (monitor evaluates the last day with sales: the forecasts from FORECAST_DATE get scored)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": Completed") == 5

    runs = _runs(pg_url)
    assert [r["status"] for r in runs["forecast"]] == ["failed", "success"]
    assert "ForecastError" in str(runs["forecast"][0]["error"])
    etl_first, etl_again = runs["etl"]
    assert etl_first["status"] == "success" and etl_first["rows_processed"] > 0
    assert etl_again["rows_processed"] == 0 and etl_again["metrics"]["files"] == 0
    train = runs["train"][0]
    assert train["status"] == "success"
    assert {"train", "gate"} <= set(train["stages"])
    assert {"train_rmse", "backtest_rmse", "backtest_wape"} <= set(train["metrics"])
    assert runs["forecast"][1]["rows_processed"] > 0
    monitor = runs["monitor"][0]
    assert monitor["status"] == "success" and "forecast_wape" in monitor["metrics"]
    for run in (etl_first, train, monitor):
        assert run["finished_at"] is not None and run["finished_at"] >= run["started_at"]


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[str]:
    """A real Prefect server on a throwaway PostgreSQL database (asyncpg)."""
    port = free_port()
    with throwaway_database("fournil_prefect") as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            {
                "PREFECT_HOME": str(tmp_path / "prefect-server"),
                "PREFECT_API_DATABASE_CONNECTION_URL": make_url(url)
                .set(drivername="postgresql+asyncpg")
                .render_as_string(hide_password=False),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_UI_ENABLED": "false",
            }
        )
        cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
        api = f"http://127.0.0.1:{port}/api"
        with server_process(
            [*cmd, "--port", str(port)], f"{api}/health", tmp_path / "prefect-server.log", env
        ):
            yield api


def _stop(worker: subprocess.Popen[bytes]) -> None:
    """Stop a Prefect worker as `docker stop` would, with TERM. Prefect turns TERM into SIGINT
    to itself; once in a while (twice in CI) that first interrupt does not stop it, and it
    waits on; a second TERM does (Prefect escalates on the second signal). It must stop
    within a minute either way."""
    worker.terminate()
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.terminate()
        worker.wait(timeout=30)


def _run_deployment(api: str, full_name: str, parameters: dict[str, str] | None = None) -> str:
    deployment = httpx.get(f"{api}/deployments/name/{full_name}", timeout=10).json()
    created = httpx.post(
        f"{api}/deployments/{deployment['id']}/create_flow_run",
        json={"parameters": parameters or {}},
        timeout=10,
    ).json()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        state = httpx.get(f"{api}/flow_runs/{created['id']}", timeout=10).json()["state"]
        if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return str(state["type"])
        time.sleep(1)
    raise TimeoutError(f"{full_name} did not finish")


def test_deployments_run_on_a_prefect_server_with_a_worker(
    pg_url: str, flow_drop: GeneratedData, prefect_server: str, tmp_path: Path
) -> None:
    landing = _landing(tmp_path, flow_drop)
    env = _env(
        pg_url,
        tmp_path / "home",
        landing,
        tmp_path / "prefect-client",
        PREFECT_API_URL=prefect_server,
        PREFECT_WORKER_QUERY_SECONDS="1",
    )
    deployed = subprocess.run(
        [*CLI, "flows", "deploy"], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    deployment = httpx.get(f"{prefect_server}/deployments/name/etl/daily", timeout=10).json()
    schedule = deployment["schedules"][0]["schedule"]
    assert (schedule["cron"], schedule["timezone"]) == ("0 6 * * *", "Europe/Paris")

    worker_log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [*CLI, "worker"], env=env, stdout=worker_log, stderr=subprocess.STDOUT
    )
    try:
        assert _run_deployment(prefect_server, "etl/daily") == "COMPLETED"
        assert _run_deployment(prefect_server, "train/weekly") == "COMPLETED"
        assert (
            _run_deployment(prefect_server, "forecast/daily", {"date": str(FORECAST_DATE)})
            == "COMPLETED"
        )
        assert _run_deployment(prefect_server, "monitor/daily") == "COMPLETED"
    finally:
        _stop(worker)
    runs = _runs(pg_url)
    assert {f: [r["status"] for r in rs] for f, rs in runs.items()} == {
        "etl": ["success"],
        "train": ["success"],
        "forecast": ["success"],
        "monitor": ["success"],
    }
    completed = httpx.post(
        f"{prefect_server}/flow_runs/filter",
        json={"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}},
        timeout=10,
    ).json()
    assert {r["id"] for r in completed} == {
        str(r["run_id"]) for rs in runs.values() for r in rs
    }  # the table is keyed by Prefect's flow run ids
    scheduled = httpx.post(
        f"{prefect_server}/flow_runs/filter",
        json={"flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}},
        timeout=10,
    ).json()
    assert scheduled  # the server's scheduler created the cron runs of the deployments
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(select(forecasts.c.forecast_date).distinct()).scalars().all() == [
            FORECAST_DATE
        ]
    engine.dispose()
