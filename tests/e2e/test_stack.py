"""The compose stack, natively: the services' own commands from docker-compose.yml (see
`native.py`), the whole pipeline through the Prefect server, the API behind the proxy,
Prometheus scraping the API and the exporters, every Grafana panel's query, Superset with its
dashboards bundle (every chart's data, no drift from the repository, screenshots), and a backup
restored into new databases. `make stack-test` runs this file alone.

Stand-ins for what cannot run here (no Docker engine): the test PostgreSQL server is the `db`
service (its init script runs against it, with the database and role names suffixed so runs do
not collide, and its superuser stands in for the image's `postgres`); Debian's `prometheus`,
`prometheus-node-exporter`, `prometheus-postgres-exporter` and `caddy` stand in for their
images. Grafana cannot be installed: its panels' queries run against the same datasources.
Test-only environment: EXTRA_ENV below.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from fournil.data.generator import GeneratedData, GeneratorConfig, generate
from fournil.db import make_engine
from tests import conftest
from tests.e2e.deployments import run_deployment_command
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
PROXY_HEADER_TIMEOUT = 2  # seconds: the proxy's read_header timeout in this test
NAMED = ("WAREHOUSE_DB", "MLFLOW_DB", "PREFECT_DB", "SUPERSET_DB")
ROLES = (*(f"{n}_USER" for n in NAMED), "WAREHOUSE_READER_USER", "MONITORING_DB_USER")
SERVICES = (
    ("mlflow", "prefect-server"),
    ("worker", "api", "prometheus", "alertmanager", "node-exporter", "postgres-exporter", "proxy"),
)


class Webhook(BaseHTTPRequestHandler):
    """Stands in for Slack: records what the pipeline and Alertmanager post."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def dotenv(suffix: str, webhook: str) -> dict[str, str]:
    """.env.example as `make init-env` would render it, with suffixed databases and roles, and
    the alert webhook set."""
    env = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            env[key] = secrets.token_hex(16) if value == "change-me" else value
    for key in (*NAMED, *ROLES):
        env[key] = f"fs_{key.lower()}_{suffix}"
    env["FOURNIL_DOMAIN"] = "localhost"
    env["FOURNIL_ALERT_WEBHOOK_URL"] = webhook
    return env


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


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


