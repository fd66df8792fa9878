"""The compose stack, natively: the services' own commands from docker-compose.yml (see
`native.py`), the whole pipeline through the Prefect server, the API, Prometheus, and a backup
restored into new databases. `make stack-test` runs this file alone.

Stand-ins for what cannot run here (no Docker engine): the test PostgreSQL server is the `db`
service (its init script runs against it, with the database and role names suffixed so runs do
not collide, and its superuser stands in for the image's `postgres`); Debian's `prometheus` is
the Prometheus image. Test-only environment: EXTRA_ENV below.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from fournil.data.generator import GeneratorConfig, generate
from fournil.db import make_engine
from fournil.orchestration import DEPLOYMENTS
from tests import conftest
from tests.e2e.native import Native, free_port

ROOT = Path(__file__).resolve().parents[2]
END = dt.date(2026, 6, 30)
# test-only settings on top of the compose environment, for a busy 2-core CI machine
EXTRA_ENV = {
    "FOURNIL_GATE_MAX_LATENCY_MS": "5000",
    "FOURNIL_API_MODEL_POLL_SECONDS": "2",
    "FOURNIL_API_TABLES_POLL_SECONDS": "2",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}
NAMED = ("WAREHOUSE_DB", "MLFLOW_DB", "PREFECT_DB", "SUPERSET_DB")


def dotenv(suffix: str) -> dict[str, str]:
    """.env.example as `make init-env` would render it, with suffixed databases and roles."""
    env = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            env[key] = secrets.token_hex(16) if value == "change-me" else value
    for key in (*NAMED, *(f"{n}_USER" for n in NAMED), "WAREHOUSE_READER_USER"):
        env[key] = f"fs_{key.lower()}_{suffix}"
    env["FOURNIL_DOMAIN"] = "localhost"
    return env


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_deployment(stack: Native, name: str, **parameters: str) -> str:
    """Trigger a deployment on the Prefect server and wait for its final state."""
    code = (
        "import json, sys\n"
        "from prefect.deployments import run_deployment\n"
        "run = run_deployment(sys.argv[1], parameters=json.loads(sys.argv[2]), timeout=900)\n"
        "print(run.state.type.value)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, name, json.dumps(parameters)],
        env={**stack.process_env("worker"), **EXTRA_ENV},
        capture_output=True,
        text=True,
        timeout=960,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def table_fingerprints(url: str) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent checksum of every table of a database."""
    engine = make_engine(url)
    out = {}
    with engine.connect() as conn:
        tables = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        ).scalars()
        for table in list(tables):
            count, digest = conn.execute(
                text(
                    f"SELECT count(*), md5(coalesce(string_agg(md5(t::text), '' ORDER BY "
                    f"md5(t::text)), '')) FROM \"{table}\" t"
                )
            ).one()
            out[table] = (int(count), str(digest))
    engine.dispose()
    return out


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Native]:
    if shutil.which("prometheus") is None:
        pytest.fail("the stack test needs Prometheus: apt-get install prometheus")
    server = make_url(conftest.test_server_url())
    suffix = uuid.uuid4().hex[:6]
    env = dotenv(suffix)
    native = Native(
        root=ROOT,
        workdir=tmp_path,
        env=env,
        db_host=server.host or "127.0.0.1",
        db_port=server.port or 5432,
        extra_env=EXTRA_ENV,
    )
    admin = {
        "PGHOST": native.db_host,
        "PGPORT": str(native.db_port),
        "PGUSER": server.username or "postgres",
        "PGPASSWORD": server.password or "",
        "POSTGRES_USER": server.username or "postgres",
    }
    native.admin = admin  # type: ignore[attr-defined]
    procs: list[subprocess.Popen[bytes]] = []
    native.procs = procs  # type: ignore[attr-defined]
    try:
        yield native
    finally:
        for proc in reversed(procs):
            stop(proc)
        engine = conftest._admin_engine()
        with engine.connect() as conn:
            for key in NAMED:
                for db in (env[key], f"{env[key]}_restored"):
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            for key in (*(f"{n}_USER" for n in NAMED), "WAREHOUSE_READER_USER"):
                conn.execute(text(f'DROP ROLE IF EXISTS "{env[key]}"'))
        engine.dispose()
        print("\n".join(native.translations))