@dataclass
class Running:
    stack: Native
    admin: dict[str, str]
    drop: GeneratedData | None = None
    states: dict[str, str] = field(default_factory=dict)
    key: str = ""
    https_port: int = 0
    started: float = field(default_factory=time.time)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def db_url(self, key: str, user: str | None = None, suffix: str = "") -> str:
        server = make_url(conftest.test_server_url())
        if user:  # a role of the stack (the init script gave it this password)
            password = self.stack.env[user.replace("_USER", "_PASSWORD")]
            server = server.set(username=self.stack.env[user], password=password)
        return server.set(database=self.stack.env[key] + suffix).render_as_string(False)

    def deploy_run(self, flow: str, **parameters: str) -> str:
        """Trigger a flow's deployment on the Prefect server; its final state."""
        done = subprocess.run(
            run_deployment_command(sys.executable, flow, parameters, timeout=900),
            env=self.stack.process_env("worker"),
            capture_output=True,
            text=True,
            timeout=960,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout.strip().splitlines()[-1]

    def prometheus(self, query: str) -> list[dict[str, Any]]:
        got = httpx.get(self.stack.url("prometheus", "/api/v1/query"), params={"query": query})
        return list(got.json()["data"]["result"])


def bring_up(run: Running) -> None:
    stack = run.stack
    # db: the image runs every init script once, against the fresh server
    for script in sorted((ROOT / "compose/postgres/init").glob("*.sh")):
        done = subprocess.run(
            ["bash", str(script)],
            env={**stack.process_env("db"), **run.admin},
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    # migrate (one-shot), then the long-running services in dependency order
    migrated = stack.run("migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    run.https_port = free_port()
    stack.extra_env.update(
        PROXY_HTTP_PORT=str(free_port()),
        PROXY_HTTPS_PORT=str(run.https_port),
        # the proxy's header deadline (10 s by default), short enough for the slow-client test
        PROXY_READ_HEADER_TIMEOUT=f"{PROXY_HEADER_TIMEOUT}s",
    )
    for group in SERVICES:
        started = {name: stack.start(name) for name in group}
        run.procs.extend(started.values())
        for name, proc in started.items():
            stack.wait_healthy(name, proc)


def run_the_pipeline(run: Running) -> None:
    """Through the Prefect server, as the schedules would: a forecast before any data (fails,
    and is recorded), then a drop lands and etl, train, forecast and monitor run."""
    run.states["forecast before data"] = run.deploy_run("forecast")
    landing = run.stack.workdir / "volumes" / "landing"
    run.drop = generate(
        GeneratorConfig(stores=4, products=5, days=200, end_date=END, seed=7, bad_row_rate=0.002),
        run.stack.workdir / "drop",
    )
    for path in (run.drop.stores_path, run.drop.products_path, run.drop.sales_path):
        shutil.copy(path, landing / path.name)
    run.states["etl"] = run.deploy_run("etl")
    run.states["train"] = run.deploy_run("train")
    # the weekly retrain: the gate now has a champion to beat on the same backtest
    run.states["retrain"] = run.deploy_run("train")
    # forecast from a few days back: the monitor then scores it on actuals
    run.states["forecast"] = run.deploy_run("forecast", date=str(END - dt.timedelta(days=3)))
    run.states["monitor"] = run.deploy_run("monitor")


def use_the_api(run: Running) -> None:
    """A key from the CLI, then traffic: forecasts, predictions (future and past days, so the
    prediction log meets actuals), and some client errors."""
    stack = run.stack
    created = subprocess.run(
        ["fournil", "apikey", "create", "--name", "stack", "--scope", "admin"],
        env=stack.process_env("api"),
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert created.returncode == 0, created.stderr
    found = re.search(r"fk_\w+_\S+", created.stdout)
    assert found, created.stdout
    run.key = found.group(0)
    api, headers = stack.url("api"), {"X-API-Key": run.key}
    deadline = time.monotonic() + 120
    while True:  # the API picks the new champion and the new forecasts up while running
        ready = httpx.get(api + "/ready", timeout=10).json()
        page = httpx.get(api + "/v1/forecasts", params={"store_id": 1}, headers=headers).json()
        if ready["status"] == "ready" and page.get("total"):
            break
        assert time.monotonic() < deadline, (ready, page, stack.log("api"))
        time.sleep(2)
    days = [END + dt.timedelta(days=d) for d in (-3, -2, -1, 1, 2)]
    for _ in range(3):
        for store in (1, 2, 3, 4):
            rows = [
                {"store_id": store, "product_id": p, "date": str(d)} for p in (1, 2) for d in days
            ]
            assert httpx.post(api + "/v1/predict", json={"rows": rows}, headers=headers).is_success
            httpx.get(api + "/v1/forecasts", params={"store_id": store}, headers=headers)
        httpx.get(api + "/v1/forecasts", params={"store_id": 1})  # 401
        httpx.get(api + "/v1/forecasts", params={"store_id": 999}, headers=headers)  # 404
        time.sleep(5)
    # Prometheus has the traffic, then long enough for rate() windows to hold two scrapes
    deadline = time.monotonic() + 90
    while not run.prometheus('fournil_api_requests_total{route="/v1/predict",status="200"}'):
        assert time.monotonic() < deadline, stack.log("prometheus")
        time.sleep(3)
    time.sleep(35)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tools = ("prometheus", "prometheus-node-exporter", "prometheus-postgres-exporter", "caddy")
    for tool in (*tools, "prometheus-alertmanager"):
        if shutil.which(tool) is None:
            pytest.fail(f"the stack test needs {tool} (Debian package; .ci/run installs it)")
    Webhook.received = []
    hook = HTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    server = make_url(conftest.test_server_url())
    env = dotenv(uuid.uuid4().hex[:6], f"http://127.0.0.1:{hook.server_port}/hook")
    stack = Native(
        root=ROOT,
        workdir=tmp_path_factory.mktemp("stack"),
        env=env,
        db_host=server.host or "127.0.0.1",
        db_port=server.port or 5432,
        # the image's /bin/alertmanager is Debian's prometheus-alertmanager here
        extra_env={**EXTRA_ENV, "ALERTMANAGER_BIN": str(shutil.which("prometheus-alertmanager"))},
    )
    admin = {
        "PGHOST": stack.db_host,
        "PGPORT": str(stack.db_port),
        "PGUSER": server.username or "postgres",
        "PGPASSWORD": server.password or "",
        "POSTGRES_USER": server.username or "postgres",
    }
    run = Running(stack, admin)
    try:
        bring_up(run)
        run_the_pipeline(run)
        use_the_api(run)
        yield run
    finally:
        hook.shutdown()
        for proc in reversed(run.procs):
            stop(proc)
        engine = conftest._admin_engine()
        with engine.connect() as conn:
            for key in NAMED:
                for db in (env[key], f"{env[key]}_restored"):
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            for key in ROLES:
                conn.execute(text(f'DROP ROLE IF EXISTS "{env[key]}"'))
        engine.dispose()
        print("\n".join(stack.translations))


def test_the_pipeline_runs_through_the_prefect_server(running: Running) -> None:
    assert running.states == {
        "forecast before data": "FAILED",  # no data yet: recorded as a failed run
        "etl": "COMPLETED",
        "train": "COMPLETED",
        "retrain": "COMPLETED",
        "forecast": "COMPLETED",
        "monitor": "COMPLETED",
    }


def test_the_retrained_model_faced_the_champion_at_the_gate(running: Running) -> None:
    """Qualification's "no regression": the second training's backtest WAPE was compared with
    the champion's on the same cut-offs, and its verification samples were replayed."""
    engine = make_engine(running.db_url("WAREHOUSE_DB"))
    with engine.connect() as conn:
        decisions = conn.execute(
            text(
                "SELECT model_version, action, champion_before, reasons FROM model_decisions "
                "ORDER BY decided_at"
            )
        ).all()
    engine.dispose()
    assert [d.model_version for d in decisions] == ["1", "2"]
    first, second = decisions
    assert first.action == "promoted" and first.champion_before is None
    assert second.champion_before == "1"
    reasons = " ".join(second.reasons if isinstance(second.reasons, list) else [second.reasons])
    assert "vs champion v1" in reasons, reasons
    assert "verification" in reasons, reasons


def test_the_api_contract_holds_on_the_stack(running: Running) -> None:
    """The API's OpenAPI contract (schemathesis: no 5xx, responses as documented) against the
    stack's API, as qualification runs it."""
    from tests.integration.helpers import api_contract

    done = api_contract(running.stack.url("api", "/openapi.json"), running.key, examples=10)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_the_api_serves_the_new_champion(running: Running) -> None:
    api, headers = running.stack.url("api"), {"X-API-Key": running.key}
    ready = httpx.get(api + "/ready").json()
    page = httpx.get(api + "/v1/forecasts", params={"store_id": 1}, headers=headers).json()
    assert page["items"][0]["model_version"] == ready["champion"]
    row = {"store_id": 2, "product_id": 3, "date": str(END + dt.timedelta(days=1))}
    predicted = httpx.post(api + "/v1/predict", json={"rows": [row]}, headers=headers)
    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["predictions"][0]["arm"] == "champion"


def test_prometheus_scrapes_the_api_and_the_exporters(running: Running) -> None:
    up = {r["metric"]["job"]: r["value"][1] for r in running.prometheus("up")}
    jobs = ("fournil-api", "node", "postgres", "prometheus", "alertmanager")
    assert {up[job] for job in jobs} == {"1"}, up
    assert running.prometheus('fournil_pipeline_last_run_success{flow="train"}')


def caddy_ca(running: Running) -> Path:
    """The root certificate of Caddy's internal CA (the proxy's HOME is its data folder)."""
    return running.stack.workdir / "home/proxy/.local/share/caddy/pki/authorities/local/root.crt"


def test_the_proxy_serves_tls_and_guards_the_uis(running: Running) -> None:
    """TLS from Caddy's own CA for *.localhost; basic auth in front of the UIs only; the API's
    /metrics is not served through it, and no Server header names the software."""
    stack, port = running.stack, running.https_port
    ca = caddy_ca(running)

    def curl(host: str, path: str, *args: str) -> str:
        name = f"{host}.localhost"
        base = ["curl", "-sS", "--cacert", str(ca), "--resolve", f"{name}:{port}:127.0.0.1"]
        done = subprocess.run(
            [*base, *args, f"https://{name}:{port}{path}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr + stack.log("proxy")
        return done.stdout

    def status(host: str, path: str, *args: str) -> str:
        return curl(host, path, "-o", "/dev/null", "-w", "%{http_code}", *args)

    def headers(host: str, path: str) -> dict[str, str]:
        """The response's header names (lower case) and values."""
        lines = curl(host, path, "-o", "/dev/null", "-D", "-").splitlines()
        return {
            name.strip().lower(): value.strip()
            for name, sep, value in (line.partition(":") for line in lines[1:])
            if sep
        }

    user, password = stack.env["PROXY_USER"], stack.env["PROXY_PASSWORD"]
    assert status("api", "/health") == "200"
    assert status("api", "/v1/forecasts?store_id=1") == "401"  # the API's own keys
    # Prometheus scrapes the API directly (test_prometheus_scrapes_...); through the proxy, 404
    assert httpx.get(stack.url("api", "/metrics")).status_code == 200
    assert status("api", "/metrics") == "404"
    assert status("api", "/metrics/") == "404"
    for path in ("/health", "/metrics"):
        got = headers("api", path)
        assert "server" not in got, (path, got)
        assert got.get("strict-transport-security"), (path, got)
    assert "server" not in httpx.get(stack.url("api", "/health")).headers  # no "uvicorn" either
    assert status("mlflow", "/") == "401"
    assert status("mlflow", "/", "-u", f"{user}:{password}") == "200"
    assert status("prefect", "/api/health", "-u", f"{user}:{password}x") == "401"
    assert status("prefect", "/api/health", "-u", f"{user}:{password}") == "200"
    assert status("prometheus", "/-/healthy", "-u", f"{user}:{password}") == "200"


def test_the_proxy_cuts_a_slow_client_off(running: Running) -> None:
    """Slowloris: a request whose headers never end is dropped after the proxy's read_header
    timeout (PROXY_READ_HEADER_TIMEOUT, 2 s here), while a complete request is served."""
    port = running.https_port
    context = ssl.create_default_context(cafile=str(caddy_ca(running)))

    def connect() -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", port), timeout=15)
        return context.wrap_socket(raw, server_hostname="api.localhost")

    def answer(conn: ssl.SSLSocket, limit: float) -> bytes:
        """What the server sends until it closes the connection (at most `limit` seconds)."""
        got, deadline = b"", time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                chunk = conn.recv(4096)
            except (ConnectionError, ssl.SSLError):
                break
            if not chunk:
                break
            got += chunk
        return got

    with connect() as slow:
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: api.localhost\r\n")  # no blank line
        sent = time.monotonic()
        with connect() as whole:  # meanwhile, a complete request on another connection
            whole.sendall(
                b"GET /health HTTP/1.1\r\nHost: api.localhost\r\nConnection: close\r\n\r\n"
            )
            served = answer(whole, 15)
        assert served.startswith(b"HTTP/1.1 200"), served[:300]
        try:
            said = answer(slow, 15)
        except TimeoutError:  # the socket's own 15 s: never closed
            said = b"(still open)"
        took = time.monotonic() - sent
    assert said == b"" or said.startswith(b"HTTP/1.1 408"), said[:300]
    # cut off by the timeout (not refused at once, not left open): generous slack on 2 cores
    assert 1.0 <= took <= 10, took


def test_alerts_reach_the_webhook_and_inhibition_holds(running: Running) -> None:
    """The pipeline's own alert for the failed run, and Alertmanager's Slack-format message."""
    assert any("flow forecast failed" in str(b.get("text")) for b in Webhook.received)
    alertmanager = running.stack.url("alertmanager")

    def alert(name: str, severity: str, component: str) -> dict[str, Any]:
        return {
            "labels": {"alertname": name, "severity": severity, "component": component},
            "annotations": {"summary": f"{name} (stack test)", "runbook": "none"},
        }

    sent = [
        alert("FournilDriftHigh", "warning", "model"),
        alert("FournilWarehouseDown", "critical", "pipeline"),
        alert("FournilForecastAccuracyLow", "warning", "model"),
    ]
    assert httpx.post(f"{alertmanager}/api/v2/alerts", json=sent).status_code == 200
    deadline = time.monotonic() + 90
    while True:
        titles = [
            a.get("title", "") for body in Webhook.received for a in body.get("attachments", [])
        ]
        if any("FournilWarehouseDown" in t for t in titles):
            break
        assert time.monotonic() < deadline, (Webhook.received, running.stack.log("alertmanager"))
        time.sleep(2)
    states = {
        a["labels"]["alertname"]: a["status"]
        for a in httpx.get(f"{alertmanager}/api/v2/alerts").json()
    }
    # the warehouse down explains the model alerts: inhibited, never sent
    assert states["FournilForecastAccuracyLow"]["state"] == "suppressed"
    assert states["FournilForecastAccuracyLow"]["inhibitedBy"]
    assert states["FournilWarehouseDown"]["state"] == "active"
    assert not any("FournilForecastAccuracyLow" in t for t in titles)


def test_every_dashboard_panel_returns_data(running: Running) -> None:
    """Each Grafana panel's queries, through its datasource: PromQL on Prometheus over the
    test's time range, SQL on the warehouse as Grafana's read-only role."""
    from tests.e2e.dashboards import evaluate_all, render_previews

    results = evaluate_all(
        prometheus=running.stack.url("prometheus"),
        warehouse=running.db_url("WAREHOUSE_DB", user="WAREHOUSE_READER_USER"),
        start=running.started,
    )
    empty = [f"{r.board} / {r.panel}: {r.query}" for r in results if not r.rows]
    preview = os.environ.get("FOURNIL_DASHBOARD_PREVIEW")
    if preview:
        for path in render_previews(results, ROOT / preview):
            print(f"preview: {path}")
    assert len(results) >= 40
    assert empty == []


def test_a_backup_restores_into_new_databases(running: Running) -> None:
    stack = running.stack
    env = {**stack.process_env("backup"), **{k: running.admin[k] for k in ("PGUSER", "PGPASSWORD")}}
    script = stack.translate("backup", "/opt/backup/backup.sh")
    done = subprocess.run(["bash", script], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    backups = stack.workdir / "volumes" / "backups"
    (made,) = [p for p in backups.iterdir() if p.is_dir()]
    assert (made / "mlflow-artifacts.tar.gz").stat().st_size > 10_000  # the models' artifacts
    restore = stack.translate("backup", "/opt/backup/restore.sh")
    done = subprocess.run(
        ["bash", restore, str(made)],
        env={**env, "RESTORE_SUFFIX": "_restored"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for key in ("WAREHOUSE_DB", "MLFLOW_DB"):
        original = table_fingerprints(running.db_url(key))
        assert original == table_fingerprints(running.db_url(key, suffix="_restored"))
        assert sum(count for count, _ in original.values()) > 0
        if key == "WAREHOUSE_DB":  # the pipeline's output is in what was backed up
            filled = {table for table, (count, _) in original.items() if count}
            assert {"sales", "forecasts", "pipeline_runs", "prediction_log"} <= filled


# --- Superset (the `bi` profile) ----------------------------------------------------------------
ARTIFACTS = Path(os.environ.get("FOURNIL_ARTIFACTS", ROOT / "build" / "artifacts"))


@dataclass
class SupersetUp:
    base: str
    password: str
    init_log: str


def parity_twin(running: Running) -> str:
    """A preproduction twin of the warehouse, one day of sales behind, and `fournil parity
    --save` between the two, as a team would run it before a release."""
    twin = running.stack.env["WAREHOUSE_DB"] + "_twin"
    admin = {**running.stack.process_env("db"), **running.admin}
    for command in (
        ["createdb", twin],
        [
            "bash",
            "-c",
            f'pg_dump --no-owner "{running.stack.env["WAREHOUSE_DB"]}" | psql -q -d "{twin}"',
        ],
        [
            "psql",
            "-q",
            "-d",
            twin,
            "-c",
            "DELETE FROM sales WHERE sale_date = (SELECT max(sale_date) FROM sales)",
        ],
    ):
        done = subprocess.run(command, env=admin, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
    twin_url = running.db_url("WAREHOUSE_DB", suffix="_twin")
    done = subprocess.run(
        [
            *("fournil", "parity", running.db_url("WAREHOUSE_DB"), twin_url, "--save"),
            *("--label-a", "production", "--label-b", "preproduction"),
        ],
        env=running.stack.process_env("worker"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return twin


@pytest.fixture(scope="module")
def superset(running: Running) -> Iterator[SupersetUp]:
    """superset-init (bootstrap: metadata DB on the stack's PostgreSQL, admin, bundle import on
    the warehouse as the read-only role), then the superset service, from the compose file, in
    Superset's own virtualenv (`make superset-venv`, cached)."""
    from tests.e2e.superset import superset_bin

    stack = running.stack
    venv = superset_bin()
    stack.bin_dirs.update({"superset-init": venv, "superset": venv})
    twin = parity_twin(running)
    init = stack.run("superset-init", timeout=900)
    assert init.returncode == 0, init.stdout[-3000:] + init.stderr[-3000:]
    proc = stack.start("superset")
    try:
        stack.wait_healthy("superset", proc, seconds=300)
        yield SupersetUp(stack.url("superset"), stack.env["SUPERSET_ADMIN_PASSWORD"], init.stdout)
    finally:
        stop(proc)
        engine = conftest._admin_engine()
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{twin}" WITH (FORCE)'))
        engine.dispose()


def test_superset_imports_the_bundle_and_every_chart_returns_rows(
    running: Running, superset: SupersetUp
) -> None:
    from tests.e2e.superset import Superset, bundle

    client = Superset(superset.base, "admin", superset.password)
    expected = {c["slice_name"] for p, c in bundle().items() if p.startswith("charts/")}
    assert f"import_bundle: imported {len(expected)} charts, 4 dashboards" in superset.init_log
    rows = client.rows_per_chart()
    assert [name for name, n in rows.items() if not n] == [], rows
    # the figures behind the dashboards are the pipeline's: the quarantine holds the drop's
    # bad rows, the forecasts are the champion's, the parity check found the missing day
    assert running.drop and running.drop.bad_rows > 0
    assert rows["Quarantined rows, newest first"] == running.drop.bad_rows
    assert rows["Row counts (latest check)"] >= 8


def test_superset_holds_what_the_repository_says(superset: SupersetUp) -> None:
    """Export from Superset, compare with superset/bundle/ (volatile keys ignored); an edit made
    in Superset's UI shows up as drift."""
    from tests.e2e.superset import Superset, bundle, drift

    client = Superset(superset.base, "admin", superset.password)
    assert list(drift(client.export(), bundle())) == []
    chart = next(c for c in client.listing("chart") if c["slice_name"] == "Units by store")
    edited = client.client.put(f"/api/v1/chart/{chart['id']}", json={"description": "tweaked"})
    assert edited.status_code == 200, edited.text
    lines = list(drift(client.export(), bundle()))
    assert len(lines) == 1 and "description: bundle None != Superset 'tweaked'" in lines[0]
    client.client.put(f"/api/v1/chart/{chart['id']}", json={"description": None})
    assert list(drift(client.export(), bundle())) == []


def test_superset_dashboards_render_in_chromium(superset: SupersetUp) -> None:
    """Screenshots of every dashboard, logged in as the admin: CI keeps them as artefacts."""
    from tests.e2e.superset import RENDERED_BYTES, screenshots

    folder = ARTIFACTS / "superset-dashboards"
    saved = screenshots(superset.base, "admin", superset.password, folder)
    assert sorted(p.stem for p in saved) == [
        "fournil-data-quality",
        "fournil-forecasts",
        "fournil-parity",
        "fournil-sales",
    ]
    for path in saved:
        assert path.stat().st_size > RENDERED_BYTES, path  # a rendered dashboard, not a blank
        print(f"screenshot: {path}")