def test_the_compose_stack_runs_the_pipeline_end_to_end(stack: Native) -> None:
    admin: dict[str, str] = stack.admin  # type: ignore[attr-defined]
    procs: list[subprocess.Popen[bytes]] = stack.procs  # type: ignore[attr-defined]

    # db: the image runs every init script once, against the fresh server
    db_env = {**stack.process_env("db"), **admin}
    for script in sorted((ROOT / "compose/postgres/init").glob("*.sh")):
        done = subprocess.run(
            ["bash", str(script)], env=db_env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr

    # migrate (one-shot), then the long-running services in dependency order
    migrated = stack.run("migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    https_port = free_port()
    stack.extra_env.update(PROXY_HTTP_PORT=str(free_port()), PROXY_HTTPS_PORT=str(https_port))
    for group in (("mlflow", "prefect-server"), ("worker", "api", "prometheus", "proxy")):
        started = {name: stack.start(name) for name in group}
        procs.extend(started.values())
        for name, proc in started.items():
            stack.wait_healthy(name, proc)

    # a drop lands in the worker's landing volume; the flows run through the Prefect server
    landing = stack.workdir / "volumes" / "landing"
    drop = generate(
        GeneratorConfig(stores=3, products=4, days=200, end_date=END, seed=7),
        stack.workdir / "drop",
    )
    for path in (drop.stores_path, drop.products_path, drop.sales_path):
        shutil.copy(path, landing / path.name)
    names = {spec.flow: spec.full_name for spec in DEPLOYMENTS}
    forecast_day = str(END - dt.timedelta(days=3))  # actuals exist for the monitor to score
    assert run_deployment(stack, names["etl"]) == "COMPLETED"
    assert run_deployment(stack, names["train"]) == "COMPLETED"
    assert run_deployment(stack, names["forecast"], date=forecast_day) == "COMPLETED"
    assert run_deployment(stack, names["monitor"]) == "COMPLETED"

    # the API: a key made with the CLI, the new champion and forecasts picked up while running
    created = subprocess.run(
        ["fournil", "apikey", "create", "--name", "stack", "--scope", "admin"],
        env=stack.process_env("api"),
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert created.returncode == 0, created.stderr
    key = re.search(r"fk_\w+_\S+", created.stdout)
    assert key, created.stdout
    headers = {"X-API-Key": key.group(0)}
    api = stack.url("api")
    deadline = time.monotonic() + 120
    while True:
        ready = httpx.get(api + "/ready", timeout=10).json()
        page = httpx.get(api + "/v1/forecasts", params={"store_id": 1}, headers=headers).json()
        if ready["status"] == "ready" and page.get("total"):
            break
        assert time.monotonic() < deadline, (ready, page, stack.log("api"))
        time.sleep(2)
    assert page["items"][0]["model_version"] == ready["champion"]
    row = {"store_id": 2, "product_id": 3, "date": str(END + dt.timedelta(days=1))}
    predicted = httpx.post(api + "/v1/predict", json={"rows": [row]}, headers=headers)
    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["predictions"][0]["arm"] == "champion"

    # Prometheus scrapes the API (its metrics and the pipeline's)
    deadline = time.monotonic() + 90
    query = 'fournil_api_requests_total{route="/v1/predict",status="200"}'
    while True:
        got = httpx.get(stack.url("prometheus", "/api/v1/query"), params={"query": query})
        if got.json()["data"]["result"]:
            break
        assert time.monotonic() < deadline, stack.log("prometheus")
        time.sleep(3)
    up = httpx.get(stack.url("prometheus", "/api/v1/query"), params={"query": "up"}).json()
    assert {r["metric"]["job"]: r["value"][1] for r in up["data"]["result"]}["fournil-api"] == "1"

    # the proxy: TLS from its own CA for *.localhost, basic auth in front of the UIs only
    ca = stack.workdir / "home/proxy/.local/share/caddy/pki/authorities/local/root.crt"

    def through_proxy(host: str, path: str, *args: str) -> str:
        """HTTP status of https://<host>.localhost<path> through the proxy, TLS verified."""
        name = f"{host}.localhost"
        curl = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(ca)]
        done = subprocess.run(
            [
                *curl,
                "--resolve",
                f"{name}:{https_port}:127.0.0.1",
                *args,
                f"https://{name}:{https_port}{path}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr + stack.log("proxy")
        return done.stdout

    assert through_proxy("api", "/health") == "200"
    assert through_proxy("api", "/v1/forecasts?store_id=1") == "401"  # the API's own keys
    assert through_proxy("mlflow", "/") == "401"
    password = stack.env["PROXY_PASSWORD"]
    assert through_proxy("mlflow", "/", "-u", f"{stack.env['PROXY_USER']}:{password}") == "200"
    assert through_proxy("prefect", "/api/health", "-u", f"fournil:{password}x") == "401"
    assert through_proxy("prefect", "/api/health", "-u", f"fournil:{password}") == "200"

    # backup with the backup service's script, restore into new databases, compare
    backup_env = {**stack.process_env("backup"), **{k: admin[k] for k in ("PGUSER", "PGPASSWORD")}}
    script = stack.translate("backup", "/opt/backup/backup.sh")
    done = subprocess.run(
        ["bash", script], env=backup_env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    backups = stack.workdir / "volumes" / "backups"
    (made,) = [p for p in backups.iterdir() if p.is_dir()]
    assert (made / "mlflow-artifacts.tar.gz").stat().st_size > 10_000  # the models' artifacts
    restore = stack.translate("backup", "/opt/backup/restore.sh")
    done = subprocess.run(
        ["bash", restore, str(made)],
        env={**backup_env, "RESTORE_SUFFIX": "_restored"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    server = make_url(conftest.test_server_url())
    for key in ("WAREHOUSE_DB", "MLFLOW_DB"):
        name = stack.env[key]
        original = table_fingerprints(server.set(database=name).render_as_string(False))
        restored = table_fingerprints(
            server.set(database=f"{name}_restored").render_as_string(False)
        )
        assert original == restored
        assert sum(count for count, _ in original.values()) > 0
        if key == "WAREHOUSE_DB":  # the pipeline's output is in what was backed up
            filled = {table for table, (count, _) in original.items() if count}
            assert {"sales", "forecasts", "pipeline_runs"} <= filled
